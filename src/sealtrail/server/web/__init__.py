"""The web console (``/ui/``): server-rendered pages over the same API every caller uses.

The pages are Jinja2 templates (:mod:`.pages`), the behaviour hand-written ES modules served
from this package (``static/``): no build step, no third-party script. The browser calls the
``/v1`` API with a session cookie (:mod:`.auth`) in place of a bearer key, so a page can do
exactly what its user's role may do through the API and nothing more; the proof of an event is
checked in the browser itself (``static/tlog.js``), against a key the user pinned.
"""
