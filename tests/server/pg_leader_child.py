"""One node of the PostgreSQL leader tests (tests/server/test_pg_leader.py), run as a process.

``python pg_leader_child.py URL NAME [INTERVAL LEASE]`` starts a :class:`PgLeadership` and
prints one line per event to stdout: ``acquired``, ``lost`` (its callbacks), ``started``
(after ``start()``), and answers the lines it reads on stdin: ``state`` -> ``leader`` or
``follower``, ``release`` -> ``released``. It releases and exits when stdin closes.
"""

from __future__ import annotations

import sys
import threading

from sealtrail.server.pg_leader import LEASE, POLL_INTERVAL, PgLeadership

_out = threading.Lock()


def say(word: str) -> None:
    with _out:
        sys.stdout.write(word + "\n")
        sys.stdout.flush()


def main() -> None:
    url, name = sys.argv[1], sys.argv[2]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else POLL_INTERVAL
    lease = float(sys.argv[4]) if len(sys.argv) > 4 else LEASE
    lead = PgLeadership(url, name, lambda: say("acquired"), lambda: say("lost"),
                        interval=interval, lease=lease)
    lead.start()
    say("started")
    for line in sys.stdin:
        command = line.strip()
        if command == "state":
            say("leader" if lead.leader else "follower")
        elif command == "release":
            lead.release()
            say("released")
    lead.release()


if __name__ == "__main__":
    main()
