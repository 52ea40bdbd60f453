"""Ways into sealtrail from application code, all over :mod:`sealtrail.client`:

- :class:`AuditHandler` — a ``logging.Handler`` for records with ``extra={"audit": {...}}``;
- :func:`structlog_processor` — the same for structlog (without importing it);
- :class:`AuditMiddleware` (ASGI) and :class:`WSGIAuditMiddleware` — one event per request;
- :func:`audited` — a decorator recording each call with its outcome;
- :func:`acting_as` / :data:`current_actor` — the actor of the current context.
"""

from sealtrail.integrations._actor import acting_as, current_actor
from sealtrail.integrations.asgi import AuditMiddleware
from sealtrail.integrations.decorators import audited
from sealtrail.integrations.handler import AuditHandler
from sealtrail.integrations.processors import structlog_processor
from sealtrail.integrations.wsgi import WSGIAuditMiddleware

__all__ = [
    "AuditHandler",
    "AuditMiddleware",
    "WSGIAuditMiddleware",
    "acting_as",
    "audited",
    "current_actor",
    "structlog_processor",
]
