"""Proofs, made and checked: ``prove inclusion|consistency`` and ``verify-proof``.

``prove`` reads the log; ``verify-proof`` needs nothing but the proof and the verifier key the
user trusts (no data directory, no network): exit 0 when it holds, 1 when it does not, 2 on
usage errors, 3 when the key is for another origin than the proof's.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sealtrail.cli.common import (
    DataOpt,
    LogOpt,
    errors,
    fail,
    not_verified,
    open_log,
    read_text,
)
from sealtrail.cli.keyarg import (
    WITNESS_POLICY_HELP,
    note_origin,
    trusted_verifier,
    trusted_witness_policy,
    witnessed_line,
)
from sealtrail.cli.output import dumps
from sealtrail.core.errors import VerificationError
from sealtrail.core.note import Verifier
from sealtrail.core.proofs import ConsistencyProof, InclusionProof
from sealtrail.core.tlogproof import HEADER as TLOG_PROOF_HEADER
from sealtrail.core.tlogproof import TlogProof
from sealtrail.log import witnesses

commands = typer.Typer(rich_markup_mode=None)
prove_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="Inclusion and consistency proofs (JSON).")


@prove_app.command("inclusion")
def prove_inclusion(index: Annotated[int, typer.Argument(min=0)],  # noqa: PLR0917 - CLI options
                    size: Annotated[int | None, typer.Option(
                        help="Tree size [default: latest checkpoint].", min=1)] = None,
                    fmt: Annotated[str, typer.Option(
                        "--format", help="json, or tlog-proof (C2SP: a self-contained receipt "
                        "at the latest checkpoint).")] = "json",
                    witnessed: Annotated[bool, typer.Option(
                        "--witnessed", help="Prove against the latest checkpoint that met "
                        "the witness quorum; the proof (JSON or tlog-proof) carries it with "
                        "its cosignatures.")
                    ] = False,
                    data: DataOpt = None, log: LogOpt = None) -> None:
    """Inclusion proof of entry INDEX (JSON; carries the signed checkpoint at the latest size)."""
    if fmt not in ("json", "tlog-proof"):
        fail("--format: use json or tlog-proof")
    if fmt == "tlog-proof" and size is not None:
        fail("--format tlog-proof proves against the latest (or the latest witnessed) "
             "checkpoint: leave out --size")
    if witnessed and size is not None:
        fail("--witnessed picks the size: leave out --size")
    with errors(), open_log(data, log) as alog:
        if witnessed:
            found = witnesses.witnessed_inclusion(alog, index)
            if fmt == "json":
                typer.echo(dumps(found.to_json(), indent=2))
            else:
                typer.echo(TlogProof(index, found.audit_path, found.checkpoint or "").format(),
                           nl=False)
            return
        proof = alog.prove_inclusion(index, size)
        if fmt == "json":
            typer.echo(dumps(proof.to_json(), indent=2))
            return
        head = alog.checkpoint()
        if head.checkpoint.size != proof.tree_size:  # pragma: no cover - an append raced
            fail("the log grew while proving: try again", 1)
        typer.echo(TlogProof(index, proof.audit_path, head.note).format(), nl=False)


@prove_app.command("consistency")
def prove_consistency(first: Annotated[int, typer.Argument(min=0)],
                      second: Annotated[int, typer.Argument(min=0)],
                      data: DataOpt = None, log: LogOpt = None) -> None:
    """Consistency proof from tree size FIRST to SECOND (JSON)."""
    with errors(), open_log(data, log) as alog:
        typer.echo(dumps(alog.prove_consistency(first, second).to_json(), indent=2))


@commands.command("verify-proof")
def verify_proof(proof: Annotated[Path, typer.Argument(  # noqa: PLR0917 - CLI options
                     help="A proof from 'sealtrail prove': JSON, or a C2SP tlog-proof "
                          "(which needs --entry) ('-' for standard input).")],
                 vkey: Annotated[str, typer.Option(
                     "--vkey", help="The log's verifier key you trust: its text or a file "
                     "holding it. A key for another origin than the proof's: NOT VERIFIED, "
                     "exit 3 (another log's key, or an altered proof).")],
                 entry: Annotated[Path | None, typer.Option(
                     help="Inclusion: the entry as a line of 'sealtrail entries'; its leaf "
                          "must be the one proven.")] = None,
                 first: Annotated[Path | None, typer.Option(
                     help="Consistency: the older checkpoint note you kept.")] = None,
                 second: Annotated[Path | None, typer.Option(
                     help="Consistency: the newer checkpoint note.")] = None,
                 witness_policy: Annotated[Path | None, typer.Option(
                     "--witness-policy", help=WITNESS_POLICY_HELP + " Checked on the "
                     "proof's checkpoint (inclusion) or on --second (consistency).")] = None
                 ) -> None:
    """Check a proof offline with only the verifier key: no data directory, no network.

    Exit 0 when it holds, 1 when it does not (saying why), 2 on usage errors, 3 when the key
    given is for another log than the proof's checkpoint names.
    """
    with errors():
        text = read_text(proof, "PROOF").removeprefix("\ufeff")
        verifier = trusted_verifier(vkey)
        policy = None if witness_policy is None else trusted_witness_policy(witness_policy)
        try:
            doc = json.loads(text) if text.lstrip().startswith("{") else None
        except ValueError as exc:
            fail(f"PROOF {proof}: not JSON ({exc})")
        other_origin = None  # a hint only, read from unverified notes: used after a failure
        if doc is None and text.startswith(TLOG_PROOF_HEADER):
            origin = note_origin(text.partition("\n\n")[2])
            if origin is not None and origin != verifier.name:
                other_origin = origin
        if isinstance(doc, dict):
            notes = [doc.get("checkpoint")]
            notes += [read_text(p, o) for p, o in ((first, "--first"), (second, "--second"))
                      if p is not None and "consistency" in doc]
            for note in notes:
                origin = note_origin(note) if isinstance(note, str) else None
                if origin is not None and origin != verifier.name:
                    other_origin = origin
        try:
            _check_proof(doc, text, verifier, entry=entry, first=first, second=second)
        except VerificationError:
            if other_origin is not None:
                not_verified(f"the key given is for {verifier.name!r}; the proof's checkpoint "
                             f"names {other_origin!r}")
            raise
        if policy is not None:
            note = (read_text(second, "--second") if second is not None and isinstance(
                doc, dict) and "consistency" in doc
                else doc.get("checkpoint") if isinstance(doc, dict)
                else TlogProof.parse(text).checkpoint)
            if not isinstance(note, str):
                fail("--witness-policy: the proof carries no checkpoint to check", 1)
            if not witnessed_line(policy, note, "witnesses").met:
                raise typer.Exit(1)


def _entry_leaf(entry: Path) -> tuple[int, bytes]:
    """The index and leaf of ``--entry`` (a line of ``sealtrail entries``)."""
    try:
        line = json.loads(read_text(entry, "--entry"))
        index, leaf = line["index"], base64.b64decode(line["leaf"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        fail(f"--entry: not a line of 'sealtrail entries' ({exc})")
    if type(index) is not int:
        fail("--entry: not a line of 'sealtrail entries' (its index is not an integer)")
    return index, leaf


def _check_proof(doc: Any, text: str, verifier: Verifier, *, entry: Path | None,
                 first: Path | None, second: Path | None) -> None:
    """Verify an inclusion or consistency proof (raises VerificationError) and say so."""
    if doc is None and text.startswith(TLOG_PROOF_HEADER):
        receipt = TlogProof.parse(text)
        if entry is None:
            fail("a tlog-proof proves an entry's bytes: give the entry with --entry (a line "
                 "of 'sealtrail entries')")
        index, leaf = _entry_leaf(entry)
        if index != receipt.index:
            fail(f"--entry is index {index}, the proof is for {receipt.index}", 1)
        cp = receipt.verify(verifier, leaf)
        typer.echo(f"OK: entry {receipt.index} is in {cp.origin} at size {cp.size}, "
                   f"signed by {verifier.name} and the entry's bytes match")
    elif isinstance(doc, dict) and "leaf_index" in doc:
        inc = InclusionProof.parse(text)
        leaf = None
        if entry is not None:
            index, leaf = _entry_leaf(entry)
            if index != inc.leaf_index:
                fail(f"--entry is index {index}, the proof is for {inc.leaf_index}", 1)
        cp = inc.verify_signed(verifier, leaf)
        what = "and the entry's bytes match" if leaf is not None else "(leaf hash only)"
        typer.echo(f"OK: entry {inc.leaf_index} is in {cp.origin} at size {cp.size}, "
                   f"signed by {verifier.name} {what}")
    elif isinstance(doc, dict) and "consistency" in doc:
        if first is None or second is None:
            fail("a consistency proof needs --first and --second checkpoint notes")
        cons = ConsistencyProof.parse(text)
        cons.verify_signed(verifier, read_text(first, "--first"),
                           read_text(second, "--second"))
        typer.echo(f"OK: size {cons.second} extends size {cons.first}, both signed by "
                   f"{verifier.name}")
    else:
        fail("PROOF is neither an inclusion nor a consistency proof")
