"""The namespace of sealtrail's own records, which no client may write.

sealtrail appends records of its own: reads of the trail (``audit.*``), erasures and legal
holds, key rotations, retention receipts, alert lifecycle, settings, integrity failures,
compliance reports, the periodic review's steps (``sealtrail.review.*``). ``verify``, the
monitor and the review trust them *because* only the engine can write them: a forged
``subject.erase`` would explain away a deleted subject key, a forged
``integrity.failure`` would raise a critical alert, a forged ``audit.search`` would pin a read
on another key. So every such action is reserved here, once, and the engine refuses any event
from a client that uses one (or claims sealtrail as its ``source.service``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# Whole families: anything under these prefixes is sealtrail's.
RESERVED_PREFIXES: Final = ("sealtrail.", "audit.", "retention.", "alert.", "integrity.")
# Single actions outside those families that the engine writes.
RESERVED_EXACT: Final = frozenset({
    "subject.erase", "subject.hold.add", "subject.hold.release", "keys.rotate",
    "report.generate"})
# The ``source.service`` of every record the engine writes.
OWN_SERVICE: Final = "sealtrail"

# The fields sealtrail's own records keep clear whatever the log's field policy seals, by
# action. The engine reads these back without keys: the settings checks of ``verify``,
# erasure (which checks holds), retention, witnessing, sealing, timestamps, the review. Each
# is one of sealtrail's own references (a digest, a subject pseudonym, a key id, an entry
# range, a checkpoint, an alert or review id; a timestamp token), never a person: sealing them
# made a log that seals ``target.id`` report itself tampered after its first legal hold or
# key rotation. ``source.service`` is ``sealtrail`` in every record of the engine's (it is how
# readers tell them from a client's), so it stays clear in all of them. The service's own
# records (``sealtrail.users.*``, sign-ins) are not listed: their target can be a person.
_REFERENCE: Final = ("target.id", "target.type", "source.service")
OWN_CLEAR_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    **dict.fromkeys((
        "subject.erase", "subject.hold.add", "subject.hold.release", "keys.rotate",
        "report.generate", "retention.policy.set", "retention.purge", "retention.archive",
        "retention.restore", "alert.open", "alert.acknowledge", "alert.resolve",
        "sealtrail.settings.adopt", "sealtrail.head.accept", "sealtrail.witnesses.set",
        "sealtrail.timestamps.set", "sealtrail.seal", "sealtrail.review.sign_off",
        "sealtrail.review.exception.benign", "sealtrail.review.assign",
        "sealtrail.review.close"), _REFERENCE),
    # A stamp's reason is part of the TSA's token.
    "sealtrail.timestamp": (*_REFERENCE, "reason")}
OWN_SERVICE_FIELD: Final = "source.service"


def is_reserved_action(action: str) -> bool:
    """Whether ``action`` names one of sealtrail's own records."""
    return action in RESERVED_EXACT or action.startswith(RESERVED_PREFIXES)


# The actor ids sealtrail gives API keys in its read records (``key:<id>``): a client naming
# one would pin a read of the trail on another key.
KEY_ACTOR_PREFIX: Final = "key:"


def reserved_field(action: str, source_service: str | None, actor_id: str = ""
                   ) -> tuple[str, str] | None:
    """(field, message) when a client's event claims to be sealtrail's own; else None."""
    if is_reserved_action(action):
        return ("action", f"{action!r} is reserved for records sealtrail writes itself "
                f"(the prefixes {', '.join(RESERVED_PREFIXES)} and "
                f"{', '.join(sorted(RESERVED_EXACT))}): choose another action name")
    if source_service == OWN_SERVICE:
        return ("source.service", f"{OWN_SERVICE!r} is reserved for records sealtrail writes "
                "itself: name your own service")
    if actor_id.startswith(KEY_ACTOR_PREFIX):
        return ("actor.id", f"ids starting {KEY_ACTOR_PREFIX!r} name sealtrail's API keys in "
                "its own records: name the actor another way")
    return None
