"""The SDK: record audit events in a sealtrail service over HTTP, durably, and check receipts.

::

    from sealtrail.client import Client

    with Client("https://audit.internal", token, log="billing",
                spool_path="/var/lib/app/audit-spool.db",
                verifier=vkey) as audit:
        event_id = audit.record(actor={"id": "alice", "ip": "203.0.113.7"},
                                action="invoice.read", outcome="success",
                                target={"type": "invoice", "id": "INV-42"})
        audit.flush()
        audit.verify_receipt(audit.receipts[event_id])

:class:`Client` (a thread delivers) and :class:`AsyncClient` (a task delivers) behave alike.

Delivery policy
    Events go to ``POST /v1/logs/{log}/events`` as JSON arrays of up to ``batch_size``; a
    partial batch waits up to ``flush_interval`` seconds for company. Connection errors,
    timeouts, 408/425/429 and 5xx are retried with the same ids after ``0.1 s * 2**n`` (capped
    at ``max_backoff``, minus a random half), never sooner than ``Retry-After``. 413 halves the
    batch. 401/403/404 and other 4xx are configuration problems: events are kept and retried
    (``last_error`` says why). A 422 that names events rejects exactly those: they are taken
    out of the queue (kept in the spool's ``rejected`` table, logged at ERROR on the
    ``sealtrail.client`` logger, counted in ``rejected`` and passed to ``on_rejected``) and
    the rest is resent — they could never be stored, and retrying them would block everything
    recorded after them. (The client validates with the service's own rules first, so this
    happens only on version skew or, e.g., a client clock more than 10 minutes fast.)

Exactly once, in order
    See :mod:`sealtrail.client._pipeline`: rows leave the spool only when acknowledged, batches
    are sent one at a time in record order, and a resent id is answered with its original
    receipt instead of being stored again.
"""

from sealtrail.client._async import AsyncClient
from sealtrail.client._pipeline import FailureMode, Rejection
from sealtrail.client._sync import Client
from sealtrail.client.errors import ClientError, DeliveryError
from sealtrail.client.receipt import Receipt
from sealtrail.client.spool import default_spool_path

__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "DeliveryError",
    "FailureMode",
    "Receipt",
    "Rejection",
    "default_spool_path",
]
