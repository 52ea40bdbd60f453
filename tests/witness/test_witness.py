"""sealtrail as a C2SP tlog-witness: every answer of ``add-checkpoint`` (200, 400, 403, 404,
409 with ``text/x.tlog.size``, 422), for a sealtrail log and for a log of another
implementation (a signed-note Ed25519 log built here over the RFC 6962 reference tree, the way
Go's checksum database signs), over real HTTP; cosignatures checked by the reference
implementation of tests/witness/test_cosignature.py, not the code under test."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sealtrail.core.cosignature import CosignerKey
from sealtrail.core.note import Signer
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.witness import WitnessState
from sealtrail.server.witness_app import create_witness_app
from tests.clirun import sealtrail
from tests.reference_tree import ReferenceTree

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def reference_verify(key: CosignerKey, body: str, line: str) -> int:
    """The spec's check, written out: the line's key id, then Ed25519 over
    "cosignature/v1\\ntime T\\n" || body; returns T."""
    name, data_b64 = line.removeprefix("\u2014 ").split(" ")
    data = base64.b64decode(data_b64)
    assert name == key.name
    assert data[:4] == hashlib.sha256(name.encode() + b"\n\x04" + key.public_key).digest()[:4]
    (timestamp,) = struct.unpack(">Q", data[4:12])
    message = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + body.encode()
    Ed25519PublicKey.from_public_bytes(key.public_key).verify(data[12:], message)
    return int(timestamp)


class OtherLog:
    """A log of another implementation: RFC 6962 over the reference tree, checkpoints as C2SP
    signed notes with an Ed25519 key (Go's sumdb/note format)."""

    def __init__(self, origin: str) -> None:
        self.signer = Signer.from_seed(origin, hashlib.sha256(origin.encode()).digest())
        self.entries: list[bytes] = []

    def append(self, n: int) -> None:
        self.entries += [f"entry {len(self.entries) + i}".encode() for i in range(n)]

    def checkpoint(self, size: int | None = None, root: bytes | None = None) -> str:
        size = len(self.entries) if size is None else size
        root = ReferenceTree(self.entries).root(size) if root is None else root
        body = f"{self.signer.name}\n{size}\n{base64.b64encode(root).decode()}\n"
        return self.signer.sign(body)

    def proof(self, old: int, new: int) -> list[bytes]:
        return ReferenceTree(self.entries).proof(old, new) if 0 < old < new else []


def body(old: int, proof: list[bytes], note: str) -> bytes:
    lines = [f"old {old}"] + [base64.b64encode(h).decode() for h in proof]
    return ("\n".join(lines) + "\n\n" + note).encode()


@pytest.fixture
def witness(tmp_path: Path) -> tuple[WitnessState, CosignerKey]:
    state = WitnessState(tmp_path / "w")
    key = state.init("witness.example/w1")
    return state, key


def test_a_log_is_witnessed_as_it_grows(witness: tuple[WitnessState, CosignerKey]) -> None:
    state, key = witness
    log = OtherLog("example.com/other-log")
    state.add_log(log.signer.verifier().format())
    log.append(5)
    first = state.add_checkpoint(body(0, [], log.checkpoint()), NOW)
    assert first.status == 200, first.body
    note = log.checkpoint()
    assert reference_verify(key, note.split("\n\n")[0] + "\n", first.body.rstrip("\n")) == int(
        NOW.timestamp())
    log.append(8)
    grown = state.add_checkpoint(body(5, log.proof(5, 13), log.checkpoint()), NOW)
    assert grown.status == 200, grown.body
    stored = state.latest("example.com/other-log")
    assert stored is not None
    assert stored.size == 13


def test_every_refusal_of_the_spec(witness: tuple[WitnessState, CosignerKey]) -> None:
    state, _ = witness
    log = OtherLog("example.com/other-log")
    state.add_log(log.signer.verifier().format())
    log.append(10)
    assert state.add_checkpoint(body(0, [], log.checkpoint()), NOW).status == 200
    log.append(6)
    # 409: old is not the witness's latest size; the body says which, in its own type.
    stale = state.add_checkpoint(body(3, log.proof(3, 16), log.checkpoint()), NOW)
    assert (stale.status, stale.content_type, stale.body) == (409, "text/x.tlog.size", "10\n")
    # 422: a consistency proof that does not verify (one hash changed).
    bad = log.proof(10, 16)
    bad[0] = bytes(32)
    assert state.add_checkpoint(body(10, bad, log.checkpoint()), NOW).status == 422
    # 400: old above the checkpoint's size; a malformed body.
    assert state.add_checkpoint(body(20, [], log.checkpoint()), NOW).status == 400
    assert state.add_checkpoint(b"old 010\n\n" + log.checkpoint().encode(), NOW).status == 400
    assert state.add_checkpoint(b"no size line\n\n", NOW).status == 400
    # 404: an origin the witness does not know.
    other = OtherLog("example.com/unknown")
    other.append(1)
    assert state.add_checkpoint(body(0, [], other.checkpoint()), NOW).status == 404
    # 403: the right origin, signed by another key.
    impostor = Signer.from_seed("example.com/other-log", bytes(32))
    forged = impostor.sign(log.checkpoint().split("\n\n")[0] + "\n")
    assert state.add_checkpoint(body(10, log.proof(10, 16), forged), NOW).status == 403
    # The refusals changed nothing: the latest is still 10, and 16 is accepted from it.
    assert state.add_checkpoint(body(10, log.proof(10, 16), log.checkpoint()), NOW).status == 200


def test_a_fork_is_refused(witness: tuple[WitnessState, CosignerKey]) -> None:
    """The same size with another root (the log signed two histories): 409, not cosigned."""
    state, _ = witness
    log = OtherLog("example.com/other-log")
    state.add_log(log.signer.verifier().format())
    log.append(4)
    assert state.add_checkpoint(body(0, [], log.checkpoint()), NOW).status == 200
    fork = log.checkpoint(root=hashlib.sha256(b"another history").digest())
    answer = state.add_checkpoint(body(4, [], fork), NOW)
    assert (answer.status, answer.body) == (409, "4\n")
    # The same checkpoint again is fine (a retry after a lost answer).
    assert state.add_checkpoint(body(4, [], log.checkpoint()), NOW).status == 200


def test_a_sealtrail_log_over_http(tmp_path: Path,
                                   witness: tuple[WitnessState, CosignerKey]) -> None:
    """A sealtrail log's checkpoints and consistency proofs, posted over real HTTP."""
    state, key = witness
    with AuditLog.open(tmp_path / "log") as alog:
        alog.append_many([{"actor": {"id": "u"}, "action": "a.b", "outcome": "success"}] * 3)
        state.add_log(alog.vkey())
        first_note = alog.checkpoint().note
        first_size = alog.size
        alog.append_many([{"actor": {"id": "u"}, "action": "a.c", "outcome": "success"}] * 4)
        second_note = alog.checkpoint().note
        proof = alog.prove_consistency(first_size).to_json()["consistency"]
    with _serving(create_witness_app(state, clock=lambda: NOW)) as url:
        one = httpx.post(f"{url}/add-checkpoint", content=body(0, [], first_note))
        assert one.status_code == 200, one.text
        two = httpx.post(f"{url}/add-checkpoint", content=body(
            first_size, [base64.b64decode(h) for h in proof], second_note))
        assert two.status_code == 200, two.text
        reference_verify(key, second_note.split("\n\n")[0] + "\n", two.text.rstrip("\n"))
        again = httpx.post(f"{url}/add-checkpoint", content=body(0, [], first_note))
        assert again.status_code == 409
        assert again.headers["content-type"] == "text/x.tlog.size"
        assert again.text == f"{first_size + 4}\n"


def test_the_cli_contract(tmp_path: Path) -> None:
    """``witness init`` prints the cosigner vkey last; ``add-log`` trusts a log's vkey."""
    w = tmp_path / "w"
    ran = sealtrail("--data", str(w), "witness", "init", text=True)
    assert ran.returncode == 0, ran.stderr
    vkey = ran.stdout.strip().split("\n")[-1]
    key = CosignerKey.parse(vkey)
    assert (w / "_witness" / "witness.key").stat().st_mode & 0o777 == 0o600
    again = sealtrail("--data", str(w), "witness", "init", text=True)
    assert again.returncode != 0
    log = OtherLog("example.com/cli-log")
    added = sealtrail("--data", str(w), "witness", "add-log", log.signer.verifier().format(),
                      text=True)
    assert added.returncode == 0, added.stderr
    log.append(2)
    answer = WitnessState(w).add_checkpoint(body(0, [], log.checkpoint()), NOW)
    assert answer.status == 200
    reference_verify(key, log.checkpoint().split("\n\n")[0] + "\n", answer.body.rstrip("\n"))
    bad = sealtrail("--data", str(w), "witness", "add-log", "not-a-key", text=True)
    assert bad.returncode == 2
    assert "verifier key" in bad.stderr


@contextlib.contextmanager
def _serving(app: Any) -> Iterator[str]:
    """The app on uvicorn, on loopback, in a thread."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


class SumdbLog(OtherLog):
    """Go's checksum database: the key is named ``sum.golang.org``, the checkpoints' origin
    line is ``go.sum database tree``."""

    def __init__(self) -> None:
        super().__init__("sum.golang.org")

    def checkpoint(self, size: int | None = None, root: bytes | None = None) -> str:
        size = len(self.entries) if size is None else size
        root = ReferenceTree(self.entries).root(size) if root is None else root
        body = f"go.sum database tree\n{size}\n{base64.b64encode(root).decode()}\n"
        return self.signer.sign(body)


def test_a_log_whose_origin_is_not_its_key_name(tmp_path: Path,
                                                witness: tuple[WitnessState, CosignerKey]
                                                ) -> None:
    """``add-log VKEY --origin O``: the sum.golang.org shape (origin 'go.sum database tree')
    is cosigned; trusted by the key's name alone it is an unknown origin (404)."""
    state, key = witness
    log = SumdbLog()
    log.append(5)
    vkey = log.signer.verifier().format()
    state.add_log(vkey)
    assert state.add_checkpoint(body(0, [], log.checkpoint()), NOW).status == 404
    ran = sealtrail("--data", str(tmp_path / "w"), "witness", "add-log", vkey,
                    "--origin", "go.sum database tree", text=True)
    assert ran.returncode == 0, ran.stderr
    answer = state.add_checkpoint(body(0, [], log.checkpoint()), NOW)
    assert answer.status == 200, answer.body
    reference_verify(key, log.checkpoint().split("\n\n")[0] + "\n", answer.body.rstrip("\n"))
    log.append(3)
    grown = state.add_checkpoint(body(5, log.proof(5, 8), log.checkpoint()), NOW)
    assert grown.status == 200, grown.body


def test_a_size_past_63_bits_is_refused_and_releases_the_lock(
        witness: tuple[WitnessState, CosignerKey]) -> None:
    """A checkpoint of size >= 2^63 (valid in the format, not storable) is a 400, and the
    witness goes on answering other requests (no transaction left open)."""
    state, _ = witness
    log = OtherLog("example.com/huge")
    state.add_log(log.signer.verifier().format())
    huge = state.add_checkpoint(body(0, [], log.checkpoint(1 << 63, b"\1" * 32)), NOW)
    assert huge.status == 400
    log.append(2)
    assert state.add_checkpoint(body(0, [], log.checkpoint()), NOW).status == 200
