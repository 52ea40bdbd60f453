"""Selecting events by the search options (``query``, ``export``): the filter and the log to
run it on.

A filter value no event can hold is a usage error naming the option; a filter on sealed fields
needs the keyring, so the log is opened unlocked for it or the command is refused saying why.
"""

from __future__ import annotations

import sys
from typing import Any

from sealtrail.cli.common import fail, given, open_log
from sealtrail.core.errors import ValidationError
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.search import Filter, sealed_filters


def make_filter(**fields: Any) -> Filter:
    """A search filter; a value no event can hold (``--outcome sucess``) is a usage error
    naming the option and the allowed values."""
    try:
        return Filter(**fields)
    except ValidationError as exc:
        fail(f"--{exc.field}: {exc.message}")


def open_for_search(data: str | None, log: str | None, flt: Filter) -> AuditLog:
    """Open the log for a search: when the filter reads sealed fields and the keyring is
    locked, prompt for the passphrase on a terminal, else refuse (exit 2) saying why."""
    alog = open_log(data, log)
    if not (alog.encrypted and alog.locked_reason):
        return alog
    needs = sealed_filters(alog, flt)
    if not needs:
        return alog
    alog.close()
    if not sys.stdin.isatty() or given().passphrase_file is not None:
        fail(f"cannot search by {', '.join('--' + n for n in needs)}: this log seals the "
             "field(s) searched and its keyring is locked; give the passphrase with env "
             "SEALTRAIL_PASSPHRASE or --passphrase-file FILE (a terminal is prompted)")
    return open_log(data, log, need_keys=True)
