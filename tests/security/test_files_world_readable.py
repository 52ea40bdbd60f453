"""Attack: another local user reads exported personal data through the file's mode bits.

With the usual umask 022 a file created with ``open(path, "w")`` is world-readable (0644), so
an export or evidence bundle in a shared directory hands the opened personal fields to every
account on the host. Every file the CLI writes with event content is created 0600 whatever
the umask, and the members of a bundle archive carry 0600 too (an unpacked bundle stays
private). These tests run the CLI (in-process, ``tests/clirun.py``: the umask is the process's)
under umask 022 (and 000).
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sealtrail import AuditLog
from tests.clirun import Ran, sealtrail


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run the block (and the processes it starts, which inherit it) under ``mask``."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def run(*args: str, mask: int = 0o022) -> Ran[str]:
    with umask(mask):
        return sealtrail(*args, text=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    with AuditLog.open(d) as log:
        log.append_many([{"action": "doc.read", "outcome": "success",
                          "actor": {"id": f"u{i}", "ip": "192.0.2.7", "name": "Jane Doe"},
                          "category": "data_access", "subjects": [f"patient-{i}"]}
                         for i in range(5)])
    return d


@pytest.mark.parametrize("fmt", ["ocsf", "cef", "ecs", "csv", "jsonl", "syslog"])
@pytest.mark.parametrize("mask", [0o022, 0o000])
def test_siem_export_file_is_0600(data: Path, tmp_path: Path, fmt: str, mask: int) -> None:
    out = tmp_path / "shared" / f"export.{fmt}"
    out.parent.mkdir(mode=0o755)
    res = run("--data", str(data), "export", "--format", fmt, "--open-sealed", "--out",
              str(out), mask=mask)
    assert res.returncode == 0, res.stderr
    assert mode(out) == 0o600
    assert "Jane Doe" in out.read_text()  # it does hold opened personal data
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temporary left


def test_an_existing_world_readable_export_is_replaced_by_a_private_one(
        data: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"
    out.write_text("old\n")
    out.chmod(0o644)
    res = run("--data", str(data), "export", "--format", "jsonl", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert mode(out) == 0o600
    assert "old" not in out.read_text()


@pytest.mark.parametrize("name", ["evidence.zip", "evidence.tar.gz"])
@pytest.mark.parametrize("mask", [0o022, 0o000])
def test_evidence_bundle_and_its_members_are_0600(data: Path, tmp_path: Path, name: str,
                                                   mask: int) -> None:
    bundle = tmp_path / name
    res = run("--data", str(data), "export", "--bundle", str(bundle), mask=mask)
    assert res.returncode == 0, res.stderr
    assert mode(bundle) == 0o600
    if name.endswith(".zip"):
        with zipfile.ZipFile(bundle) as z:
            modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
        assert all(stat.S_ISREG(m) and stat.S_IMODE(m) == 0o600 for m in modes.values()), modes
        unpack = tmp_path / "unzipped"
        with umask(mask), zipfile.ZipFile(bundle) as z:
            for info in z.infolist():  # what an extractor honouring the stored mode does
                target = Path(z.extract(info, unpack))
                target.chmod(stat.S_IMODE(info.external_attr >> 16))
        assert mode(unpack / "events.jsonl") == 0o600
    else:
        with tarfile.open(bundle) as t:
            modes = {m.name: m.mode for m in t.getmembers()}
            unpack = tmp_path / "untarred"
            with umask(mask):
                t.extractall(unpack, filter="tar")
        assert set(modes.values()) == {0o600}, modes
        assert mode(unpack / "events.jsonl") == 0o600
    assert "events.jsonl" in modes
    assert "proofs.jsonl" in modes
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    vkey = run("--data", str(data), "vkey").stdout.strip()
    assert run("verify-bundle", str(bundle), "--vkey", vkey).returncode == 0
