"""Checking a client's arguments and building what both clients are made of."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import quote

import msgspec

from sealtrail.client._pipeline import FAILURE_MODES, FailureMode, Pipeline, Rejection
from sealtrail.client.errors import ClientError
from sealtrail.client.groupspool import GroupSpool
from sealtrail.client.receipt import Receipt
from sealtrail.client.spool import MemoryQueue, Queue, Spool, default_spool_path
from sealtrail.client.witness import Witness
from sealtrail.core.errors import ConfigError
from sealtrail.core.note import Verifier

MAX_BATCH: Final = 10_000    # the service's limit of events per request
USER_AGENT: Final = "sealtrail-client/0.1.0"
IDLE_POLL: Final = 1.0       # seconds between looks at the spool when idle (other processes)
DURABILITIES: Final = ("call", "group")
MAX_GROUP_WINDOW_MS: Final = 10_000


@dataclass(frozen=True, slots=True)
class Settings:
    """A client's checked configuration."""

    base_url: str
    log: str
    mode: FailureMode
    batch_size: int
    flush_interval: float
    timeout: float
    verifier: Verifier | None
    headers: dict[str, str] = field(repr=False)  # the bearer token: never in a repr
    durability: str = "call"
    group_window: float = 0.005  # seconds

    @property
    def prefix(self) -> str:
        """The log's URL path prefix."""
        return f"/v1/logs/{quote(self.log, safe='')}"


def settings(base_url: str, token: str, log: str, *, failure_mode: str, batch_size: int,
             flush_interval: float, timeout: float, verifier: str | None,
             max_backoff: float, durability: str = "call",
             group_window_ms: float = 5.0) -> Settings:
    """Check the arguments (ConfigError naming the bad one; FormatError for a bad vkey)."""
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"base_url {base_url!r}: want http(s)://host[:port]")
    if not token or any(c.isspace() for c in token):
        raise ConfigError("token: want the API key text (st_...)")
    if not log:
        raise ConfigError("log: want the log's name")
    if failure_mode not in FAILURE_MODES:
        raise ConfigError(f"failure_mode {failure_mode!r}: use one of {', '.join(FAILURE_MODES)}")
    if not 1 <= batch_size <= MAX_BATCH:
        raise ConfigError(f"batch_size must be in 1..{MAX_BATCH}")
    if flush_interval < 0 or timeout <= 0 or max_backoff <= 0:
        raise ConfigError("flush_interval must be >= 0, timeout and max_backoff > 0")
    if durability not in DURABILITIES:
        raise ConfigError(f"durability {durability!r}: use one of {', '.join(DURABILITIES)}")
    if durability == "group" and failure_mode != "spool":
        raise ConfigError(f"durability='group' is a way of writing the spool: it needs "
                          f"failure_mode='spool', not {failure_mode!r}")
    if not 0 < group_window_ms <= MAX_GROUP_WINDOW_MS:
        raise ConfigError(f"group_window_ms must be in (0, {MAX_GROUP_WINDOW_MS}] milliseconds")
    mode = cast("FailureMode", failure_mode)  # checked just above
    return Settings(base_url.rstrip("/"), log, mode, batch_size, flush_interval, timeout,
                    None if verifier is None else Verifier.parse(verifier),
                    {"authorization": f"Bearer {token}", "user-agent": USER_AGENT},
                    durability, group_window_ms / 1000)


def pipeline(cfg: Settings, *, spool_path: str | os.PathLike[str] | None, max_queue: int,
             max_backoff: float, keep_receipts: int,
             on_receipt: Callable[[Receipt], object] | None,
             on_rejected: Callable[[Rejection], object] | None) -> Pipeline:
    """The queue for the failure mode (spool file, memory, or none) and its pipeline."""
    queue: Queue | None = None
    if cfg.mode == "spool":
        if cfg.durability == "group" and max_queue < 1:
            raise ConfigError("max_queue must be at least 1")
        spool = Spool(Path(spool_path) if spool_path is not None
                      else default_spool_path(cfg.base_url, cfg.log))
        queue = (GroupSpool(spool, cfg.group_window, max_unwritten=max_queue)
                 if cfg.durability == "group" else spool)
    elif cfg.mode == "drop":
        if max_queue < 1:
            raise ConfigError("max_queue must be at least 1")
        queue = MemoryQueue(max_queue)
    return Pipeline(queue, cfg.log, mode=cfg.mode, batch_size=cfg.batch_size,
                    max_backoff=max_backoff, keep_receipts=keep_receipts,
                    on_receipt=on_receipt, on_rejected=on_rejected)


def witness(cfg: Settings, pipe: Pipeline) -> Witness | None:
    """The witness of the log's checkpoints, resuming from the spool's kept checkpoint."""
    if cfg.verifier is None:
        return None
    kept = (pipe.queue.kept_checkpoint(cfg.log, cfg.verifier.format())
            if pipe.queue is not None else None)
    return Witness(cfg.verifier, kept)


def error_text(body: bytes) -> str:
    """The ``error`` of a JSON error answer, else the start of the body."""
    try:
        doc: Any = msgspec.json.decode(body)
    except msgspec.DecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    return body[:200].decode("utf-8", "replace")


def closed_error() -> ClientError:
    """The error for using a closed client."""
    return ClientError("the client is closed")
