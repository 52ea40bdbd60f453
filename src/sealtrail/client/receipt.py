"""Receipts: what the ingest endpoint answers for each stored event.

``POST /v1/logs/{log}/events`` answers ``201 {"receipts": [{"id", "index", "leaf_hash" (base64),
"checkpoint_size", "duplicate"}]}`` in the order the events were sent. A receipt whose
``duplicate`` is true is the original receipt of an id the log already held. The receipt
type is the engine's own (:class:`sealtrail.core.receipt.Receipt`).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from sealtrail.core import b64
from sealtrail.core.errors import FormatError
from sealtrail.core.receipt import Receipt

__all__ = ["Receipt", "parse_receipts"]


class _ReceiptDoc(msgspec.Struct, frozen=True):
    id: str
    index: int
    leaf_hash: str
    checkpoint_size: int
    duplicate: bool = False


class _Answer(msgspec.Struct, frozen=True):
    receipts: list[_ReceiptDoc]


_decoder = msgspec.json.Decoder(_Answer)


def parse_receipts(body: bytes, ids: Sequence[str]) -> tuple[Receipt, ...]:
    """The receipts of an ingest answer for events ``ids`` sent in that order.

    Raises FormatError unless there is exactly one well-formed receipt per id, in order, and
    each places its event inside the checkpoint it names.
    """
    try:
        answer = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FormatError(f"ingest answer: {exc}") from exc
    if len(answer.receipts) != len(ids):
        raise FormatError(f"ingest answer: {len(answer.receipts)} receipts for {len(ids)} events")
    out = []
    for k, (doc, ident) in enumerate(zip(answer.receipts, ids, strict=True)):
        if doc.id != ident:
            raise FormatError(f"ingest answer: receipt {k} is for {doc.id!r}, not {ident!r}")
        if not 0 <= doc.index < doc.checkpoint_size:
            raise FormatError(f"ingest answer: receipt {k} has index {doc.index} outside the "
                              f"checkpoint of size {doc.checkpoint_size}")
        leaf = b64.decode(doc.leaf_hash, f"receipts[{k}].leaf_hash")
        if len(leaf) != 32:
            raise FormatError(f"ingest answer: receipt {k}'s leaf hash is not 32 bytes")
        out.append(Receipt(doc.id, doc.index, leaf, doc.checkpoint_size, doc.duplicate))
    return tuple(out)
