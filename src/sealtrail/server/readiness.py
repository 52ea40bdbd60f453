"""Whether each log of a node is ready, and if not, why: what /readyz answers.

``reason`` is one of ``keyring_locked`` (no passphrase or key given, a wrong one, or the
keyring file missing: appends of personal fields are refused), ``does_not_open`` (the log
cannot be opened at all), ``verification_failed`` (its last scheduled verification failed:
tampering, rollback, a replaced database, or storage that cannot be read through) and
``store_unreachable`` (the log's store does not answer: PostgreSQL down or cut off).

:func:`log_lag` is what a ready node adds: per log, how far integration and the index are
behind sequencing, and how long one read of the store took (the store's health).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from sealtrail.core.errors import KeyringError, SealtrailError
from sealtrail.monitor.watch import Result
from sealtrail.server.logs import Logs

REASONS: Final = ("keyring_locked", "does_not_open", "verification_failed",
                  "store_unreachable")
MAX_MESSAGE: Final = 300


def readiness_problems(logs: Logs, verified: Mapping[str, Result], data_dir: Path
                       ) -> list[dict[str, str]]:
    """What keeps each log from being ready: ``{"log", "reason", "message"}`` per problem.

    The message is the error's own text, one line, with the data directory's path shown as
    ``DATA`` and cut at 300 characters; sealtrail's errors carry no secret or event content.
    """
    def clean(text: str) -> str:
        text = text.replace(str(data_dir), "DATA")
        text = " ".join(text.split())
        return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "\u2026"

    problems: list[dict[str, str]] = []
    try:
        names = logs.names()
    except SealtrailError as exc:  # the store (the catalog) does not answer at all
        return [{"log": "*", "reason": "store_unreachable",
                 "message": clean(f"{type(exc).__name__}: {exc}")}]
    for name in names:
        try:
            alog = logs.get(name)
        except KeyringError as exc:
            problems.append({"log": name, "reason": "keyring_locked",
                             "message": clean(str(exc))})
        except SealtrailError as exc:
            problems.append({"log": name, "reason": "does_not_open",
                             "message": clean(f"{type(exc).__name__}: {exc}")})
        else:
            if alog.locked_reason:
                problems.append({"log": name, "reason": "keyring_locked",
                                 "message": clean(alog.locked_reason)})
            try:
                alog.index_status()
            except SealtrailError as exc:
                problems.append({"log": name, "reason": "store_unreachable",
                                 "message": clean(f"{type(exc).__name__}: {exc}")})
    for name, result in sorted(dict(verified).items()):
        if not result.ok:
            problems.append({"log": name, "reason": "verification_failed",
                             "message": clean(result.problem or "verification failed")})
    return problems


def log_lag(logs: Logs, *, sizes: bool = True) -> list[dict[str, Any]]:
    """Per log: ``size`` (entries sequenced; left out when not ``sizes``: /readyz answers
    without a key), ``unsigned`` (entries past the signed checkpoint: integration's lag, 0
    while integration runs in the sequencing transaction), ``unindexed`` (entries the blind
    index has not caught up with) and ``store_ms`` (one consistent read of the store, in
    milliseconds: its health). Logs that do not open or whose store does not answer are
    left out (:func:`readiness_problems` names them)."""
    out: list[dict[str, Any]] = []
    try:
        names = logs.names()
    except SealtrailError:
        return out
    for name in names:
        try:
            alog = logs.get(name)
            began = time.perf_counter()
            status = alog.index_status()
            took = (time.perf_counter() - began) * 1000
            signed = alog.checkpoint().checkpoint.size
        except SealtrailError:
            continue
        row: dict[str, Any] = {"log": name, "size": status["size"],
                               "unsigned": max(status["size"] - signed, 0),
                               "unindexed": status["size"] - status["indexed"],
                               "store_ms": round(took, 3)}
        if not sizes:
            del row["size"]
        out.append(row)
    return out
