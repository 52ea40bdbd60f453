"""The monitor's delivery outbox in PostgreSQL (psycopg 3): the table ``deliveries`` in a schema
of its own, shared by every node's dispatcher. Opened read-only (compliance reports), it
creates nothing, its connection's transactions are read-only, and its writing methods are
refused.

How it keeps :class:`sealtrail.store.outbox.OutboxRows` (the shared plumbing, texts kept as
UTF-8 bytes and the reconnection after a server restart: ``store/postgres_rows.py``):

- **Queue once.** :meth:`enqueue` is one transaction of ``INSERT ... ON CONFLICT (alert_id,
  status, sink) DO NOTHING`` (SQLite's ``BEGIN IMMEDIATE`` and the same insert): all or
  nothing, and of two nodes queueing the same triple at once, the second waits for the
  first's commit and adds nothing. ``seq`` is an identity column: given in the order rows are
  queued, never twice, not even after a prune (as ``AUTOINCREMENT``).
- **One statement each.** finish, expire, reschedule and prune are one ``UPDATE`` or
  ``DELETE`` each, atomic as in SQLite. Like SQLite's, :meth:`next_row` claims nothing: two
  dispatchers sending to the same sink may both send a row (delivery is at least once).
- **Rewrite.** One transaction: the alert's rows are read ``FOR UPDATE``, each body handed to
  the change, the answers stored. Two erasures rewriting one alert at once take turns, so
  neither undoes the other's scrub; a change that raises stores nothing.
- **A server restart.** A write that must not run twice (enqueue counts, finish and
  reschedule count an attempt, rewrite) runs in a transaction, whose ``BEGIN`` finds a broken
  connection before the write is sent; expire and prune end the same when run again.
- **Erasure.** :meth:`purge_deleted` runs ``VACUUM deliveries``: replaced bodies and pruned
  rows, once no snapshot still sees them, leave the heap, index and TOAST pages. PostgreSQL
  does not zero freed bytes (they stay in the data files until the space is reused), and the
  old versions stay in WAL not yet recycled, in archived WAL, on replicas and in backups:
  those follow the operator's retention. Only the table's owner (or the database's) may
  vacuum it: another role's purge is StorageError, not a silent skip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from sealtrail.store.outbox import DeliveredRow, Finished, OutboxRow
from sealtrail.store.postgres_rows import PostgresRows, text, text_or_none, untext

LAYOUT_VERSION: Final = 1

_TABLES: Final = """
CREATE TABLE IF NOT EXISTS deliveries(
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id BYTEA NOT NULL,
    status BYTEA NOT NULL,
    sink BYTEA NOT NULL,
    body BYTEA NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    created DOUBLE PRECISION NOT NULL,
    next_at DOUBLE PRECISION NOT NULL,
    finished DOUBLE PRECISION,
    last_error BYTEA,
    UNIQUE (alert_id, status, sink));
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(sink, state, next_at);
CREATE INDEX IF NOT EXISTS deliveries_alert ON deliveries(alert_id);
"""


class PostgresOutboxRows(PostgresRows):
    """Outbox rows in ``schema`` (created, with its table, when missing; read-only: the
    outbox must be there) of the database at ``url``.

    Implements :class:`sealtrail.store.outbox.OutboxRows`.
    """

    def __init__(self, url: str, schema: str, *, readonly: bool = False) -> None:
        super().__init__(url, schema, store="outbox", version=LAYOUT_VERSION, tables=_TABLES,
                         what="the alert outbox", readonly=readonly)

    def enqueue(self, alert_id: str, status: str, body: bytes, sinks: Sequence[str],
                now: float) -> int:
        wanted = [text(sink) for sink in dict.fromkeys(sinks)]
        if not wanted:
            self._refuse_write()
            return 0
        with self._transaction(lock=False):
            return self._count(
                "INSERT INTO deliveries(alert_id, status, sink, body, created, next_at) "
                "SELECT %s, %s, s.sink, %s, %s, %s "
                "FROM unnest(%s::bytea[]) WITH ORDINALITY AS s(sink, n) ORDER BY s.n "
                "ON CONFLICT (alert_id, status, sink) DO NOTHING",
                (text(alert_id), text(status), bytes(body), now, now, wanted))

    def next_row(self, sink: str) -> OutboxRow | None:
        rows = self._rows("SELECT seq, alert_id, body, attempts, created, next_at "
                          "FROM deliveries WHERE sink = %s AND state = 'pending' "
                          "ORDER BY next_at, seq LIMIT 1", (text(sink),))
        if not rows:
            return None
        seq, alert_id, body, attempts, created, next_at = rows[0]
        return OutboxRow(int(seq), untext(alert_id), bytes(body), int(attempts),
                         float(created), float(next_at))

    def finish(self, seq: int, state: Finished, now: float, error: str | None) -> None:
        with self._transaction(lock=False):
            self._count("UPDATE deliveries SET state = %s, finished = %s, last_error = %s, "
                        "attempts = attempts + 1 WHERE seq = %s",
                        (state, now, text_or_none(error), seq))

    def expire(self, seq: int, now: float, error: str) -> None:
        self._refuse_write()
        self._count("UPDATE deliveries SET state = 'failed', finished = %s, last_error = %s "
                    "WHERE seq = %s", (now, text(error), seq))

    def reschedule(self, seq: int, next_at: float, error: str) -> None:
        with self._transaction(lock=False):
            self._count("UPDATE deliveries SET next_at = %s, last_error = %s, "
                        "attempts = attempts + 1 WHERE seq = %s", (next_at, text(error), seq))

    def pending(self) -> dict[str, int]:
        rows = self._rows("SELECT sink, count(*) FROM deliveries WHERE state = 'pending' "
                          "GROUP BY sink")
        return {untext(sink): int(n) for sink, n in rows}

    def prune(self, before: float) -> None:
        self._refuse_write()
        self._count("DELETE FROM deliveries WHERE state <> 'pending' AND finished < %s",
                    (before,))

    def rewrite(self, alert_id: str, change: Callable[[bytes], bytes | None]) -> int:
        done = 0
        with self._transaction(lock=False):
            rows = self._rows("SELECT seq, body FROM deliveries WHERE alert_id = %s "
                              "ORDER BY seq FOR UPDATE", (text(alert_id),))
            for seq, body in rows:
                new = change(bytes(body))
                if new is not None:
                    done += self._count("UPDATE deliveries SET body = %s WHERE seq = %s",
                                        (bytes(new), seq))
        return done

    def purge_deleted(self) -> None:
        """``VACUUM deliveries`` (see the module's docstring for what it can and cannot
        promise)."""
        self._vacuum(("deliveries",))

    def delivered(self) -> list[DeliveredRow]:
        rows = self._rows("SELECT sink, body, finished FROM deliveries "
                          "WHERE state = 'delivered' ORDER BY seq")
        return [DeliveredRow(untext(sink), bytes(body), None if finished is None
                             else float(finished)) for sink, body, finished in rows]

    def sinks(self) -> set[str]:
        return {untext(row[0]) for row in self._rows("SELECT DISTINCT sink FROM deliveries")}
