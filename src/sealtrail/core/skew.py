"""Clock skew: how far an event's own ``time`` may be from the log's ``received_at``.

PCI DSS 10.6.1 asks that system clocks be synchronised; an event whose time is further than
:data:`MAX_SKEW` from when the log received it came from a clock that is off. The bound is set
here once and read by both places that judge it: the monitor's ``builtin.clock_skew`` rule
(its ``max_skew``, also the default of any ``clock_skew`` rule) and the compliance report's
``clock-skew`` check. Both leave imported records out (their time is another system's clock).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

__all__ = ["MAX_SKEW", "MAX_SKEW_MINUTES"]

MAX_SKEW_MINUTES: Final = 5
MAX_SKEW: Final = timedelta(minutes=MAX_SKEW_MINUTES)
