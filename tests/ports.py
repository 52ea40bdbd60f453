"""Ports for test servers that must be named before they listen.

A port taken by binding to 0 and releasing it comes from the kernel's ephemeral range, the same
range the kernel hands to every later ``bind(0)`` and to every outgoing connection's local end.
Between release and use, another server in the suite (a witness on port 0) or a client socket
can get that very port, and the service then fails with "address already in use" (CI saw it).
So named ports come from below the ephemeral range, where the kernel never allocates on its
own, are checked free by binding, and are never handed out twice in one process.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_LOW, _HIGH = 20000, 32000
_given: set[int] = set()
_lock = threading.Lock()


def _ephemeral_low() -> int:
    """The bottom of the kernel's ephemeral range (Linux), or the IANA default elsewhere."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


def free_port() -> int:
    """A loopback port nothing listens on now, outside the ephemeral range, new to this process."""
    high = min(_HIGH, _ephemeral_low() - 1)
    low = _LOW if high - _LOW >= 1000 else 1024  # a host whose ephemeral range starts low
    rng = random.Random()
    with _lock:
        for _ in range(1000):
            port = rng.randint(low, max(high, low + 1000))
            if port in _given:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _given.add(port)
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")
