"""Shared pieces of the witnessing tests: an independent C2SP cosignature/v1 checker, witness
HTTP servers on loopback (in a thread, or the real ``sealtrail witness serve`` process), the
``sealtrail`` console command as a subprocess, and direct SQLite edits of a log's meta rows.

The checker (:func:`check_cosigned`) is written here from the specs (c2sp.org/tlog-cosignature,
c2sp.org/signed-note) with ``hashlib``, ``struct``, ``base64`` and ``cryptography`` only: it
does not import sealtrail's note, cosignature or policy code, so a bug there cannot hide itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sealtrail.log import witnesses
from sealtrail.log.witness import WitnessState
from sealtrail.server.witness_app import create_witness_app
from tests.ports import free_port

# ``python -m sealtrail`` has no __main__ module; the CLI package has one.
SEALTRAIL = [sys.executable, "-m", "sealtrail.cli"]
EM_DASH = "\u2014 "


# -- the independent cosignature/v1 checker -------------------------------------------------

@dataclass(frozen=True)
class RefKey:
    """A cosigner vkey as the spec writes it: ``name+hex(key id)+base64(0x04 || pub)``."""

    name: str
    key_id: bytes
    public: bytes

    @classmethod
    def parse(cls, vkey: str) -> RefKey:
        name, kid_hex, data_b64 = vkey.strip().split("+", 2)
        data = base64.b64decode(data_b64, validate=True)
        assert (data[0], len(data)) == (0x04, 33), "not an Ed25519 cosignature/v1 vkey"
        kid = hashlib.sha256(name.encode() + b"\n\x04" + data[1:]).digest()[:4]
        assert kid.hex() == kid_hex, "the vkey's key id is not SHA-256(name||0x0A||0x04||pub)"
        return cls(name, kid, data[1:])


def split_note(note: str) -> tuple[str, list[str]]:
    """A signed note's body (through its last text line's newline) and its signature lines."""
    body, sep, sigs = note.partition("\n\n")
    assert sep, "a signed note has an empty line between text and signatures"
    assert sigs.endswith("\n")
    lines = sigs[:-1].split("\n")
    assert all(line.startswith(EM_DASH) for line in lines), lines
    return body + "\n", lines


def verify_line(key: RefKey, body: str, line: str) -> int:
    """Check one ``— name base64(kid || u64be(time) || ed25519 sig)`` line; return its time.

    The signed message is ``cosignature/v1\\ntime <t>\\n`` followed by the checkpoint body."""
    name, data_b64 = line.removeprefix(EM_DASH).split(" ")
    assert name == key.name
    data = base64.b64decode(data_b64, validate=True)
    assert len(data) == 4 + 8 + 64, f"a cosignature/v1 line holds 76 bytes, not {len(data)}"
    assert data[:4] == key.key_id
    (timestamp,) = struct.unpack(">Q", data[4:12])
    assert timestamp < 1 << 63
    message = f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode()
    Ed25519PublicKey.from_public_bytes(key.public).verify(data[12:], message)
    return int(timestamp)


def check_cosigned(note: str, vkeys: list[str]) -> dict[str, int]:
    """Every line of ``note`` that names one of ``vkeys``' witnesses, verified (an invalid one
    fails the test); the witnesses that cosigned, with the time each signed at."""
    keys = {k.name: k for k in map(RefKey.parse, vkeys)}
    body, lines = split_note(note)
    found: dict[str, int] = {}
    for line in lines:
        name = line.removeprefix(EM_DASH).split(" ")[0]
        if name in keys:
            assert name not in found, f"two lines of witness {name}"
            found[name] = verify_line(keys[name], body, line)
    return found


def note_size(note: str) -> int:
    """The tree size a checkpoint note states (its second line)."""
    return int(note.split("\n")[1])


def note_root(note: str) -> str:
    """The root hash (base64) a checkpoint note states (its third line)."""
    return note.split("\n")[2]


def request_body(old: int, proof: list[bytes], note: str) -> bytes:
    """A c2sp.org/tlog-witness add-checkpoint body, written out here."""
    lines = [f"old {old}"] + [base64.b64encode(h).decode() for h in proof]
    return ("\n".join(lines) + "\n\n" + note).encode()


class Recorder:
    """The real httpx post, with every answer's status kept (a spy, not a stand-in)."""

    def __init__(self, client: httpx.Client) -> None:
        self._post = witnesses.httpx_post(client)
        self.calls: list[tuple[str, int, int]] = []   # (url, old size sent, status)

    def __call__(self, url: str, body: bytes) -> tuple[int, str, str]:
        answer = self._post(url, body)
        old = int(body.split(b"\n", 1)[0].removeprefix(b"old "))
        self.calls.append((url, old, answer[0]))
        return answer


# -- witness servers ------------------------------------------------------------------------


class ThreadWitness:
    """A witness directory served by ``create_witness_app`` on uvicorn in a thread, on a fixed
    loopback port, that can be stopped (down) and started again (back) on the same URL."""

    def __init__(self, directory: Path, name: str) -> None:
        self.state = WitnessState(directory)
        self.vkey = self.state.init(name).format()
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server = uvicorn.Server(uvicorn.Config(create_witness_app(self.state),
                                               host="127.0.0.1", port=self.port,
                                               log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True, name=f"witness-{self.name}")
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive(), "the witness server stopped before it started"
            assert time.monotonic() < deadline, "the witness server did not start in 20 s"
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(20)
            assert not self._thread.is_alive()
        self._server = self._thread = None

    def size(self, origin: str) -> int:
        stored = self.state.latest(origin)
        return -1 if stored is None else stored.size


@contextmanager
def thread_witnesses(root: Path, *names: str) -> Iterator[list[ThreadWitness]]:
    """Witnesses (initialised under ``root/<n>``, serving) stopped at the end."""
    made = [ThreadWitness(root / f"w{i}", name) for i, name in enumerate(names)]
    try:
        for w in made:
            w.start()
        yield made
    finally:
        for w in made:
            w.stop()


# -- the command line as subprocesses --------------------------------------------------------

def run(data: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``sealtrail --data DATA ARGS`` in a subprocess, to completion."""
    return subprocess.run([*SEALTRAIL, "--data", str(data), *args], capture_output=True,
                          text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL,
                          env={**os.environ, "COLUMNS": "200"})


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, seconds: float = 30) -> None:
    """Wait until something accepts on loopback ``port`` (the process must stay alive)."""
    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, f"exited {proc.returncode}: {log.read_text()}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"nothing on port {port}: {log.read_text()}"
        time.sleep(0.05)


@dataclass
class Proc:
    """A long-running ``sealtrail`` process, its port and the file its output goes to."""

    proc: subprocess.Popen[bytes]
    port: int
    out: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown
            self.proc.kill()
            self.proc.wait()
            raise

    def kill9(self) -> None:
        self.proc.kill()  # SIGKILL
        self.proc.wait(20)


def start_witness(data: Path, port: int, out: Path) -> Proc:
    """``sealtrail --data DATA witness serve --port PORT`` (answering when this returns)."""
    with out.open("ab") as sink:
        proc = subprocess.Popen([*SEALTRAIL, "--data", str(data), "witness", "serve",
                                 "--host", "127.0.0.1", "--port", str(port)],
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, out)
    except BaseException:
        proc.kill()
        proc.wait(20)
        raise
    return Proc(proc, port, out)


def start_serve(data: Path, port: int, out: Path, *args: str, workers: int = 1) -> Proc:
    """``sealtrail --data DATA serve --port PORT ARGS`` (answering /healthz when returned);
    one worker process and the monitor in it unless ``workers`` says otherwise."""
    with out.open("ab") as sink:
        proc = subprocess.Popen([*SEALTRAIL, "--data", str(data), "serve", "--port", str(port),
                                 "--workers", str(workers), "--monitor-in-process", *args],
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    served = Proc(proc, port, out)
    deadline = time.monotonic() + 30
    try:
        with httpx.Client(base_url=served.url, timeout=2) as client:
            while True:
                assert proc.poll() is None, f"serve exited {proc.returncode}: {out.read_text()}"
                try:
                    if client.get("/healthz").status_code == 200:
                        return served
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"serve did not answer: {out.read_text()}"
                time.sleep(0.1)
    except BaseException:
        served.stop()
        raise


def last_line(text: str) -> str:
    """The last non-empty line of a command's output."""
    return [line for line in text.split("\n") if line.strip()][-1].strip()


# -- direct edits of a log's SQLite meta rows (what a crash or an intruder leaves) -----------

def meta_db(data: Path, log: str = "default") -> Path:
    return data / log / "log.db"


def read_meta(data: Path, key: str, log: str = "default") -> str | None:
    db = sqlite3.connect(meta_db(data, log))
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    finally:
        db.close()
    return None if row is None else str(row[0])


def write_meta(data: Path, key: str, value: str | None, log: str = "default") -> None:
    """Set (None: delete) one meta row with plain SQL, outside sealtrail."""
    db = sqlite3.connect(meta_db(data, log), timeout=30)
    try:
        with db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) "
                           "DO UPDATE SET value = excluded.value", (key, value))
    finally:
        db.close()


def witnessing_doc(data: Path, log: str = "default") -> dict[str, Any]:
    """The log's stored witnessing state (meta row ``witnessing``) as JSON."""
    text = read_meta(data, "witnessing", log)
    assert text is not None, "no witnessing state stored"
    doc: dict[str, Any] = json.loads(text)
    return doc


def witness_db_size(witness_dir: Path, origin: str) -> int:
    """The size a witness directory holds for ``origin`` (read with plain SQL; -1: none)."""
    path = witness_dir / "_witness" / "witness.db"
    if not path.exists():
        return -1
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute("SELECT size FROM latest WHERE origin = ?", (origin,)).fetchone()
    finally:
        db.close()
    return -1 if row is None else int(row[0])
