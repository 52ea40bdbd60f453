"""Child process for the client-crash test: record events into a spool, announcing each id.

Usage: ``python spool_child.py URL TOKEN SPOOL``. Records ten events, printing each id after
``record`` returned (flushed), then waits for a line on stdin, records ten more, and sleeps
until the parent kills it with SIGKILL.
"""

from __future__ import annotations

import sys
import time

from sealtrail.client import Client


def main() -> None:
    """Record two phases of ten events; never close the client (the parent kills us)."""
    url, token, spool = sys.argv[1:4]
    client = Client(url, token, spool_path=spool, flush_interval=0.01, max_backoff=0.2)
    for phase in range(2):
        for i in range(10):
            ident = client.record(actor={"id": "child"}, action="child.step",
                                  outcome="success", metadata={"n": phase * 10 + i})
            print(ident, flush=True)
        sys.stdin.readline()
    time.sleep(120)


if __name__ == "__main__":
    main()
