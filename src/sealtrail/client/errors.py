"""The SDK's errors, under the one sealtrail error tree (:mod:`sealtrail.core.errors`)::

    SealtrailError
    └── ClientError        the SDK could not do what was asked with the service
        └── DeliveryError  fail_closed: the service did not durably take the event

Bad events raise :class:`~sealtrail.core.errors.ValidationError` (naming the field) and failed
checks of receipts, proofs and checkpoints raise
:class:`~sealtrail.core.errors.VerificationError` subclasses, as everywhere else in sealtrail.
"""

from __future__ import annotations

from sealtrail.core.errors import SealtrailError


class ClientError(SealtrailError):
    """The client is closed, or the service could not be asked (network, HTTP status)."""


class DeliveryError(ClientError):
    """The service did not durably take the event, so the audited action must not proceed.

    ``event_id`` names the event. When the failure was ambiguous (the connection broke after the
    request was sent) the service may have stored it anyway; a later retry with the same id is
    never stored twice.
    """

    def __init__(self, message: str, *, event_id: str, status: int | None = None) -> None:
        self.event_id = event_id
        self.status = status
        super().__init__(message)
