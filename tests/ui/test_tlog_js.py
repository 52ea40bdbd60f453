"""``static/tlog.js`` (the console's in-browser verifier) against the Python core, in Chromium.

Every case runs through both implementations and the outcomes must be identical: the same root
or the same refusal. The proofs are real (a log of 40 entries, every index at every size, every
pair of sizes), then each is tampered with (a bit flipped in each hash, paths cut or lengthened,
indexes and sizes moved) — the Python side is the reference, as tests/reference_tree.py is for
the Python tree. Notes, verifier keys, checkpoints and base64 get the same treatment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sealtrail.core import b64, note
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.errors import SealtrailError
from sealtrail.core.merkle import verify as mv
from sealtrail.core.merkle.hashing import leaf_hash, node_hash
from sealtrail.log.auditlog import AuditLog
from tests.ui.proof_fixtures import static_url, tlog_page

__all__ = ["static_url", "tlog_page"]  # fixtures used by name

pytestmark = pytest.mark.browser

SIZE = 40

# Runs a list of cases in the page; each gives {"ok": true, "value": ...} or
# {"ok": false, "reason": ..., "message": ...}. A JS exception that is not a TlogError shows
# as reason "js:<name>", which no Python outcome matches.
RUNNER = """
async (cases) => {
  const t = await import("/tlog.js");
  const d = (s) => t.b64decode(s);
  const enc = (b) => t.b64encode(b);
  const big = (x) => (typeof x === "string" ? BigInt(x) : x);
  const key = (k) => ({ name: k.name, keyId: t.hex(k.keyId), publicKey: enc(k.publicKey) });
  async function one(c) {
    switch (c.kind) {
      case "leaf": return enc(await t.leafHash(d(c.leaf)));
      case "node": return enc(await t.nodeHash(d(c.left), d(c.right)));
      case "root_incl":
        return enc(await t.rootFromInclusionProof(big(c.index), big(c.size), d(c.leaf),
                                                  c.path.map(d)));
      case "verify_incl":
        await t.verifyInclusion(c.index, c.size, d(c.leaf), c.path.map(d), d(c.root));
        return "ok";
      case "roots_cons": {
        const [a, b] = await t.rootsFromConsistencyProof(
          big(c.first), big(c.second), d(c.root1), c.path.map(d));
        return [enc(a), enc(b)];
      }
      case "verify_cons":
        await t.verifyConsistency(c.first, c.second, d(c.root1), d(c.root2), c.path.map(d));
        return "ok";
      case "b64": return enc(t.b64decode(c.text));
      case "vkey": return key(await t.parseVkey(c.text));
      case "note": {
        const keys = [];
        for (const v of c.vkeys) keys.push(await t.parseVkey(v));
        return (await t.verifyNote(c.text, keys)).text;
      }
      case "checkpoint": {
        const cp = t.parseCheckpoint(c.text);
        return [cp.origin, cp.size.toString(), enc(cp.root), cp.extensions];
      }
      case "open_cp": {
        const cp = await t.openCheckpoint(c.text, await t.parseVkey(c.vkey));
        return [cp.origin, cp.size.toString(), enc(cp.root), cp.extensions];
      }
      case "incl_doc": {
        const p = t.parseInclusionProof(c.text);
        return [p.leafIndex.toString(), p.treeSize.toString(), enc(p.leafHash),
                p.auditPath.map(enc)];
      }
      case "jsonl": return t.parseJsonLines(c.text);
      default: throw new Error("unknown case " + c.kind);
    }
  }
  const out = [];
  for (const c of cases) {
    try {
      out.push({ ok: true, value: await one(c) });
    } catch (e) {
      out.push({ ok: false, reason: e instanceof t.TlogError ? e.reason : "js:" + e.name,
                 message: String(e.message) });
    }
  }
  return out;
}
"""

Outcome = dict[str, Any]


def _e(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _d(s: str) -> bytes:
    return base64.b64decode(s)


def _python(case: dict[str, Any]) -> Outcome:
    """The reference outcome of a case, computed by sealtrail's Python core."""
    k = case["kind"]
    try:
        if k == "leaf":
            return {"ok": True, "value": _e(leaf_hash(_d(case["leaf"])))}
        if k == "root_incl":
            return {"ok": True, "value": _e(mv.root_from_inclusion_proof(
                int(case["index"]), int(case["size"]), _d(case["leaf"]),
                [_d(h) for h in case["path"]]))}
        if k == "verify_incl":
            mv.verify_inclusion(case["index"], case["size"], _d(case["leaf"]),
                                [_d(h) for h in case["path"]], _d(case["root"]))
            return {"ok": True, "value": "ok"}
        if k == "roots_cons":
            a, b = mv.roots_from_consistency_proof(int(case["first"]), int(case["second"]),
                                                   _d(case["root1"]),
                                                   [_d(h) for h in case["path"]])
            return {"ok": True, "value": [_e(a), _e(b)]}
        if k == "verify_cons":
            mv.verify_consistency(case["first"], case["second"], _d(case["root1"]),
                                  _d(case["root2"]), [_d(h) for h in case["path"]])
            return {"ok": True, "value": "ok"}
        if k == "b64":
            return {"ok": True, "value": _e(b64.decode(case["text"], "text"))}
        if k == "vkey":
            v = note.Verifier.parse(case["text"])
            return {"ok": True, "value": {"name": v.name, "keyId": v.key_id.hex(),
                                          "publicKey": _e(v.public_key)}}
        if k == "note":
            keys = [note.Verifier.parse(v) for v in case["vkeys"]]
            return {"ok": True, "value": note.open_note(case["text"], keys).text}
        if k == "checkpoint":
            cp = Checkpoint.parse(case["text"])
            return {"ok": True, "value": [cp.origin, str(cp.size), _e(cp.root),
                                          list(cp.extensions)]}
        if k == "open_cp":
            from sealtrail.core.checkpoint import open_checkpoint
            cp = open_checkpoint(case["text"], note.Verifier.parse(case["vkey"]))
            return {"ok": True, "value": [cp.origin, str(cp.size), _e(cp.root),
                                          list(cp.extensions)]}
        if k == "incl_doc":
            from sealtrail.core.proofs import InclusionProof
            p = InclusionProof.parse(case["text"])
            return {"ok": True, "value": [str(p.leaf_index), str(p.tree_size), _e(p.leaf_hash),
                                          [_e(h) for h in p.audit_path]]}
        if k == "jsonl":
            return {"ok": True, "value": [json.loads(line) for line in
                                          case["text"].split("\n") if line]}
    except SealtrailError as exc:
        return {"ok": False, "message": str(exc)}
    raise AssertionError(f"unknown case kind {k}")


def _flip(h: str, bit: int) -> str:
    raw = bytearray(_d(h))
    raw[bit // 8 % len(raw)] ^= 1 << (bit % 8)
    return _e(bytes(raw))


@pytest.fixture(scope="module")
def real_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditLog]:
    """A real (encrypted) log of SIZE entries, one commit each."""
    directory: Path = tmp_path_factory.mktemp("tlogjs")
    with AuditLog.open(directory, "default") as alog:
        for i in range(SIZE):
            alog.append({"actor": {"id": f"u{i}", "ip": "192.0.2.1"}, "action": "doc.read",
                         "outcome": "success", "target": {"type": "doc", "id": f"d{i}"},
                         "metadata": {"n": i, "text": "line\u2028sep"}})
        yield alog


@pytest.fixture(scope="module")
def run_js(tlog_page: Any) -> Callable[[list[dict[str, Any]]], list[Outcome]]:
    """Run cases through tlog.js in the page (in batches, to keep each evaluate short)."""
    def run(cases: list[dict[str, Any]]) -> list[Outcome]:
        out: list[Outcome] = []
        for i in range(0, len(cases), 2000):
            out.extend(tlog_page.evaluate(RUNNER, cases[i:i + 2000]))
        return out
    return run


def _compare(cases: list[dict[str, Any]], js: list[Outcome], *, mixed: bool = True) -> None:
    """Identical outcomes: same value, or both refuse (JS with a TlogError's reason)."""
    assert len(js) == len(cases)
    bad = []
    for case, got in zip(cases, js, strict=True):
        want = _python(case)
        if want["ok"] != got["ok"] or (want["ok"] and want["value"] != got["value"]) or (
                not got["ok"] and str(got.get("reason", "")).startswith("js:")):
            bad.append((case, want, got))
    assert not bad, f"{len(bad)} of {len(cases)} differ; first: {bad[:3]}"
    if mixed:  # a batch that only passes (or only fails) tests nothing
        assert {o["ok"] for o in js} == {True, False}


def test_leaf_hashes_of_real_entries(real_log: AuditLog, run_js: Callable[..., Any]) -> None:
    """tlog.js hashes each real leaf (sealed fields, U+2028 inside) as the Python core."""
    cases = [{"kind": "leaf", "leaf": _e(e.leaf)} for e in real_log.entries(0, SIZE)]
    cases += [{"kind": "leaf", "leaf": ""}, {"kind": "node", "left": _e(b"a" * 32),
                                             "right": _e(b"b" * 32)}]
    js = run_js(cases)
    _compare(cases[:-1], js[:-1], mixed=False)
    assert js[-1]["value"] == _e(node_hash(b"a" * 32, b"b" * 32))


def test_inclusion_every_index_every_size_and_tampered(
        real_log: AuditLog, run_js: Callable[..., Any]) -> None:
    """Every real proof verifies in both; each tampering (a bit in each hash, the leaf, the
    root, index or size moved, the path cut or lengthened, a short hash) fails in both."""
    leaves = [leaf_hash(e.leaf) for e in real_log.entries(0, SIZE)]
    cases: list[dict[str, Any]] = []
    for size in range(1, SIZE + 1):
        for index in range(size):
            p = real_log.prove_inclusion(index, size)
            assert p.leaf_hash == leaves[index]
            path = [_e(h) for h in p.audit_path]
            good: dict[str, Any] = {"kind": "verify_incl", "index": index, "size": size,
                    "leaf": _e(p.leaf_hash), "path": path, "root": _e(p.root_hash)}
            cases.append(good)
            cases.append({**good, "kind": "root_incl"})
            for j in range(len(path)):
                bad = list(path)
                bad[j] = _flip(bad[j], index * 7 + j)
                cases.append({**good, "path": bad})
            cases.append({**good, "leaf": _flip(good["leaf"], size)})
            cases.append({**good, "root": _flip(good["root"], index)})
            cases.append({**good, "index": index + 1})
            cases.append({**good, "index": (index + 1) % size} if size > 1 else
                         {**good, "size": 0})
            cases.append({**good, "size": size + 1})
            cases.append({**good, "path": path[:-1]} if path else
                         {**good, "path": [good["leaf"]]})
            cases.append({**good, "path": [*path, path[0] if path else good["root"]]})
            if path:
                cases.append({**good, "path": [_e(_d(path[0])[:31]), *path[1:]]})
    _compare(cases, run_js(cases))


def test_consistency_every_pair_and_tampered(real_log: AuditLog,
                                             run_js: Callable[..., Any]) -> None:
    """Every pair of sizes 0 <= m <= n <= SIZE: real proofs verify in both, and each tampering
    fails in both (the edge cases m == n, m == 0 with non-empty proofs or unequal roots)."""
    roots = {n: real_log.prove_consistency(0, n).second_root for n in range(SIZE + 1)}
    cases: list[dict[str, Any]] = []
    for second in range(SIZE + 1):
        for first in range(second + 1):
            p = real_log.prove_consistency(first, second)
            path = [_e(h) for h in p.consistency]
            good: dict[str, Any] = {"kind": "verify_cons", "first": first, "second": second,
                    "root1": _e(roots[first]), "root2": _e(roots[second]), "path": path}
            cases.append(good)
            if 0 < first < second:
                cases.append({**good, "kind": "roots_cons"})
            for j in range(len(path)):
                bad = list(path)
                bad[j] = _flip(bad[j], first * 5 + j)
                cases.append({**good, "path": bad})
            cases.append({**good, "root1": _flip(good["root1"], second)})
            cases.append({**good, "root2": _flip(good["root2"], first)})
            cases.append({**good, "path": path[:-1]} if path else
                         {**good, "path": [good["root1"]]})
            cases.append({**good, "path": [*path, good["root2"]]})
            cases.append({**good, "first": second, "second": first})
            if second < SIZE:
                cases.append({**good, "second": second + 1})
            if first > 1:
                cases.append({**good, "first": first - 1})
    _compare(cases, run_js(cases))


def test_64_bit_sizes_compute_the_same_roots(run_js: Callable[..., Any]) -> None:
    """Indexes and sizes up to 2^64 - 1 (BigInt arithmetic in JS): random paths of the
    implied length give the same roots in both; one hash more or less is refused by both."""
    rng = random.Random(14)
    cases: list[dict[str, Any]] = []
    for _ in range(60):
        size = rng.choice([(1 << 64) - 1, 1 << 63, rng.randrange(1, 1 << 64),
                           rng.randrange(1, 1 << 40)])
        index = rng.randrange(size)
        inner = (index ^ (size - 1)).bit_length()
        n = inner + bin(index >> inner).count("1")
        path = [_e(rng.randbytes(32)) for _ in range(n)]
        # Larger than JS numbers hold exactly: passed as strings, made BigInt in the page.
        cases.append({"kind": "root_incl", "index": str(index), "size": str(size),
                      "leaf": _e(rng.randbytes(32)), "path": path})
        cases.append({**cases[-1], "path": path[:-1]})
        cases.append({**cases[-2], "path": [*path, path[0]]})
        first = rng.randrange(1, size) if size > 1 else 1
        if first < size:
            proof = [_e(rng.randbytes(32)) for _ in range(rng.randrange(1, 70))]
            cases.append({"kind": "roots_cons", "first": str(first), "second": str(size),
                          "root1": _e(rng.randbytes(32)), "path": proof})
    js = run_js(cases)
    _compare(cases, js)
    assert sum(o["ok"] for o in js) >= 60


def _signer(name: str, seed: int) -> note.Signer:
    return note.Signer.from_seed(name, bytes([seed]) * 32)


def _sig_line(signed: str) -> tuple[str, str]:
    """(text with its blank line, last signature line) of a one-signature note."""
    cut = signed.rfind("\n\n")
    return signed[:cut + 2], signed[cut + 2:]


def test_notes_keys_checkpoints_and_base64_agree(real_log: AuditLog,
                                                 run_js: Callable[..., Any]) -> None:
    """Signed notes (real checkpoint, bit flips, padding bits, unknown and wrong keys, several
    signatures, malformed lines), verifier keys, checkpoint bodies, base64 texts and inclusion
    proof documents: the same outcome in tlog.js as in the Python core."""
    cp_note = real_log.checkpoint().note
    vkey = real_log.vkey()
    origin = real_log.origin
    other = _signer(origin, 7)  # same name, another key
    stranger = _signer("stranger", 9)
    body, line = _sig_line(cp_note)
    prefix, sig = line[:-1].rsplit(" ", 1)
    raw = _d(sig)
    cases: list[dict[str, Any]] = [
        {"kind": "note", "text": cp_note, "vkeys": [vkey]},
        {"kind": "open_cp", "text": cp_note, "vkey": vkey},
        {"kind": "open_cp", "text": cp_note, "vkey": other.verifier().format()},
        {"kind": "note", "text": cp_note, "vkeys": [other.verifier().format()]},
        {"kind": "note", "text": cp_note, "vkeys": [other.verifier().format(), vkey]},
        {"kind": "note", "text": body + stranger.sign(body[:-1]).rsplit("\n\n", 1)[1] + line,
         "vkeys": [vkey]},
        {"kind": "note", "text": cp_note.replace("\n\n", "\n"), "vkeys": [vkey]},
        {"kind": "note", "text": cp_note[:-1], "vkeys": [vkey]},
        {"kind": "note", "text": cp_note.replace("\n", "\r\n"), "vkeys": [vkey]},
        {"kind": "note", "text": cp_note.replace("\u2014", "-"), "vkeys": [vkey]},
        {"kind": "note", "text": body + prefix + " " + _e(raw[:4]) + "\n", "vkeys": [vkey]},
        {"kind": "note", "text": body + prefix + " " + _e(raw[:-1]) + "\n", "vkeys": [vkey]},
        {"kind": "note", "text": body + prefix + " " + _e(raw + b"x") + "\n", "vkeys": [vkey]},
        {"kind": "note", "text": body + line + line, "vkeys": [vkey]},
        {"kind": "note", "text": body + "\n", "vkeys": [vkey]},
        {"kind": "note", "text": "", "vkeys": [vkey]},
        {"kind": "note", "text": body.replace("\n", "\n\u0001", 1) + line, "vkeys": [vkey]},
    ]
    # Every bit of the signature flipped in turn, and a non-canonical last character.
    for bit in range(0, len(raw) * 8, 5):
        cases.append({"kind": "note", "vkeys": [vkey],
                      "text": body + prefix + " " + _flip(sig, bit) + "\n"})
    for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/":
        if sig.endswith("="):
            cases.append({"kind": "note", "vkeys": [vkey],
                          "text": body + prefix + " " + sig[:-2] + ch + "=\n"})
    # The signed text changed (each line), the size edited.
    lines = body.split("\n")
    for i in range(3):
        changed = list(lines)
        changed[i] = changed[i] + "0"
        cases.append({"kind": "note", "vkeys": [vkey], "text": "\n".join(changed) + line})
    # Several signers, one trusted; a trusted one failing rejects the note.
    text = f"{origin}\n5\n{_e(bytes(32))}\nextension line\n"
    by_both = other.sign(text) + stranger.sign(text).rsplit("\n\n", 1)[1]
    cases += [
        {"kind": "note", "text": by_both, "vkeys": [stranger.verifier().format()]},
        {"kind": "note", "text": by_both, "vkeys": [other.verifier().format(),
                                                    stranger.verifier().format()]},
        {"kind": "note", "text": by_both, "vkeys": [vkey]},
        {"kind": "open_cp", "text": other.sign(text), "vkey": other.verifier().format()},
        {"kind": "open_cp", "text": stranger.sign(text), "vkey": stranger.verifier().format()},
        {"kind": "note", "vkeys": [other.verifier().format()],
         "text": other.sign(text).replace("extension", "Extension", 1)},
    ]
    # A key that is no curve point (its id matches it): verifies nothing, in both.
    for junk in (b"\xff" * 32, bytes(32), bytes([1]) + bytes(31)):
        kid_junk = note.key_id(origin, 1, junk)
        junk_vkey = note.Verifier(origin, kid_junk, junk).format()
        junk_note = f"{text}\n\u2014 {origin} {_e(kid_junk + bytes(64))}\n"
        cases += [{"kind": "vkey", "text": junk_vkey},
                  {"kind": "note", "text": junk_note, "vkeys": [junk_vkey]}]
    # Verifier keys.
    kid = vkey.split("+")[1]
    rest = vkey.split("+", 2)[2]
    alg2 = _e(b"\x02" + _d(rest)[1:])
    cases += [{"kind": "vkey", "text": t} for t in [
        vkey, vkey + "\n", " " + vkey, vkey.replace(kid, kid.upper()),
        vkey.replace(kid, "00000000"), vkey.replace(kid, kid[:6]), origin + "+" + kid,
        f"{origin}+{kid}+{alg2}", f"{origin}+{kid}+{_e(_d(rest)[:32])}",
        f"a b+{kid}+{rest}", f"+{kid}+{rest}", f"{origin}+{kid}+{rest[:-1]}",
        f"{origin}+{kid}+{rest}=", "", "x", other.verifier().format(),
        stranger.verifier().format(), f"{origin}+zzzzzzzz+{rest}"]]
    # White space exactly as Python's str.isspace/str.strip (not JS's \s and trim): U+FEFF
    # is not white space to Python (kept by strip, allowed in a name); U+001C-U+001F and
    # U+0085 are (stripped around a key, refused in a name).
    odd = _signer("odd\ufeffname", 11)
    odd_text = f"odd\ufeffname\n7\n{_e(bytes(32))}\n"
    cases += [{"kind": "vkey", "text": t} for t in [
        "\ufeff" + vkey, vkey + "\ufeff", "\x1c" + vkey, vkey + "\x1f", "\x85" + vkey + "\x85",
        "\u3000" + vkey + "\u2028", "\u180e" + vkey, odd.verifier().format()]]
    for ch in "\x1c\x85\xa0\ufeff\u180e\u200b":
        name = f"a{ch}b"
        cases.append({"kind": "vkey", "text": note.Verifier(
            name, note.key_id(name, 1, odd.verifier().public_key),
            odd.verifier().public_key).format()})
    cases += [
        {"kind": "note", "text": odd.sign(odd_text), "vkeys": [odd.verifier().format()]},
        {"kind": "open_cp", "text": odd.sign(odd_text), "vkey": odd.verifier().format()},
    ]
    # Checkpoint bodies.
    root = _e(bytes(range(32)))
    cases += [{"kind": "checkpoint", "text": t} for t in [
        f"o\n0\n{root}\n", f"o\n18446744073709551615\n{root}\n",
        f"o\n18446744073709551616\n{root}\n", f"o\n012\n{root}\n", f"o\n+1\n{root}\n",
        f"o\n-1\n{root}\n", f"o\n1 \n{root}\n", f"o\n\u0661\n{root}\n",
        f"o\n1\n{_e(bytes(31))}\n", f"o\n1\n{root}", "o\n1\n", f"\n1\n{root}\n",
        f"o\n1\n{root}\next\n", f"o\n1\n{root}\n\n", f"o\n1\n{root[:-1]}\n",
        f"o\n99999999999999999999\n{root}\n", f"o\n100000000000000000000\n{root}\n"]]
    # Base64 texts.
    cases += [{"kind": "b64", "text": t} for t in [
        "", "AA==", "AB==", "AAA=", "AAE=", "AAAA", "A", "AA", "AA=", "AA===", "A===",
        "AA==AA==", " AAAA", "AAAA\n", "-_8=", "+/8=", "\u00e9AAA", "QUJD", "QUJDRA==",
        "QUJDRA"]]
    # Inclusion proof documents (the API's JSON) with wrong types.
    doc = real_log.prove_inclusion(3, SIZE).to_json()
    cases += [{"kind": "incl_doc", "text": json.dumps(d)} for d in [
        doc, {**doc, "leaf_index": -1}, {**doc, "leaf_index": 1.5}, {**doc, "tree_size": "40"},
        {**doc, "audit_path": "x"}, {**doc, "audit_path": [1]},
        {**doc, "audit_path": [doc["leaf_hash"]] * 65}, {**doc, "leaf_hash": None},
        {k: v for k, v in doc.items() if k != "leaf_hash"}, [doc]]]
    cases += [{"kind": "incl_doc", "text": "not json"}]
    # Integers as Python's json types them: 3.0 and 3e0 are floats (refused), -0 is the int
    # 0, and an integer beyond 2^53 keeps its exact value (a BigInt in JS).
    text = json.dumps(doc)
    cases += [{"kind": "incl_doc", "text": text.replace('"leaf_index": 3', f'"leaf_index": {v}')}
              for v in ("3.0", "3e0", "3E0", "30e-1", "-0", "true", "3.5")]
    cases += [{"kind": "incl_doc", "text": json.dumps(d)} for d in [
        {**doc, "tree_size": float(SIZE)}, {**doc, "tree_size": (1 << 64) + 5},
        {**doc, "leaf_index": 10 ** 30}, {**doc, "extra": 1.5, "more": [2e5, "3.0"]}]]
    # JSON Lines split on "\n" only: U+2028/U+2029 inside strings, a final newline.
    cases += [{"kind": "jsonl", "text": '{"a":"x\u2028y"}\n{"b":"\u2029"}\n'},
              {"kind": "jsonl", "text": '{"a":1}\r\n{"b":2}'}]
    _compare(cases, run_js(cases))


MEMORY_RUNNER = """
async ({ vkey, memo, fresh, proof, fail }) => {
  const t = await import("/tlog.js");
  const p = await import("/pins.js");
  const key = await t.parseVkey(vkey);
  const cp = await t.openCheckpoint(fresh, key);
  const fetch = async () => { if (fail) throw new Error("offline"); return proof; };
  try {
    const r = await p.checkAgainstMemory(memo ? { note: memo } : null, cp, key, fetch);
    return { ok: true, kind: r.kind };
  } catch (e) {
    return { ok: false, reason: e instanceof t.TlogError ? e.reason : "js:" + e.name };
  }
}
"""


def test_checkpoint_memory_catches_rollback_fork_and_inconsistency(
        real_log: AuditLog, tlog_page: Any) -> None:
    """pins.js holds a new checkpoint against the remembered one: the same tree, a proven
    extension, and otherwise rollback (smaller), fork (same size, other root) or consistency
    (a proof that does not link the two roots this browser verified, or none at all)."""
    signer = note.Signer.parse((real_log.directory / "signing.key").read_text())
    vkey = real_log.vkey()
    assert signer.verifier().format() == vkey
    roots = {n: real_log.prove_consistency(0, n).second_root for n in (10, 20)}

    def signed(size: int, root: bytes) -> str:
        return signer.sign(Checkpoint(real_log.origin, size, root).format())

    good = real_log.prove_consistency(10, 20).to_json()
    bad = {**good, "consistency": [_flip(good["consistency"][0], 3), *good["consistency"][1:]]}
    other_sizes = real_log.prove_consistency(9, 20).to_json()
    forked = signed(10, bytes(32))
    stranger = _signer(real_log.origin, 5).sign(Checkpoint(real_log.origin, 10,
                                                           roots[10]).format())
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"memo": None, "fresh": signed(10, roots[10])}, {"ok": True, "kind": "first"}),
        ({"memo": signed(10, roots[10]), "fresh": signed(10, roots[10])},
         {"ok": True, "kind": "same"}),
        ({"memo": signed(10, roots[10]), "fresh": forked}, {"ok": False, "reason": "fork"}),
        ({"memo": signed(20, roots[20]), "fresh": signed(10, roots[10])},
         {"ok": False, "reason": "rollback"}),
        ({"memo": signed(10, roots[10]), "fresh": signed(20, roots[20]), "proof": good},
         {"ok": True, "kind": "extends"}),
        ({"memo": signed(10, roots[10]), "fresh": signed(20, roots[20]), "proof": bad},
         {"ok": False, "reason": "consistency"}),
        ({"memo": signed(10, roots[10]), "fresh": signed(20, roots[20]),
          "proof": other_sizes}, {"ok": False, "reason": "consistency"}),
        ({"memo": forked, "fresh": signed(20, roots[20]), "proof": good},
         {"ok": False, "reason": "consistency"}),
        ({"memo": signed(10, roots[10]), "fresh": signed(20, roots[20]), "fail": True},
         {"ok": False, "reason": "consistency"}),
        ({"memo": signed(10, roots[10]), "fresh": signed(20, roots[20]), "proof": "[]"},
         {"ok": False, "reason": "consistency"}),
        # A remembered note the pinned key does not verify is no evidence: as if none.
        ({"memo": stranger, "fresh": signed(10, bytes(32))}, {"ok": True, "kind": "first"}),
    ]
    for args, want in cases:
        got = tlog_page.evaluate(MEMORY_RUNNER, {"vkey": vkey, "proof": None, "fail": False,
                                                 **args})
        assert got == want, (args, got)


def test_pins_are_per_origin_and_log_and_pasted_keys_are_checked(
        real_log: AuditLog, tlog_page: Any) -> None:
    """A pin is stored per (origin, log); a pasted key must parse (else refused, nothing
    changes); pasting keeps the checkpoint memory only if the new key verifies it; forget
    drops both."""
    vkey = real_log.vkey()
    other = _signer(real_log.origin, 5).verifier().format()
    cp_note = real_log.checkpoint().note
    got = tlog_page.evaluate("""
    async ({ vkey, other, note }) => {
      const t = await import("/tlog.js");
      const p = await import("/pins.js");
      const out = {};
      p.forget("a", "http://x"); p.forget("b", "http://x"); p.forget("a", "http://y");
      out.empty = p.loadPin("a", "http://x");
      p.savePin("a", vkey + "\\n", "first-use", new Date(0), "http://x");
      out.pinA = p.loadPin("a", "http://x");
      out.pinB = p.loadPin("b", "http://x");
      out.pinOtherOrigin = p.loadPin("a", "http://y");
      const cp = await t.openCheckpoint(note, await t.parseVkey(vkey));
      p.saveCheckpoint("a", note, cp, new Date(0), "http://x");
      try { await p.pinPasted("a", "not a key", new Date(1), "http://x"); out.bad = "pinned"; }
      catch (e) { out.bad = e.reason; }
      out.afterBad = p.loadPin("a", "http://x").vkey;
      out.same = (await p.pinPasted("a", vkey, new Date(1), "http://x")).keptMemory;
      out.other = (await p.pinPasted("a", other, new Date(1), "http://x")).keptMemory;
      out.memoAfterOther = p.loadCheckpoint("a", "http://x");
      out.fp = await p.fingerprint(vkey);
      p.forget("a", "http://x");
      out.forgotten = [p.loadPin("a", "http://x"), p.loadCheckpoint("a", "http://x")];
      return out;
    }""", {"vkey": vkey, "other": other, "note": cp_note})
    assert got["empty"] is None
    assert got["pinA"] == {"vkey": vkey, "source": "first-use",
                           "pinnedAt": "1970-01-01T00:00:00.000Z"}
    assert got["pinB"] is None
    assert got["pinOtherOrigin"] is None
    assert got["bad"] == "format"
    assert got["afterBad"] == vkey
    assert got["same"] is True
    assert got["other"] is False
    assert got["memoAfterOther"] is None
    fp = got["fp"]
    assert fp["keyId"] == vkey.split("+")[1]
    assert fp["sha256"] == hashlib.sha256(vkey.encode()).hexdigest()
    assert got["forgotten"] == [None, None]


REMEMBER_RUNNER = """
async ({ vkey, memo, fresh, latest, proofs, failLatest }) => {
  const t = await import("/tlog.js");
  const p = await import("/pins.js");
  const key = await t.parseVkey(vkey);
  const origin = "http://remember.test";
  p.forget("r", origin);
  if (memo) p.saveCheckpoint("r", memo, await t.openCheckpoint(memo, key), new Date(0), origin);
  const cp = await t.openCheckpoint(fresh, key);
  const fetchConsistency = async (a, b) => {
    const doc = proofs[`${a}-${b}`];
    if (!doc) throw new Error(`no proof ${a}-${b}`);
    return doc;
  };
  const fetchCheckpoint = async () => {
    if (failLatest) throw new Error("offline");
    return latest;
  };
  let out;
  try {
    const r = await p.rememberCheckpoint("r", fresh, cp, key,
      { fetchConsistency, fetchCheckpoint }, new Date(0), origin);
    out = { ok: true, kind: r.kind };
  } catch (e) {
    out = { ok: false, reason: e instanceof t.TlogError ? e.reason : "js:" + e.name };
  }
  const m = p.loadCheckpoint("r", origin);
  out.memory = m ? Number(m.size) : null;
  return out;
}
"""


def test_remember_checkpoint_only_grows_and_refetches_before_a_rollback(
        real_log: AuditLog, tlog_page: Any) -> None:
    """pins.rememberCheckpoint (the event page's memory step): the memory is only replaced by
    a larger checkpoint proven consistent with it; a page checkpoint older than the memory is
    a rollback only if the latest checkpoint, fetched again, is older too; otherwise the latest
    must extend the memory and the page's tree (else fork or consistency)."""
    signer = note.Signer.parse((real_log.directory / "signing.key").read_text())
    vkey = real_log.vkey()
    roots = {n: real_log.prove_consistency(0, n).second_root for n in (10, 20, 30)}

    def signed(size: int, root: bytes | None = None) -> str:
        return signer.sign(Checkpoint(real_log.origin, size,
                                      roots[size] if root is None else root).format())

    proofs = {f"{a}-{b}": json.dumps(real_log.prove_consistency(a, b).to_json())
              for a, b in ((10, 20), (10, 30), (20, 30))}
    bad = json.loads(proofs["10-20"])
    bad["consistency"][0] = _flip(bad["consistency"][0], 1)
    stranger = _signer(real_log.origin, 5).sign(Checkpoint(real_log.origin, 20,
                                                           roots[20]).format())
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"memo": None, "fresh": signed(10)}, {"ok": True, "kind": "first", "memory": 10}),
        ({"memo": signed(10), "fresh": signed(10)}, {"ok": True, "kind": "same", "memory": 10}),
        ({"memo": signed(10), "fresh": signed(20)},
         {"ok": True, "kind": "extends", "memory": 20}),
        ({"memo": signed(20), "fresh": signed(30)},
         {"ok": True, "kind": "extends", "memory": 30}),
        ({"memo": signed(10), "fresh": signed(20), "proofs": {"10-20": json.dumps(bad)}},
         {"ok": False, "reason": "consistency", "memory": 10}),
        ({"memo": signed(10), "fresh": signed(10, bytes(32))},
         {"ok": False, "reason": "fork", "memory": 10}),
        # Another tab remembered 20 while this page held 10: fetched again, the latest
        # extends both (and a larger latest is remembered).
        ({"memo": signed(20), "fresh": signed(10), "latest": signed(20)},
         {"ok": True, "kind": "behind", "memory": 20}),
        ({"memo": signed(20), "fresh": signed(10), "latest": signed(30)},
         {"ok": True, "kind": "behind", "memory": 30}),
        # A rollback: the latest is older than the memory too.
        ({"memo": signed(20), "fresh": signed(10), "latest": signed(10)},
         {"ok": False, "reason": "rollback", "memory": 20}),
        ({"memo": signed(20), "fresh": signed(10), "latest": signed(20, bytes(32))},
         {"ok": False, "reason": "fork", "memory": 20}),
        ({"memo": signed(20), "fresh": signed(10, bytes(32)), "latest": signed(20)},
         {"ok": False, "reason": "consistency", "memory": 20}),
        ({"memo": signed(20), "fresh": signed(10), "latest": stranger},
         {"ok": False, "reason": "signature", "memory": 20}),
        ({"memo": signed(20), "fresh": signed(10), "failLatest": True},
         {"ok": False, "reason": "fetch", "memory": 20}),
    ]
    for args, want in cases:
        got = tlog_page.evaluate(REMEMBER_RUNNER, {"vkey": vkey, "latest": None,
                                                   "proofs": proofs, "failLatest": False,
                                                   **args})
        assert got == want, (args, got)
