"""``KeyRows``: the service's API key rows, as every adapter must keep them (insert, fetch by
id, revoke once, list in order), :class:`ApiKeys` over each adapter, and the SQLite adapter's
file: the one an older sealtrail made still authenticates, and a new one is the same file.

The adapters are listed here (:data:`KEY_ROWS`): the suite's ``Store`` adapters
(``tests/contract/adapters.py``) hold a log's data, not the service's.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import stat
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core.errors import ConfigError, StorageError
from sealtrail.core.timefmt import format_time
from sealtrail.log.apikeys import DB_FILE, SERVICE_DIR, ApiKeys, KeyInfo, Principal
from sealtrail.store.memory_service import MemoryKeyRows
from sealtrail.store.postgres_service import PostgresKeyRows
from sealtrail.store.service import KeyRow, KeyRows
from sealtrail.store.sqlite_service import SQLiteKeyRows
from tests.contract.pg_rows import (
    POSTGRES_URL,
    lose_connection,
    new_schema,
    pg_row_fixtures,
    postgres_rows,
)
from tests.contract.rowstores import row_fixtures

# One more adapter is one more entry: a name and how to make an empty store in a directory.
KEY_ROWS: Final[dict[str, Callable[[Path], KeyRows]]] = {
    "sqlite": lambda d: SQLiteKeyRows(d / SERVICE_DIR / DB_FILE),
    "memory": lambda _: MemoryKeyRows(),
    "postgres": postgres_rows(PostgresKeyRows),
}

Fresh = Callable[[], AbstractContextManager[KeyRows]]


_, rows, fresh_rows = row_fixtures(KEY_ROWS, "keyrows")
# make_rows marks the postgres adapter (skipped when unreachable); its schemas are dropped.
make_rows, drop_pg_schemas = pg_row_fixtures(KEY_ROWS)


T1, T2, T3 = "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"


def row(n: int, *, created: str = T1, **changes: str | None) -> KeyRow:
    """A key row numbered ``n``: every optional field empty unless given."""
    fields: dict[str, str | None] = {"log": None, "expires": None, "revoked": None,
                                     "cert_sha256": None, "role": "reader", "name": f"key {n}"}
    fields.update(changes)
    return KeyRow(f"{n:016x}", hashlib.sha256(b"%d" % n).digest(), str(fields["role"]),
                  fields["log"], str(fields["name"]), created, fields["expires"],
                  fields["revoked"], fields["cert_sha256"])


FULL = row(7, log="payments", expires=T3, cert_sha256="ab" * 32, role="ingest",
           name="ünïcode name")


def test_a_row_comes_back_as_it_was_stored(rows: KeyRows) -> None:
    """``get`` answers the inserted row field for field (optional fields empty or set), as a
    ``KeyRow``; an id never stored is None."""
    rows.insert(row(1))
    rows.insert(FULL)
    assert rows.get(row(1).id) == row(1)
    assert rows.get(FULL.id) == FULL
    assert type(rows.get(FULL.id)) is KeyRow
    assert type(FULL.hash) is bytes
    assert rows.get(row(2).id) is None
    assert rows.get("") is None


def test_any_hash_bytes_survive(rows: KeyRows) -> None:
    """The hash is kept as opaque bytes: zero bytes, high bytes, any length."""
    for n, digest in enumerate((b"\x00" * 32, b"\xff" * 32, b"", b"\x00\x80abc")):
        key = KeyRow(f"{n:016x}", digest, "admin", None, "n", T1, None, None, None)
        rows.insert(key)
        found = rows.get(key.id)
        assert found is not None
        assert found.hash == digest


def test_a_second_row_with_an_id_fails_and_the_first_stays(rows: KeyRows) -> None:
    """Inserting an id already stored raises StorageError; the stored row is unchanged."""
    rows.insert(row(1))
    with pytest.raises(StorageError):
        rows.insert(KeyRow(row(1).id, b"other", "admin", None, "other", T2, None, None, None))
    assert rows.get(row(1).id) == row(1)
    assert rows.rows() == [row(1)]


def test_revoke_marks_an_active_key_once(rows: KeyRows) -> None:
    """``revoke`` stamps an active key and answers True; again, or for an unknown id, it
    answers False and the first time stays; other keys are untouched."""
    rows.insert(row(1))
    rows.insert(row(2))
    assert rows.revoke(row(1).id, T2) is True
    assert rows.get(row(1).id) == row(1, revoked=T2)
    assert rows.revoke(row(1).id, T3) is False
    assert rows.get(row(1).id) == row(1, revoked=T2)
    assert rows.revoke(row(9).id, T3) is False
    assert rows.get(row(9).id) is None
    assert rows.get(row(2).id) == row(2)


def test_a_row_stored_revoked_stays_revoked(rows: KeyRows) -> None:
    """A row inserted with a revocation time keeps it: ``revoke`` answers False."""
    rows.insert(row(1, revoked=T1))
    assert rows.revoke(row(1).id, T2) is False
    assert rows.get(row(1).id) == row(1, revoked=T1)


def test_rows_lists_every_key_by_creation_then_id(rows: KeyRows) -> None:
    """``rows`` lists every key, revoked ones too, ordered by ``created`` then ``id``;
    an empty store lists none."""
    assert rows.rows() == []
    made = [row(5, created=T2), row(3, created=T2), row(9, created=T1), row(1, created=T3)]
    for key in made:
        rows.insert(key)
    rows.revoke(row(9).id, T3)
    assert rows.rows() == [row(9, created=T1, revoked=T3), row(3, created=T2),
                           row(5, created=T2), row(1, created=T3)]
    assert all(type(key) is KeyRow for key in rows.rows())


def test_threads_insert_and_read_at_once(rows: KeyRows) -> None:
    """Several threads inserting, reading and revoking at once lose nothing."""
    errors: list[BaseException] = []

    def work(base: int) -> None:
        try:
            for n in range(base, base + 25):
                rows.insert(row(n))
                assert rows.get(row(n).id) == row(n)
                assert rows.revoke(row(n).id, T2) is True
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(100 * t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert rows.rows() == sorted((row(n, revoked=T2) for t in range(4)
                                  for n in range(100 * t, 100 * t + 25)), key=lambda k: k.id)


def test_closing_twice_is_harmless(make_rows: Callable[[Path], KeyRows],
                                   tmp_path: Path) -> None:
    """``close`` may be called again."""
    made = make_rows(tmp_path)
    made.close()
    made.close()


class _Reference:
    """The contract in a few lines: what every adapter must answer."""

    def __init__(self) -> None:
        self.rows: dict[str, KeyRow] = {}

    def insert(self, key: KeyRow) -> bool:
        if key.id in self.rows:
            return False
        self.rows[key.id] = key
        return True

    def revoke(self, key_id: str, at: str) -> bool:
        key = self.rows.get(key_id)
        if key is None or key.revoked is not None:
            return False
        self.rows[key_id] = KeyRow(key.id, key.hash, key.role, key.log, key.name, key.created,
                                   key.expires, at, key.cert_sha256)
        return True


_ops = st.lists(st.tuples(st.sampled_from(["insert", "revoke"]), st.integers(0, 5),
                          st.sampled_from([T1, T2, T3])), max_size=30)


@settings(max_examples=40, deadline=None)
@given(_ops)
def test_any_sequence_answers_as_the_reference(fresh_rows: Fresh,
                                               ops: list[tuple[str, int, str]]) -> None:
    """After any sequence of inserts (ids may repeat) and revocations, every answer and the
    listing match a plain dict's."""
    reference = _Reference()
    with fresh_rows() as store:
        for op, n, at in ops:
            if op == "insert":
                key = row(n, created=at)
                if reference.insert(key):
                    store.insert(key)
                else:
                    with pytest.raises(StorageError):
                        store.insert(key)
            else:
                assert store.revoke(row(n).id, at) is reference.revoke(row(n).id, at)
            for m in range(6):
                assert store.get(row(m).id) == reference.rows.get(row(m).id)
        assert store.rows() == sorted(reference.rows.values(), key=lambda k: (k.created, k.id))


# ApiKeys decides; the rows only keep. Its behaviour is the same over every adapter.

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
CERT = "cd" * 32


@pytest.fixture
def keys(rows: KeyRows) -> ApiKeys:
    """ApiKeys over the adapter under test."""
    return ApiKeys(rows=rows)


def _key_id(token: str) -> str:
    return token.split("_")[1]


def test_api_keys_authenticate_over_every_adapter(keys: ApiKeys) -> None:
    """A created token authenticates as its key; a wrong secret, an unknown id and a
    malformed token do not."""
    token = keys.create("ingest", log="payments", name="svc", now=NOW)
    assert keys.authenticate(token, NOW) == Principal(_key_id(token), "ingest", "payments",
                                                      "svc")
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert keys.authenticate(wrong, NOW) is None
    assert keys.authenticate(f"st_{'0' * 16}_{token.split('_', 2)[2]}", NOW) is None
    assert keys.authenticate(token + "\n", NOW) is None


def test_api_keys_expiry_revocation_and_binding_over_every_adapter(keys: ApiKeys) -> None:
    """Expired and revoked keys stop working; a bound key needs its certificate; revoking
    twice or an unknown key is refused; the listing shows every key without its hash."""
    expiring = keys.create("reader", log=None, name="short", now=NOW,
                           expires=NOW + timedelta(hours=1))
    bound = keys.create("auditor", log=None, name="bound", now=NOW, client_cert_sha256=CERT)
    revoked = keys.create("admin", log=None, name="gone", now=NOW)
    assert keys.authenticate(expiring, NOW) is not None
    assert keys.authenticate(expiring, NOW + timedelta(hours=1)) is None
    assert keys.authenticate(bound, NOW) is None
    assert keys.authenticate(bound, NOW, "ef" * 32) is None
    assert keys.authenticate(bound, NOW, CERT) == Principal(_key_id(bound), "auditor", None,
                                                            "bound")
    keys.revoke(_key_id(revoked), NOW)
    assert keys.authenticate(revoked, NOW) is None
    with pytest.raises(ConfigError, match="no active key"):
        keys.revoke(_key_id(revoked), NOW)
    with pytest.raises(ConfigError, match="no active key"):
        keys.revoke("0" * 16, NOW)
    listed = {info.name: info for info in keys.listing()}
    assert listed["gone"].revoked == format_time(NOW)
    assert listed["bound"].client_cert_sha256 == CERT
    assert listed["short"].expires == format_time(NOW + timedelta(hours=1))
    assert all(type(info) is KeyInfo for info in listed.values())


def test_api_keys_take_a_data_directory_or_rows() -> None:
    """``ApiKeys`` is given exactly one of a data directory and a rows store."""
    with pytest.raises(TypeError):
        ApiKeys()
    with pytest.raises(TypeError):
        ApiKeys(".", rows=MemoryKeyRows())


# The SQLite adapter's file: the one older sealtrail versions made, and the one it makes now.

OLD_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS api_keys(
    id TEXT PRIMARY KEY,
    hash BLOB NOT NULL,
    role TEXT NOT NULL,
    log TEXT,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    expires TEXT,
    revoked TEXT,
    cert_sha256 TEXT);
"""
# Before keys could be bound to a client certificate (mTLS) the table had no cert_sha256.
OLDEST_SCHEMA: Final = OLD_SCHEMA.replace(",\n    cert_sha256 TEXT", "")


def _old_token(n: int) -> tuple[str, str, bytes]:
    """A token as the old code made it: (token, key id, SHA-256 of the secret)."""
    key_id = f"{n:016x}"
    secret = base64.urlsafe_b64encode(bytes([n]) * 32).rstrip(b"=").decode()
    return f"st_{key_id}_{secret}", key_id, hashlib.sha256(secret.encode()).digest()


def _old_service_db(data_dir: Path, schema: str) -> Path:
    directory = data_dir / SERVICE_DIR
    directory.mkdir(mode=0o700)
    path = directory / DB_FILE
    db = sqlite3.connect(path, isolation_level=None)
    days = [format_time(NOW + timedelta(days=d)) for d in (-4, -3, -2, -1, 9)]
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(schema)
        _, key_id, digest = _old_token(1)
        db.execute("INSERT INTO api_keys(id, hash, role, log, name, created, expires) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (key_id, digest, "ingest", "payments", "old", days[0], None))
        _, key_id, digest = _old_token(2)
        db.execute("INSERT INTO api_keys(id, hash, role, log, name, created, expires, revoked) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (key_id, digest, "admin", None, "old revoked", days[1], days[4], days[3]))
        if "cert_sha256" in schema:
            _, key_id, digest = _old_token(3)
            db.execute("INSERT INTO api_keys(id, hash, role, log, name, created, expires, "
                       "cert_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (key_id, digest, "auditor", None, "old bound", days[2],
                        None, CERT))
    finally:
        db.close()
    path.chmod(0o600)
    return path


def _tables(db: sqlite3.Connection) -> list[tuple[str, str]]:
    return db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()


def _tables_of(schema: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(schema)
        return _tables(db)
    finally:
        db.close()


@pytest.mark.parametrize("schema", [OLD_SCHEMA, OLDEST_SCHEMA], ids=["bound", "before-mtls"])
def test_a_data_directory_made_by_the_old_code_still_authenticates(tmp_path: Path,
                                                                   schema: str) -> None:
    """The keys an older sealtrail stored in ``DATA/_service/service.db`` authenticate, stay
    revoked, stay bound and list as before through ``ApiKeys(data_dir)``; a file from before
    client-certificate binding gains the column, and new keys can be bound in it."""
    _old_service_db(tmp_path, schema)
    keys = ApiKeys(tmp_path)
    try:
        token, key_id, _ = _old_token(1)
        assert keys.authenticate(token, NOW) == Principal(key_id, "ingest", "payments", "old")
        assert keys.authenticate(_old_token(2)[0], NOW) is None
        names = [info.name for info in keys.listing()]
        if "cert_sha256" in schema:
            token, key_id, _ = _old_token(3)
            assert keys.authenticate(token, NOW) is None
            assert keys.authenticate(token, NOW, CERT) == Principal(key_id, "auditor", None,
                                                                    "old bound")
            assert names == ["old", "old revoked", "old bound"]
        else:
            assert names == ["old", "old revoked"]
        new = keys.create("reader", log=None, name="new", now=NOW, client_cert_sha256=CERT)
        assert keys.authenticate(new, NOW, CERT) is not None
        keys.revoke(_old_token(1)[1], NOW)
        assert keys.authenticate(_old_token(1)[0], NOW) is None
    finally:
        keys.close()


def test_the_sqlite_file_is_the_one_the_old_code_made(tmp_path: Path) -> None:
    """A new data directory gets ``_service/`` (0700) holding ``service.db`` (0600) in WAL
    mode, with the old table exactly; keys persist across reopening."""
    keys = ApiKeys(tmp_path)
    token = keys.create("ingest", log="payments", name="svc", now=NOW)
    keys.close()
    directory, path = tmp_path / SERVICE_DIR, tmp_path / SERVICE_DIR / DB_FILE
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert _tables(db) == _tables_of(OLD_SCHEMA)
    finally:
        db.close()
    reopened = ApiKeys(tmp_path)
    try:
        assert reopened.authenticate(token, NOW) == Principal(_key_id(token), "ingest",
                                                              "payments", "svc")
    finally:
        reopened.close()


def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    """A ``service.db`` that SQLite cannot open is refused with the same StorageError."""
    (tmp_path / SERVICE_DIR).mkdir()
    (tmp_path / SERVICE_DIR / DB_FILE).write_bytes(b"not a database, not at all" * 100)
    with pytest.raises(StorageError, match="cannot open the API key store"):
        ApiKeys(tmp_path)


def test_the_row_repr_leaves_the_hash_out() -> None:
    """A row printed or logged does not carry the secret's hash."""
    assert FULL.hash.hex() not in repr(FULL)
    assert repr(FULL.hash) not in repr(FULL)


# The PostgreSQL adapter: one schema shared by several service nodes, and a server restart.


@pytest.mark.postgres
def test_postgres_key_rows_survive_a_lost_connection() -> None:
    """After the server ends a handle's connection (a restart), each call connects again and
    answers: an insert stores its row once, a revocation answers True once."""
    keys = PostgresKeyRows(POSTGRES_URL, new_schema())
    try:
        keys.insert(row(1))
        lose_connection(keys)
        assert keys.get(row(1).id) == row(1)
        lose_connection(keys)
        keys.insert(row(2))
        lose_connection(keys)
        assert keys.revoke(row(2).id, T2) is True
        assert keys.revoke(row(2).id, T3) is False
        lose_connection(keys)
        assert keys.rows() == [row(1), row(2, revoked=T2)]
    finally:
        keys.close()


@pytest.mark.postgres
def test_postgres_nodes_share_keys_and_race_safely() -> None:
    """Two handles on one schema (two nodes) see each other's keys; inserting the same ids
    and revoking the same keys at once, each id is stored by one of them and each key
    revoked by one of them, the other refused."""
    schema = new_schema()
    nodes = [PostgresKeyRows(POSTGRES_URL, schema) for _ in range(2)]
    stored: list[int] = []
    revoked: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(node: KeyRows) -> None:
        try:
            start.wait()
            for n in range(30):
                try:
                    node.insert(row(n))
                    stored.append(n)
                except StorageError:
                    pass
                if node.revoke(row(n).id, T2):
                    revoked.append(n)
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    try:
        threads = [threading.Thread(target=work, args=(node,)) for node in nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted(stored) == list(range(30))
        assert sorted(revoked) == list(range(30))
        assert nodes[0].rows() == nodes[1].rows() == [row(n, revoked=T2) for n in range(30)]
    finally:
        for node in nodes:
            node.close()


@pytest.mark.postgres
def test_postgres_key_rows_keep_any_text() -> None:
    """Texts PostgreSQL's TEXT refuses or orders its own way come back as given, in code
    point order: NUL, non-ASCII, a lone surrogate."""
    keys = PostgresKeyRows(POSTGRES_URL, new_schema())
    try:
        odd = [row(1, name="a\x00b", created="\x00"), row(2, name="\udc80", created="é"),
               row(3, log="ünï", created="Z"), row(4, created="z")]
        for key in odd:
            keys.insert(key)
        assert keys.rows() == sorted(odd, key=lambda k: (k.created, k.id))
        assert [keys.get(key.id) for key in odd] == odd
    finally:
        keys.close()
