"""``sealtrail seal init|status|run`` and ``sealtrail verify --seal-key`` on the real clock
(one-second epochs), in-process as the other CLI tests run the command line."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sealtrail.core.seal import SealKey
from sealtrail.log.headmemory import STATE_DIR_ENV
from tests.clirun import Ran, sealtrail


def run(data: Path, *args: str, stdin: bytes | None = None) -> Ran[str]:
    """``sealtrail --data DATA ARGS``; head memories of verifications kept apart."""
    env = {STATE_DIR_ENV: str(data.parent / "auditor-state")}
    return sealtrail("--data", data, *args, stdin=stdin, env=env, text=True)


def events(n: int) -> bytes:
    """``n`` JSON Lines events."""
    return b"".join(json.dumps({"actor": {"id": f"u{i}"}, "action": "doc.read",
                                "outcome": "success"}).encode() + b"\n" for i in range(n))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with a default log of three events."""
    d = tmp_path / "data"
    assert run(d, "init").returncode == 0
    assert run(d, "append", stdin=events(3)).returncode == 0
    return d


def wait_next_second() -> None:
    """Sleep into the next whole second (one-second epochs: the next epoch)."""
    time.sleep(1.05 - time.time() % 1)


def test_init_prints_the_seal_key_last_and_tells_to_keep_it_off_the_host(data: Path) -> None:
    """init: the last line of stdout is the seal key (parses, names the log); stderr says to
    keep it off the host; seal.key is 0600; a second init is refused (exit 2)."""
    ran = run(data, "seal", "init", "--epoch-seconds", "1", "--epochs", "600")
    assert ran.returncode == 0, ran.stderr
    key = SealKey.parse(ran.stdout.strip().split("\n")[-1])
    assert (key.origin, key.seconds, key.epochs) == ("sealtrail/default", 1, 600)
    assert "OFF this host" in " ".join(ran.stderr.split())
    assert stat.S_IMODE((data / "default" / "seal.key").stat().st_mode) == 0o600
    again = run(data, "seal", "init", "--epoch-seconds", "1", "--epochs", "600")
    assert again.returncode == 2
    assert "already has a sealing key" in again.stderr


def test_status_run_and_verify_with_the_seal_key(data: Path, tmp_path: Path) -> None:
    """status shows epoch 0 and the anchor; after an epoch passes, run records epoch 0's
    final seal and evolves; verify --seal-key (text or file, text or JSON) reports them."""
    ran = run(data, "seal", "init", "--epoch-seconds", "1", "--epochs", "600")
    key = ran.stdout.strip().split("\n")[-1]
    status = json.loads(run(data, "seal", "status").stdout)
    assert status["sealing"] is True
    assert status["seal_key"] == key
    assert status["last_seal"]["epoch"] == 0
    assert status["last_seal"]["size"] == 3
    assert status["last_seal"]["index"] == 3
    assert run(data, "append", stdin=events(2)).returncode == 0
    wait_next_second()
    assert json.loads(run(data, "seal", "status").stdout)["due"] is True
    out = json.loads(run(data, "seal", "run").stdout)
    assert out["due"] is False
    assert out["round"]["evolved"] is True
    assert out["round"]["from_epoch"] == 0
    assert out["round"]["recorded_index"] == 6
    assert out["epoch"] >= 1
    assert out["last_seal"]["size"] == 6
    ran = run(data, "verify", "--no-derived")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "give --seal-key" in " ".join(ran.stderr.split())
    ran = run(data, "verify", "--no-derived", "--seal-key", key)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "SEALED: 2 recorded seals" in ran.stdout
    assert "give --seal-key" not in " ".join(ran.stderr.split())
    assert "seals entries 0..5" in ran.stdout
    assert "NOT YET SEALED: 1 entries" in ran.stdout
    (tmp_path / "seal.txt").write_text(key + "\n")
    ran = run(data, "verify", "--no-derived", "--json", "--seal-key", str(tmp_path / "seal.txt"))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    doc = json.loads(ran.stdout)
    assert doc["ok"] is True
    assert (doc["seal"]["seals"], doc["seal"]["last_size"], doc["seal"]["unsealed"]) == (2, 6, 1)


def test_run_without_sealing_and_bad_seal_keys_are_usage_errors(data: Path,
                                                                 tmp_path: Path) -> None:
    """seal run on a log without sealing, and --seal-key that is neither a key nor a file
    (or a file without one), exit 2 naming what is wrong; status says sealing is off."""
    assert json.loads(run(data, "seal", "status").stdout) == {"sealing": False}
    ran = run(data, "seal", "run")
    assert ran.returncode == 2
    assert "seal init" in ran.stderr
    ran = run(data, "verify", "--seal-key", "nonsense")
    assert ran.returncode == 2
    assert "--seal-key" in ran.stderr
    (tmp_path / "bad.txt").write_text("sealtrail-seal/v1 sealtrail/default 1 60 0 AAAA\n")
    ran = run(data, "verify", "--seal-key", str(tmp_path / "bad.txt"))
    assert ran.returncode == 2
    assert "epochs" in ran.stderr
    ran = run(data, "verify", "--seal-key", "sealtrail-seal/v1 sealtrail/default x 1 1 AA")
    assert ran.returncode == 2
    assert "start" in ran.stderr


def test_a_seal_key_for_a_log_without_seals_is_tampering(data: Path, tmp_path: Path) -> None:
    """Verifying a log that was never sealed with a seal key (of another log): exit 3 when its
    origin differs, exit 1 when the log has no seal files for the key to check."""
    other = tmp_path / "other"
    assert run(other, "--log", "x", "init").returncode == 0
    key = run(other, "--log", "x", "seal", "init", "--epoch-seconds", "1",
              "--epochs", "8").stdout.strip().split("\n")[-1]
    ran = run(data, "verify", "--no-derived", "--seal-key", key)
    assert ran.returncode == 3, ran.stdout
    assert ran.stdout.startswith("NOT VERIFIED: ")
    renamed = SealKey.parse(key)
    same_origin = SealKey("sealtrail/default", renamed.start, 1, 8, renamed.root)
    ran = run(data, "verify", "--no-derived", "--seal-key", same_origin.format())
    assert ran.returncode == 1, ran.stdout
    assert "seal.pub is missing" in ran.stdout


def test_processes_racing_at_an_epoch_end_record_each_epoch_once(data: Path) -> None:
    """Four ``sealtrail seal run`` processes started together as epoch 0 ends (the file lock
    orders them): each closing epoch's final seal is recorded once (epoch 0's by one of them;
    if the runs take long enough to reach the next epoch end, epoch 1's by one), and the
    chain verifies."""
    ran = run(data, "seal", "init", "--epoch-seconds", "2", "--epochs", "600")
    key = SealKey.parse(ran.stdout.strip().split("\n")[-1])
    time.sleep(max(0.0, key.start + 2.05 - time.time()))
    procs = [subprocess.Popen([sys.executable, "-m", "sealtrail", "--data", str(data), "seal",
                               "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(4)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    closed = sorted(o["round"]["from_epoch"] for o in outs if o["round"]["evolved"])
    assert closed[0] == 0
    assert len(closed) == len(set(closed))
    ran = run(data, "verify", "--no-derived", "--seal-key", key.format())
    assert ran.returncode == 0, ran.stdout
    assert f"SEALED: {1 + len(closed)} recorded seals" in ran.stdout
