"""Child process for the group-durability crash test: record, flush, record until killed.

Usage: ``python group_child.py URL TOKEN SPOOL WINDOW_MS``. Records ``FIRST`` events with
``durability="group"``, printing each id, then flushes and prints ``flushed``; then records
until the parent kills it with SIGKILL, printing after each ``record`` returned its id and how
many of the events recorded so far the spool writer had committed at that moment (the last
durable point this process knows of).
"""

from __future__ import annotations

import sys

from sealtrail.client import Client
from sealtrail.client.groupspool import GroupSpool

FIRST = 20


def main() -> None:
    """Record, flush, record; never close the client (the parent kills us)."""
    url, token, spool, window_ms = sys.argv[1:5]
    client = Client(url, token, spool_path=spool, durability="group",
                    group_window_ms=float(window_ms), flush_interval=0.01, max_backoff=0.2)
    writer = client._pipe.queue  # the durable count is the writer's own
    if not isinstance(writer, GroupSpool):
        raise SystemExit("not a group-durable spool")
    for n in range(FIRST):
        print(client.record(actor={"id": "child"}, action="child.step", outcome="success",
                            metadata={"n": n}), flush=True)
    if not client.flush(30):
        raise SystemExit("the first events were not delivered")
    print("flushed", flush=True)
    n = FIRST
    while True:
        ident = client.record(actor={"id": "child"}, action="child.step", outcome="success",
                              metadata={"n": n})
        print(ident, writer.durable, flush=True)
        n += 1


if __name__ == "__main__":
    main()
