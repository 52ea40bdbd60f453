"""The engine's sealing (log/sealing.py): the key files, evolution, downtime, encrypted logs,
served checkpoint lines, refusals, and verification's answers to keys and files that are not
the log's."""

from __future__ import annotations

import base64
import json
import stat
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from sealtrail import AuditLog
from sealtrail.core import seal as core
from sealtrail.core.checkpoint import open_checkpoint
from sealtrail.core.errors import ConfigError, TamperError
from sealtrail.core.policy import FieldPolicy
from sealtrail.log import sealing
from sealtrail.log.datadir import open_store_readonly
from sealtrail.log.headmemory import STATE_DIR_ENV
from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.runner import Monitor
from sealtrail.server.logs import Logs
from sealtrail.server.witnessing_job import SEAL_RULE, WitnessingJob
from tests.clirun import sealtrail
from tests.compliance.conftest import Clock
from tests.sealing.attack import EPOCH_S, LOG, build, edit, leaves, open_log


def verify(data: Path, *extra: str) -> tuple[int, str]:
    """``sealtrail verify`` on an auditor's machine (head memories apart)."""
    env = {STATE_DIR_ENV: str(data.parent / "auditor-state")}
    ran = sealtrail("--data", data, "verify", "--no-derived", *extra, env=env, text=True)
    return ran.returncode, ran.stdout + ran.stderr


def files_bytes(directory: Path) -> bytes:
    """Every file under ``directory`` (database, WAL, keys), concatenated."""
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def test_evolution_erases_each_past_seed_from_the_files(tmp_path: Path) -> None:
    """seal.key is 0600 and holds only the current epoch's seed: after each round the previous
    seed appears in no file of the log (no temporary file is left either); the current one is
    the previous evolved."""
    clock = Clock()
    data = tmp_path / "data"
    with open_log(data, clock) as log:
        log.append({"actor": {"id": "u"}, "action": "doc.read", "outcome": "success"})
        sealing.init_sealing(log, now=clock.now, seconds=EPOCH_S, epochs=16)
        path = log.directory / sealing.SEAL_KEY_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        seeds = []
        for k in range(4):
            doc = json.loads(path.read_text())
            assert doc["epoch"] == k
            seeds.append(base64.b64decode(doc["seed"]))
            clock.now += timedelta(seconds=EPOCH_S)
            sealing.run_round(log, clock.now)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        now = base64.b64decode(json.loads(path.read_text())["seed"])
        assert now == core.evolve(seeds[-1])
        everything = files_bytes(log.directory)
        for old in seeds:
            assert old not in everything
            assert base64.b64encode(old) not in everything
        assert not list(log.directory.glob(".*.tmp"))


def test_downtime_is_evolved_over_and_reported_as_a_gap(tmp_path: Path) -> None:
    """Epochs the host was down through are never sealed: the seed jumps over them, and
    verify (exit 0) names them as a gap."""
    clock = Clock()
    s = build(tmp_path / "data", clock, down=frozenset({2, 3}))
    code, out = verify(s.data_dir, "--seal-key", s.key.format())
    assert code == 0, out
    # Epoch 2's seed was still held when the host came back (epoch 4's round closes it), so
    # epoch 2 is sealed (late) and 3..4 were evolved over.
    assert "GAP: epochs 3..4 have no seal" in out
    with open_log(s.data_dir, clock) as log:
        events = [log.entry(i).event() for i in s.seal_at.values()]
    assert [core.Recorded.parse(e["target"]["id"]).epoch for e in events] == [0, 1, 2, 5]


def test_an_encrypted_log_is_sealed_with_its_seals_in_clear(tmp_path: Path,
                                                            passphrase_env: str) -> None:
    """Own records of an encrypted log: the seal entries keep action and target.id in clear
    (verify needs no keyring), and a rewrite is still caught."""
    clock = Clock()
    s = build(tmp_path / "data", clock, encryption=True, rounds=3)
    seal_leaves = [leaf for leaf in leaves(s.data_dir) if b'"sealtrail.seal"' in leaf]
    assert len(seal_leaves) == 4
    assert all(b'"id":"s1.e' in leaf for leaf in seal_leaves)
    code, out = verify(s.data_dir, "--seal-key", s.key.format())
    assert code == 0, out
    assert "SEALED: 4 recorded seals" in out


def test_sealing_works_on_a_log_that_seals_its_targets(tmp_path: Path,
                                                       passphrase_env: str) -> None:
    """A log whose policy seals target.id, target.type and reason still records readable
    seals (they are sealtrail's own references: core/reserved.py), and verify checks them."""
    clock = Clock()
    data = tmp_path / "data"
    policy = FieldPolicy.parse(["target.id", "target.type", "reason", "source.service"])
    with AuditLog.open(data, LOG, policy=policy, clock=clock) as log:
        log.append({"actor": {"id": "u1"}, "action": "doc.read", "outcome": "success",
                    "target": {"type": "doc", "id": "private-doc"}})
        key = sealing.init_sealing(log, now=clock.now, seconds=10, epochs=8)
        for n in range(3):
            log.append({"actor": {"id": f"u{n}"}, "action": "doc.read", "outcome": "success",
                        "target": {"type": "doc", "id": f"private-doc-{n}"}})
            clock.now += timedelta(seconds=10)
            assert sealing.run_round(log, clock.now)["round"]["evolved"] is True
    seal_leaves = [leaf for leaf in leaves(data) if b'"sealtrail.seal"' in leaf]
    assert len(seal_leaves) == 4
    assert all(b'"id":"s1.e' in leaf for leaf in seal_leaves)
    assert not any(b"private-doc" in leaf for leaf in leaves(data))  # the client's: sealed
    code, out = verify(data, "--seal-key", key.format())
    assert code == 0, out
    assert "SEALED: 4 recorded seals" in out


def test_init_twice_is_refused(tmp_path: Path) -> None:
    """A second sealing key would restart the chain: refused, the first left as it was."""
    clock = Clock()
    with open_log(tmp_path / "data", clock) as log:
        sealing.init_sealing(log, now=clock.now, seconds=10, epochs=8)
        before = (log.directory / sealing.SEAL_KEY_FILE).read_bytes()
        with pytest.raises(ConfigError, match="already has a sealing key"):
            sealing.init_sealing(log, now=clock.now, seconds=10, epochs=8)
        assert (log.directory / sealing.SEAL_KEY_FILE).read_bytes() == before
        (log.directory / sealing.SEAL_KEY_FILE).unlink()
        (log.directory / sealing.SEAL_PUB_FILE).unlink()
        with pytest.raises(ConfigError, match="already recorded seals"):
            sealing.init_sealing(log, now=clock.now, seconds=10, epochs=8)


def test_served_checkpoint_lines_verify_with_the_seal_key_and_chain_to_the_log(
        tmp_path: Path) -> None:
    """seal_line evolves first (recording the closing epoch's seal), then seals the given
    checkpoint with the current epoch's key, chained to the last recorded seal; None for a
    log without sealing."""
    clock = Clock()
    data = tmp_path / "data"
    with open_log(data, clock) as log:
        assert sealing.seal_line(log, log.checkpoint(), clock.now) is None
        key = sealing.init_sealing(log, now=clock.now, seconds=EPOCH_S, epochs=16)
        log.append({"actor": {"id": "u"}, "action": "doc.read", "outcome": "success"})
        signed = log.checkpoint()
        line = sealing.seal_line(log, signed, clock.now)
        assert line is not None
        assert line.startswith("\u2014 ")
        got = core.open_seal_line(signed.note + line + "\n", key)
        assert got.seal.epoch == 0
        # The sealed note still opens with the log's key: verifiers skip the unknown line.
        assert open_checkpoint(signed.note + line + "\n", log.verifier) == signed.checkpoint
        size = log.size
        clock.now += timedelta(seconds=2 * EPOCH_S + 1)
        signed = log.checkpoint()
        line = sealing.seal_line(log, signed, clock.now)
        assert line is not None
        assert log.size == size + 1  # epoch 0's final seal was recorded first
        got = core.open_seal_line(signed.note + line + "\n", key)
        assert got.seal.epoch == 2
        rec = core.Recorded.parse(log.entry(size).event()["target"]["id"])
        assert rec.epoch == 0
        anchor = core.Recorded.parse(log.entry(size - 2).event()["target"]["id"])
        first = anchor.seal(log.root_at(anchor.size), core.NO_LINK)
        last = rec.seal(log.root_at(rec.size), core.link(key.origin, first))
        body = (log.directory / sealing.SEAL_PUB_FILE).read_bytes().partition(b"\n")[2]
        last.verify(key.origin, body[:32])  # epoch 0's key: the chain is the log's
        assert got.seal.prev == core.link(key.origin, last)


def test_threads_racing_at_an_epoch_end_record_one_seal(tmp_path: Path) -> None:
    """Eight threads asking for a seal line as an epoch ends: one final seal is recorded."""
    clock = Clock()
    with open_log(tmp_path / "data", clock) as log:
        sealing.init_sealing(log, now=clock.now, seconds=EPOCH_S, epochs=16)
        size = log.size
        clock.now += timedelta(seconds=EPOCH_S)
        signed = log.checkpoint()
        lines: list[str | None] = []
        threads = [threading.Thread(target=lambda: lines.append(
            sealing.seal_line(log, signed, clock.now))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(lines) == 8
        assert all(lines)
        assert log.size == size + 1


def test_an_exhausted_key_erases_its_last_seed_and_stops_sealing(tmp_path: Path) -> None:
    """Past the key's last epoch: the last epoch's seal is recorded, its seed erased, and
    seal_line says sealing has stopped (it does not pretend)."""
    clock = Clock()
    with open_log(tmp_path / "data", clock) as log:
        sealing.init_sealing(log, now=clock.now, seconds=EPOCH_S, epochs=4)
        clock.now += timedelta(seconds=10 * EPOCH_S)
        size = log.size
        with pytest.raises(ConfigError, match="no epochs left"):
            sealing.seal_line(log, log.checkpoint(), clock.now)
        assert log.size == size + 1
        doc = json.loads((log.directory / sealing.SEAL_KEY_FILE).read_text())
        assert doc["seed"] is None
        assert sealing.status(log, clock.now)["exhausted"] is True


@pytest.mark.parametrize(("change", "match"), [
    # The settings' copy of the last recorded seal must be the entry it names: an edited
    # copy stops the chain from being continued from it.
    ("UPDATE meta SET value = '1' WHERE key = 'seal_last_at'", "settings table"),
    # With its rows deleted, the sealer does not start a second chain from nothing: it
    # refuses (and the service raises its sealing alert).
    ("DELETE FROM meta WHERE key LIKE 'seal_last%'", "no recorded seal"),
])
def test_an_edited_or_deleted_last_seal_copy_is_refused(tmp_path: Path, change: str,
                                                        match: str) -> None:
    clock = Clock()
    data = tmp_path / "data"
    with open_log(data, clock) as log:
        sealing.init_sealing(log, now=clock.now, seconds=EPOCH_S, epochs=8)
        log.append({"actor": {"id": "u"}, "action": "doc.read", "outcome": "success"})
    with edit(data) as db:
        db.execute(change)
    clock.now += timedelta(seconds=EPOCH_S)
    with open_log(data, clock) as log:
        with pytest.raises(TamperError, match=match):
            sealing.run_round(log, clock.now)
        with pytest.raises(TamperError, match=match):
            sealing.seal_line(log, log.checkpoint(), clock.now)


def test_another_logs_seal_key_verifies_nothing(tmp_path: Path) -> None:
    """A seal key of another log (same origin, other keys; or another origin) is NOT
    VERIFIED, exit 3, never intact; verify_seals raises SealKeyMismatchError."""
    s = build(tmp_path / "a" / "data", Clock(), rounds=2)
    other = build(tmp_path / "b" / "data", Clock(), rounds=1)
    code, out = verify(s.data_dir, "--seal-key", other.key.format())
    assert code == 3, out
    assert out.startswith("NOT VERIFIED: ")
    renamed = core.SealKey("example.com/other", s.key.start, s.key.seconds, s.key.epochs,
                           s.key.root)
    code, out = verify(s.data_dir, "--seal-key", renamed.format())
    assert code == 3, out
    assert "'example.com/other'" in out
    store = open_store_readonly(s.data_dir / LOG)
    try:
        with pytest.raises(sealing.SealKeyMismatchError):
            sealing.verify_seals(store, s.data_dir / LOG, other.key, origin=s.key.origin,
                                 size=store.state().size)
    finally:
        store.close()


def test_missing_or_replaced_public_keys_fail(tmp_path: Path) -> None:
    """Without seal.pub no seal can be checked: exit 1 naming the file. A seal.pub whose keys
    are not its header's root: exit 1 too."""
    s = build(tmp_path / "data", Clock(), rounds=2)
    pub = s.data_dir / LOG / sealing.SEAL_PUB_FILE
    body = pub.read_bytes()
    pub.unlink()
    code, out = verify(s.data_dir, "--seal-key", s.key.format())
    assert code == 1, out
    assert "seal.pub is missing" in out
    pub.write_bytes(body[:-1] + bytes([body[-1] ^ 1]))
    code, out = verify(s.data_dir, "--seal-key", s.key.format())
    assert code == 1, out
    assert "Merkle root" in out


def test_a_log_never_sealed_fails_with_a_seal_key(tmp_path: Path) -> None:
    """A seal key given for a log with no recorded seal (its seals stripped) is exit 1."""
    s = build(tmp_path / "data", Clock(), rounds=1)
    with edit(s.data_dir) as db:
        db.execute("DELETE FROM meta WHERE key LIKE 'seal_%'")
    with AuditLog.open(tmp_path / "fresh", LOG, encryption=False) as log:
        log.append({"actor": {"id": "u"}, "action": "doc.read", "outcome": "success"})
    for name in (sealing.SEAL_PUB_FILE, sealing.SEAL_KEY_FILE):
        (tmp_path / "fresh" / LOG / name).write_bytes((s.data_dir / LOG / name).read_bytes())
    key = core.SealKey.parse(s.key.format())
    code, out = verify(tmp_path / "fresh", "--seal-key", key.format())
    assert code == 1, out
    assert "no recorded seal" in out


def test_a_node_without_the_sealing_key_alerts_instead_of_serving_unsealed(
        tmp_path: Path) -> None:
    """The log is sealed (its recorded seals are in the shared store) but this node holds no
    seal.key: another node ran 'seal init', or the file was lost. The served checkpoint
    cannot carry a seal, and the leader's job says so with builtin.seal_failing rather than
    serving unsealed checkpoints in silence. A log never sealed stays quiet."""
    clock = Clock()
    data = tmp_path / "data"
    with open_log(data, clock) as log:
        sealing.init_sealing(log, now=clock.now, seconds=EPOCH_S, epochs=8)
        (log.directory / sealing.SEAL_KEY_FILE).unlink()
        with pytest.raises(ConfigError, match="this node holds no sealing key"):
            sealing.seal_line(log, log.checkpoint(), clock.now)
    logs = Logs(data)
    store = AlertStore(monitor_db_path(data))
    monitor = Monitor(data, lambda: [(n, logs.get(n)) for n in logs.names()], [], store,
                      clock=clock)
    job = WitnessingJob(logs, monitor, clock, delay=0, interval=0)
    try:
        job.run_one(LOG)
        alerts = store.list(LOG, rule=SEAL_RULE)
        assert [a.severity for a in alerts] == ["high"]
        assert "no sealing key" in alerts[0].message
    finally:
        logs.close()
    with open_log(tmp_path / "plain", clock) as plain:
        assert sealing.seal_line(plain, plain.checkpoint(), clock.now) is None
