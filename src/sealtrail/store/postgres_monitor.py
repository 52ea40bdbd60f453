"""The monitor's rows in PostgreSQL (psycopg 3): alerts, the changes queue, the subject links
and the rule engine's cursors in a schema of their own, shared by every node's monitor.

How it keeps :class:`sealtrail.store.monitor_state.AlertRows` (the shared plumbing, texts kept
as UTF-8 bytes and the reconnection after a server restart: ``store/postgres_rows.py``):

- **One writer at a time.** SQLite runs every write under its file's write lock (``BEGIN
  IMMEDIATE`` for a transaction, the statement's own otherwise). Here every write takes the
  store's write lock too: :meth:`transaction` is ``BEGIN`` and ``SELECT ... FOR UPDATE`` of
  the store's ``row_layouts`` row, and a write outside one runs in a transaction of its own.
  So the read-then-write of a transaction (the current alert of a group, then its update)
  never interleaves with another node's writes, and changes are numbered in commit order.
  Reads outside a transaction take no lock (as SQLite's WAL readers).
- **Numbers.** A change's ``seq`` is an identity column: never given twice, not even after a
  rollback (a rolled-back change's number is skipped, as ``AUTOINCREMENT`` may). The order
  alerts were first stored is an identity column too (``stored``: SQLite's rowid), which an
  upsert leaves as it was.
- **Limits.** A negative limit is ``LIMIT NULL``: PostgreSQL refuses ``LIMIT -1``.
- **Erasure.** :meth:`purge_deleted` runs ``VACUUM`` on the tables: the row versions a
  rewrite or an unlink left behind, once no snapshot still sees them, leave the heap, index
  and TOAST pages. PostgreSQL does not zero freed bytes (they stay in the data files until
  the space is reused), and the old versions stay in WAL not yet recycled, in archived WAL,
  on replicas and in backups: those follow the operator's retention. Only the tables' owner
  (or the database's) may vacuum them: another role's purge is StorageError, not a silent
  skip.
- **A server restart.** Every write is a transaction, so a broken connection is found by
  its ``BEGIN``, before the write is sent: it connects again and goes on. A connection lost
  later in a write is StorageError, and nothing is run again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from sealtrail.store.monitor_state import AlertRow, Cursor, QueuedChange
from sealtrail.store.postgres_rows import (
    PostgresRows,
    limit_of,
    text,
    untext,
)

LAYOUT_VERSION: Final = 1

_TABLES: Final = """
CREATE TABLE IF NOT EXISTS alerts(
    id BYTEA PRIMARY KEY,
    stored BIGINT GENERATED ALWAYS AS IDENTITY,
    log BYTEA NOT NULL,
    rule BYTEA NOT NULL,
    key BYTEA NOT NULL,
    title BYTEA NOT NULL,
    severity BYTEA NOT NULL,
    status BYTEA NOT NULL,
    first_seen BYTEA NOT NULL,
    last_seen BYTEA NOT NULL,
    count BIGINT NOT NULL,
    entries BYTEA NOT NULL,
    clauses BYTEA NOT NULL,
    message BYTEA NOT NULL,
    opened_index BIGINT,
    updated_at BYTEA NOT NULL,
    updated_by BYTEA NOT NULL,
    note BYTEA NOT NULL DEFAULT ''::bytea);
CREATE INDEX IF NOT EXISTS alerts_group ON alerts(log, rule, key, status);
CREATE INDEX IF NOT EXISTS alerts_list ON alerts(log, status, last_seen);
CREATE INDEX IF NOT EXISTS alerts_unrecorded ON alerts(stored) WHERE opened_index IS NULL;
CREATE TABLE IF NOT EXISTS changes(
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id BYTEA NOT NULL,
    status BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS alert_subjects(
    alert_id BYTEA NOT NULL,
    ref BYTEA NOT NULL,
    PRIMARY KEY (ref, alert_id));
CREATE TABLE IF NOT EXISTS cursors(
    log BYTEA PRIMARY KEY,
    next_index BIGINT NOT NULL,
    state BYTEA NOT NULL);
"""

_COLUMNS: Final = ("id, log, rule, key, title, severity, status, first_seen, last_seen, count, "
                   "entries, clauses, message, opened_index, updated_at, updated_by, note")
_JOINED: Final = ", ".join("a." + column for column in _COLUMNS.split(", "))
_RESOLVED: Final = text("resolved")


class PostgresAlertRows(PostgresRows):
    """The monitor's rows in ``schema`` (created, with its tables, when missing) of the
    database at ``url``.

    Implements :class:`sealtrail.store.monitor_state.AlertRows`.
    """

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(url, schema, store="alerts", version=LAYOUT_VERSION, tables=_TABLES,
                         what="the monitor database")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN``, the store's write lock, ... ``COMMIT``; a nested one joins the outer."""
        with self._transaction():
            yield

    def _write(self, query: str, args: tuple[Any, ...]) -> int:
        """One write under the store's write lock: in the current transaction (in a savepoint:
        undone alone when it fails), or in one of its own; how many rows it changed."""
        with self._lock:
            if self._in_tx:
                return self._in_savepoint(lambda db: db.execute(query, args).rowcount)
            with self._transaction():
                return self._count(query, args)

    # -- alerts -------------------------------------------------------------------------------

    def get(self, alert_id: str) -> AlertRow | None:
        rows = self._rows(f"SELECT {_COLUMNS} FROM alerts WHERE id = %s",  # noqa: S608
                          (text(alert_id),))
        return _row(rows[0]) if rows else None

    def current(self, log: str, rule: str, key: str) -> AlertRow | None:
        rows = self._rows(f"SELECT {_COLUMNS} FROM alerts "  # noqa: S608 - constant columns
                          "WHERE log = %s AND rule = %s AND key = %s AND status <> %s "
                          "ORDER BY last_seen DESC, id DESC LIMIT 1",
                          (text(log), text(rule), text(key), _RESOLVED))
        return _row(rows[0]) if rows else None

    def put(self, row: AlertRow) -> None:
        a = row
        # An upsert: what a later put does not change (the key and message an erasure
        # scrubbed, the first sighting, the title, the first-stored order) stays as stored.
        self._write(f"INSERT INTO alerts({_COLUMNS}) VALUES "  # noqa: S608
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (id) DO UPDATE "
                    "SET status = excluded.status, last_seen = excluded.last_seen, "
                    "count = excluded.count, entries = excluded.entries, "
                    "opened_index = excluded.opened_index, updated_at = excluded.updated_at, "
                    "updated_by = excluded.updated_by, note = excluded.note",
                    (text(a.id), text(a.log), text(a.rule), text(a.key), text(a.title),
                     text(a.severity), text(a.status), text(a.first_seen), text(a.last_seen),
                     a.count, text(a.entries), text(a.clauses), text(a.message),
                     a.opened_index, text(a.updated_at), text(a.updated_by), text(a.note)))

    def update_group(self, alert_id: str, count: int, last_seen: str, entries: str) -> bool:
        return self._write("UPDATE alerts SET count = %s, last_seen = %s, entries = %s "
                           "WHERE id = %s AND status <> %s",
                           (count, text(last_seen), text(entries), text(alert_id),
                            _RESOLVED)) == 1

    def set_opened(self, alert_id: str, index: int) -> None:
        self._write("UPDATE alerts SET opened_index = %s WHERE id = %s",
                    (index, text(alert_id)))

    def rewrite(self, alert_id: str, key: str, message: str) -> None:
        self._write("UPDATE alerts SET key = %s, message = %s WHERE id = %s",
                    (text(key), text(message), text(alert_id)))

    def listing(self, *, log: str | None, status: str | None, severity: str | None,
                rule: str | None, before: str | None, limit: int) -> list[AlertRow]:
        where, args = ["TRUE"], list[Any]()
        for col, value in (("log", log), ("status", status), ("severity", severity),
                           ("rule", rule)):
            if value is not None:
                where.append(f"{col} = %s")
                args.append(text(value))
        if before is not None:
            where.append("last_seen < %s")
            args.append(text(before))
        # Columns and clauses are constants of this module; every value is bound.
        rows = self._rows(f"SELECT {_COLUMNS} FROM alerts "  # noqa: S608
                          f"WHERE {' AND '.join(where)} "
                          "ORDER BY last_seen DESC, id LIMIT %s", (*args, limit_of(limit)))
        return [_row(r) for r in rows]

    def unrecorded(self, limit: int) -> list[AlertRow]:
        rows = self._rows(f"SELECT {_COLUMNS} FROM alerts "  # noqa: S608 - constant columns
                          "WHERE opened_index IS NULL AND log <> ''::bytea "
                          "ORDER BY stored LIMIT %s", (limit_of(limit),))
        return [_row(r) for r in rows]

    def counts(self) -> dict[tuple[str, str, str], int]:
        return {(untext(r[0]), untext(r[1]), untext(r[2])): int(r[3]) for r in
                self._rows("SELECT log, status, severity, count(*) FROM alerts "
                           "GROUP BY log, status, severity")}

    # -- subjects -----------------------------------------------------------------------------

    def link_subjects(self, alert_id: str, refs: Iterable[str]) -> None:
        wanted = sorted({text(ref) for ref in refs})
        if wanted:
            self._write("INSERT INTO alert_subjects(alert_id, ref) "
                        "SELECT %s, unnest(%s::bytea[]) ON CONFLICT DO NOTHING",
                        (text(alert_id), wanted))

    def subject_alerts(self, ref: str) -> list[AlertRow]:
        rows = self._rows(f"SELECT {_JOINED} "  # noqa: S608 - constant columns
                          "FROM alerts a JOIN alert_subjects s ON s.alert_id = a.id "
                          "WHERE s.ref = %s ORDER BY a.id", (text(ref),))
        return [_row(r) for r in rows]

    def unlink_subject(self, ref: str) -> None:
        self._write("DELETE FROM alert_subjects WHERE ref = %s", (text(ref),))

    def purge_deleted(self) -> None:
        """``VACUUM`` the tables (see the module's docstring for what it can and cannot
        promise)."""
        self._vacuum(("alerts", "alert_subjects", "changes", "cursors"))

    # -- the changes queue --------------------------------------------------------------------

    def queue_change(self, alert_id: str, status: str) -> None:
        self._write("INSERT INTO changes(alert_id, status) VALUES (%s, %s)",
                    (text(alert_id), text(status)))

    def changes(self, limit: int) -> list[QueuedChange]:
        return [QueuedChange(int(s), untext(a), untext(st)) for s, a, st in
                self._rows("SELECT seq, alert_id, status FROM changes ORDER BY seq LIMIT %s",
                           (limit_of(limit),))]

    def change_sent(self, seq: int) -> None:
        self._write("DELETE FROM changes WHERE seq = %s", (seq,))

    # -- cursors ------------------------------------------------------------------------------

    def cursor(self, log: str) -> Cursor | None:
        rows = self._rows("SELECT next_index, state FROM cursors WHERE log = %s", (text(log),))
        return Cursor(int(rows[0][0]), untext(rows[0][1])) if rows else None

    def put_cursor(self, log: str, cursor: Cursor) -> None:
        self._write("INSERT INTO cursors VALUES (%s, %s, %s) ON CONFLICT (log) DO UPDATE "
                    "SET next_index = excluded.next_index, state = excluded.state",
                    (text(log), cursor.next_index, text(cursor.state)))


def _row(r: tuple[Any, ...]) -> AlertRow:
    return AlertRow(untext(r[0]), untext(r[1]), untext(r[2]), untext(r[3]), untext(r[4]),
                    untext(r[5]), untext(r[6]), untext(r[7]), untext(r[8]), int(r[9]),
                    untext(r[10]), untext(r[11]), untext(r[12]),
                    None if r[13] is None else int(r[13]), untext(r[14]), untext(r[15]),
                    untext(r[16]))
