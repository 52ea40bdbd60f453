"""RFC 5424 syslog messages, and the octet-counted framing of RFC 5425/6587 for streams.

Pure formatting, shared by the alert sinks and the SIEM forwarder, so both speak exactly the
same syslog: ``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD-ID param="value"...] MSG``.
Header fields are printable US-ASCII without spaces (RFC 5424 §6.2), cut to their maximum
lengths; a field with nothing to say is ``-``. Structured-data values escape ``"``, ``\\`` and
``]`` (§6.3.3). The message is UTF-8 with the BOM, which tells receivers it is UTF-8 (§6.4).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

FACILITIES: Final = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
    "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21,
    "local6": 22, "local7": 23,
}
SEVERITIES: Final = {
    "emergency": 0, "alert": 1, "critical": 2, "error": 3, "warning": 4, "notice": 5,
    "informational": 6, "debug": 7,
}
_BOM: Final = b"\xef\xbb\xbf"
_NOT_PRINTABLE = re.compile(r"[^\x21-\x7e]")
_SD_NAME_BAD = re.compile(r'[^\x21-\x7e]|[= \]"]')
# Header field limits (RFC 5424 §6).
_HOST_MAX, _APP_MAX, _PROCID_MAX, _MSGID_MAX, _SD_NAME_MAX = 255, 48, 128, 32, 32


def _header(value: str | None, limit: int) -> str:
    if not value:
        return "-"
    clean = _NOT_PRINTABLE.sub("_", value)[:limit]
    return clean or "-"


def _sd_name(value: str) -> str:
    clean = _SD_NAME_BAD.sub("_", value)[:_SD_NAME_MAX]
    if not clean:
        raise ValueError("a structured-data name is empty")
    return clean


def _sd_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def priority(facility: str, severity: str) -> int:
    """PRI = facility * 8 + severity; names as in RFC 5424 table 1 and 2."""
    if facility not in FACILITIES:
        raise ValueError(f"unknown syslog facility {facility!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown syslog severity {severity!r}")
    return FACILITIES[facility] * 8 + SEVERITIES[severity]


def structured_data(elements: Mapping[str, Sequence[tuple[str, str]]]) -> str:
    """``[id k="v" ...][id2 ...]``; ``-`` when there are none. Order is kept as given."""
    if not elements:
        return "-"
    parts = []
    for sd_id, params in elements.items():
        inner = "".join(f' {_sd_name(k)}="{_sd_value(v)}"' for k, v in params)
        parts.append(f"[{_sd_name(sd_id)}{inner}]")
    return "".join(parts)


def format_message(*, timestamp: str, message: str, facility: str = "auth",
                   severity: str = "notice", hostname: str | None = None,
                   app_name: str = "sealtrail", procid: str | None = None,
                   msgid: str | None = None,
                   sd: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> bytes:
    """One RFC 5424 message as bytes. ``timestamp`` is RFC 3339 (as events store it)."""
    head = (f"<{priority(facility, severity)}>1 {_header(timestamp, 64)} "
            f"{_header(hostname, _HOST_MAX)} {_header(app_name, _APP_MAX)} "
            f"{_header(procid, _PROCID_MAX)} {_header(msgid, _MSGID_MAX)} "
            f"{structured_data(sd or {})}")
    # Header fields are cleaned to ASCII above; structured-data values may be UTF-8 (§6.3.3).
    if not message:
        return head.encode("utf-8")
    return head.encode("utf-8") + b" " + _BOM + message.encode("utf-8")


def frame(message: bytes) -> bytes:
    """Octet-counting framing for TCP and TLS transports: ``LEN SP MSG`` (RFC 5425 §4.3)."""
    return str(len(message)).encode("ascii") + b" " + message
