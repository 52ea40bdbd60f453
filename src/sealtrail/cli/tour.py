"""The guided tour behind ``sealtrail tour`` (and the README's first command).

It shows the main job end to end on the embedded default: a log in a data directory, events
appended durably, a signed checkpoint, proofs checked with nothing but the public key, a full
verification, and an edit made behind sealtrail's back being caught.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import tempfile
from pathlib import Path
from typing import Any

import typer

from sealtrail.cli.output import dumps
from sealtrail.core.checkpoint import open_checkpoint
from sealtrail.core.errors import TamperError
from sealtrail.core.note import Verifier
from sealtrail.log.auditlog import AuditLog

SAMPLE: list[dict[str, Any]] = [
    {"actor": {"id": "alice", "name": "Alice Martin", "ip": "203.0.113.7", "type": "user"},
     "action": "user.login", "outcome": "success", "category": "authentication",
     "source": {"service": "portal", "host": "web-1"}},
    {"actor": {"id": "mallory", "ip": "198.51.100.23", "type": "user"},
     "action": "user.login", "outcome": "failure", "category": "authentication",
     "reason": "bad password\nuser.login success (this newline is data, not a new record)"},
    {"actor": {"id": "alice", "type": "user"}, "action": "invoice.read",
     "outcome": "success", "category": "data_access",
     "target": {"type": "invoice", "id": "INV-2026-0042"}, "purpose": "monthly close"},
    {"actor": {"id": "bob", "type": "user"}, "action": "role.grant", "outcome": "success",
     "category": "authorization", "target": {"type": "user", "id": "carol"},
     "changes": {"before": {"roles": ["viewer"]}, "after": {"roles": ["viewer", "admin"]}}},
    {"actor": {"id": "deploy-bot", "type": "service"}, "action": "config.update",
     "outcome": "success", "category": "configuration",
     "metadata": {"key": "retention.days", "old": 365, "new": 400}},
    {"actor": {"id": "nurse-7", "type": "user", "ip": "192.0.2.44"}, "action": "record.read",
     "outcome": "success", "category": "data_access", "subjects": ["patient-4410"],
     "purpose": "treatment", "target": {"type": "record", "id": "rec-9"},
     "metadata": {"ward": "B", "note": "co-pay by card 4111 1111 1111 1111"}},
]
DEMO_PASSPHRASE = "tour passphrase (demo only)"  # noqa: S105 - a throwaway log's demo key


def _say(title: str) -> None:
    typer.secho(f"\n== {title}", bold=True)


def run_tour(keep: Path | None) -> None:
    """Run the tour, printing each step; raises if any step does not behave as shown."""
    base = keep if keep is not None else Path(tempfile.mkdtemp(prefix="sealtrail-tour-"))
    data = base / "data"
    try:
        _say(f"1. Create a log in {data} (encrypted by default)")
        phrase = os.environ.get("SEALTRAIL_PASSPHRASE") or DEMO_PASSPHRASE
        if "SEALTRAIL_PASSPHRASE" not in os.environ:
            typer.echo(f"  keyring passphrase for this tour: {phrase!r} "
                       "(set SEALTRAIL_PASSPHRASE to choose one)")
        with AuditLog.open(data, "default", passphrase=phrase) as log:
            vkey = log.vkey()
            typer.echo(f"verifier key (give this to auditors): {vkey}")

            _say("2. Append audit events (each append is durable before it returns)")
            for ev in SAMPLE:
                r = log.append(ev)
                typer.echo(f"  #{r.index} {ev['action']:<14} by {ev['actor']['id']:<10} "
                           f"leaf {r.leaf_hash.hex()[:16]}…")
            last = len(SAMPLE) - 1
            _say("2b. Personal fields are sealed inside the leaf; the card number never landed")
            leaf = next(log.entries(last, last + 1)).leaf.decode()
            typer.echo(f"  stored leaf: {leaf[:150]}…")
            typer.echo("  opened with the keyring: "
                       + dumps(log.read(next(log.entries(last, last + 1)))["metadata"]))
            typer.echo(f"  blind-index search actor.ip = 192.0.2.44 -> entries "
                       f"{log.find('actor.ip', '192.0.2.44')} (no IP stored in clear)")
            first_note = log.checkpoint().note
            receipts = log.append_many(
                {"actor": {"id": f"user-{i % 50}"}, "action": "document.read",
                 "outcome": "success", "category": "data_access",
                 "target": {"type": "document", "id": f"doc-{i}"}} for i in range(2000))
            typer.echo(f"  … and {len(receipts)} more in one atomic batch "
                       f"(#{receipts[0].index}..#{receipts[-1].index}, one fsync, one signature)")

            _say("3. The signed checkpoint (C2SP tlog-checkpoint, Ed25519 signed note)")
            note = log.checkpoint().note
            typer.echo(note.rstrip("\n"))

            _say("4. Prove event #2 is in the log, and check it with only the public key")
            proof = log.prove_inclusion(2)
            typer.echo(dumps({"leaf_index": proof.leaf_index, "tree_size": proof.tree_size,
                              "audit_path": f"{len(proof.audit_path)} hashes"}))
            entry = next(log.entries(2, 3))
            proof.verify_signed(Verifier.parse(vkey), entry.leaf)
            typer.echo("  the entry's bytes, the audit path and the signed checkpoint agree ✓")

            _say("5. Prove the log only grew since the first checkpoint")
            old = open_checkpoint(first_note, Verifier.parse(vkey))
            cons = log.prove_consistency(old.size)
            cons.verify_signed(Verifier.parse(vkey), first_note, note)
            typer.echo(f"  size {old.size} -> {cons.second}: consistent ✓ "
                       f"({len(cons.consistency)} hashes)")

            _say("6. Verify everything: rehash every entry, rebuild the tree, check signatures")
            typer.echo("  " + log.verify().summary())

            _say("6b. Erase patient-4410 (GDPR Art. 17) by destroying its key: proofs survive")
            before = log.prove_inclusion(last)
            log.erase_subject("patient-4410", reason="erasure request 2026-118",
                              actor={"id": "dpo", "type": "user"})
            erased = log.read(next(log.entries(last, last + 1)))
            typer.echo(f"  #{last} now reads: action {erased['action']}, erased fields "
                       f"{erased.get('erased')}")
            before.verify_signed(Verifier.parse(vkey))
            typer.echo("  the inclusion proof made before the erasure still verifies ✓")
            typer.echo("  " + log.verify().summary())

        _say("7. An attacker with the database file edits event #2 …")
        forged = base / "tampered"
        if forged.exists():
            shutil.rmtree(forged)
        shutil.copytree(data, forged)
        _flip_entry(forged / "default" / "log.db", 2)
        with AuditLog.open(forged, "default", create=False, passphrase=phrase) as bad:
            try:
                bad.verify()
            except TamperError as exc:
                typer.secho(f"  caught: {exc}", fg="red")
            else:
                raise TamperError("changed", 2, "the tour's tampering was not detected")

        _say("Next")
        where = data if keep is not None else Path("DIR/data")
        if keep is None:
            typer.echo("  This log was temporary; 'sealtrail tour --keep DIR' keeps it. Then:")
        if phrase == DEMO_PASSPHRASE:  # never echo a passphrase the user chose
            typer.echo(f"  export SEALTRAIL_PASSPHRASE='{phrase}'   # or --passphrase-file FILE")
        typer.echo(f"  sealtrail --data {where} query --actor alice")
        typer.echo(f"  sealtrail --data {where} prove inclusion 3 > proof.json")
        typer.echo(f"  sealtrail verify-proof proof.json --vkey '{vkey}'   # anywhere, offline")
        typer.echo(f"  sealtrail --data {where} verify --vkey '{vkey}'")
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def _flip_entry(db: Path, index: int) -> None:
    """Change one byte of entry ``index`` directly in SQLite, as an attacker would."""
    con = sqlite3.connect(db)
    try:
        start, count, data = con.execute(
            "SELECT start, count, data FROM chunks WHERE start <= ? ORDER BY start DESC LIMIT 1",
            (index,)).fetchone()
        lens = struct.unpack_from(f"<{count}I", data)
        pos = 4 * count + sum(lens[: index - start])
        text = bytearray(data)
        # Turn "invoice" into "invoicf": still valid JSON, a different event.
        at = bytes(text).find(b"invoice", pos)
        text[at + 6] ^= 0x03
        con.execute("UPDATE chunks SET data = ? WHERE start = ?", (bytes(text), start))
        con.commit()
    finally:
        con.close()
