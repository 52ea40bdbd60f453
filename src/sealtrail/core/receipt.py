"""The receipt: what appending an event answers, in the engine, the service and the SDK.

One type for all three, so "where is my event and which checkpoint holds it" means the same
thing wherever it is asked. Its JSON document (the ingest endpoint's answer) is
:meth:`Receipt.document`; the SDK parses it back (``sealtrail.client.receipt``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from sealtrail.core import b64


class Receipt(msgspec.Struct, frozen=True, gc=False):
    """Proof of acceptance: where the event is, its leaf hash, the checkpoint that holds it.

    ``duplicate`` is true when the log already held the event's id: the receipt is then the
    original one. (A msgspec struct: the engine builds one per event on the hot path, ten
    times faster than a frozen dataclass.)
    """

    id: str
    index: int
    leaf_hash: bytes
    checkpoint_size: int
    duplicate: bool = False

    def document(self) -> dict[str, Any]:
        """The receipt as the ingest endpoint answers it (leaf hash in base64)."""
        return {"id": self.id, "index": self.index, "leaf_hash": b64.encode(self.leaf_hash),
                "checkpoint_size": self.checkpoint_size, "duplicate": self.duplicate}
