"""The attacker of issue 17: they hold the host, its signing key and the sealing key's current
state; they rewrite entries sealed in past epochs, rebuild the tree, re-sign every checkpoint
and re-seal with the stolen key. Plain ``verify`` (which only has the signing key's word) passes;
``verify --seal-key`` with the seal key kept off the host does not.

The auditor's machine keeps its head memory apart (``SEALTRAIL_STATE_DIR``) and has never seen
the log: only the seal key stands between them and the rewritten history.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest

from sealtrail.core import seal as core
from sealtrail.log import sealing
from sealtrail.log.headmemory import STATE_DIR_ENV
from tests.clirun import sealtrail
from tests.compliance.conftest import Clock
from tests.sealing.attack import (
    EPOCH_S,
    LOG,
    Sealed,
    build,
    chain,
    edit,
    forge_seal,
    open_log,
    rebuild_and_resign,
    rewrite_leaf,
    seal_target,
)


def verify(data: Path, *extra: str) -> tuple[int, str]:
    """``sealtrail verify`` on the auditor's machine (its head memories apart, none of this
    log yet) with the log's verifier key (stolen, hence unchanged)."""
    vkey = (data / LOG / "verifier.vkey").read_text().strip()
    env = {STATE_DIR_ENV: str(data.parent / "auditor-state")}
    ran = sealtrail("--data", data, "verify", "--vkey", vkey, "--no-derived", *extra,
                    env=env, text=True)
    return ran.returncode, ran.stdout + ran.stderr


def reseal_with_stolen_key(s: Sealed, clock: Clock) -> int:
    """The attacker, holding seal.key (today's seed), records a seal of today's epoch over
    the rewritten tree, chained to the last seal (:func:`forge_seal`); its index."""
    clock.now += timedelta(seconds=1)
    return forge_seal(s.data_dir, clock)


def test_untouched_sealed_log_verifies_with_the_seal_key(tmp_path: Path) -> None:
    """Baseline: every recorded seal verifies; the report names the last sealed epoch, its
    size and the entries not sealed yet."""
    clock = Clock()
    s = build(tmp_path / "data", clock)
    code, out = verify(s.data_dir, "--seal-key", s.key.format())
    assert code == 0, out
    assert "SEALED: 7 recorded seals" in out  # the anchor and epochs 0..5
    assert "epoch 5 (ended " in out
    assert f"seals entries 0..{s.seal_at[5] - 1}" in out
    assert "NOT YET SEALED: 4 entries" in out  # epoch 5's seal entry and three events
    assert "epochs are over" in out  # by this machine's clock (the log's is in 2025)
    assert "GAP" not in out


def test_rewritten_resigned_and_resealed_history_is_caught(tmp_path: Path) -> None:
    """The exact attacker: entry 15 (recorded in epoch 1, sealed by epoch 1's final seal) is
    rewritten; tree, head, history and head memory re-signed with the stolen signing key; a
    fresh seal made with the stolen current seal key. Plain verify: intact. With the seal key:
    tampered, naming epoch 1's seal and the range that changed."""
    clock = Clock()
    s = build(tmp_path / "data", clock)
    victim = s.where[15]
    assert s.seal_at[0] < victim < s.seal_at[1]
    stolen = json.loads((s.data_dir / LOG / "seal.key").read_text())
    assert stolen["epoch"] == 6  # today's seed: epoch 6 and later, nothing before

    rewrite_leaf(s.data_dir, victim, b"orig-0015", b"evil-0015")
    rebuild_and_resign(s.data_dir)
    resealed = reseal_with_stolen_key(s, clock)

    code, out = verify(s.data_dir)
    assert code == 0, out  # the signing key's word alone: intact
    code, out = verify(s.data_dir, "--seal-key", s.key.format())
    assert code == 1, out
    assert out.startswith("TAMPERED: seal at index ")
    assert f"seal at index {s.seal_at[1]}:" in out
    assert "contradicts the seal of epoch 1" in out
    assert f"entries {s.seal_at[0]}..{s.seal_at[1] - 1} were changed" in out
    code, out = verify(s.data_dir, "--seal-key", s.key.format(), "--json")
    doc = json.loads(out.split("\n", 1)[0])
    assert (code, doc["ok"], doc["kind"], doc["index"]) == (1, False, "seal", s.seal_at[1])
    # The attacker's own fresh seal is genuine (today's key may seal today): it is the past
    # seals that give them away.
    assert resealed > s.seal_at[5]


@pytest.mark.parametrize("label", ["same-epoch", "current-epoch"])
def test_past_seal_forged_with_the_stolen_key_is_caught(tmp_path: Path, label: str) -> None:
    """The attacker also replaces epoch 1's recorded seal by one over the rewritten tree,
    signed with the stolen key: labelled epoch 1 it does not verify under epoch 1's key;
    labelled with the stolen key's own epoch, the chain goes back from it."""
    clock = Clock()
    s = build(tmp_path / "data", clock)
    rewrite_leaf(s.data_dir, s.where[15], b"orig-0015", b"evil-0015")
    rebuild_and_resign(s.data_dir)
    # The forged seal: the new tree at the sealed size, the right link, today's seed.
    text = seal_target(s.data_dir, s.seal_at[1])
    old = core.Recorded.parse(text)
    state = json.loads((s.data_dir / LOG / "seal.key").read_text())
    seed = base64.b64decode(state["seed"])
    with open_log(s.data_dir, clock) as log:
        new_root = log.root_at(old.size)
        link = chain(log)[s.seal_at[0]][1]
    epoch = 1 if label == "same-epoch" else int(state["epoch"])
    forged = core.make_seal(seed, s.key.origin, epoch, size=old.size, root=new_root,
                            prev=link)
    assert forged.recorded().prev_hint == old.prev_hint  # the link is the right one
    rewrite_leaf(s.data_dir, s.seal_at[1], text.encode(), forged.recorded().format().encode())
    rebuild_and_resign(s.data_dir)

    assert verify(s.data_dir)[0] == 0
    code, out = verify(s.data_dir, "--seal-key", s.key.format())
    assert code == 1, out
    if label == "same-epoch":
        assert f"seal at index {s.seal_at[1]}:" in out
        assert "does not verify under that epoch's key" in out
    else:  # a genuine seal of epoch 6, recorded before epoch 2's: the chain goes back
        assert f"seal at index {s.seal_at[2]}:" in out
        assert "goes back" in out


def test_a_recorded_seal_dropped_from_the_middle_breaks_the_chain(tmp_path: Path) -> None:
    """Epoch 2's seal entry turned into something else (and the tree re-signed): the next seal
    names a link that is no longer there."""
    clock = Clock()
    s = build(tmp_path / "data", clock)
    rewrite_leaf(s.data_dir, s.seal_at[2], b'"sealtrail.seal"', b'"sealtrail.note"')
    rebuild_and_resign(s.data_dir)
    assert verify(s.data_dir)[0] == 0
    code, out = verify(s.data_dir, "--seal-key", s.key.format())
    assert code == 1, out
    assert f"seal at index {s.seal_at[3]}:" in out
    assert "chain is broken" in out
    assert "a recorded seal was dropped or changed" in out


def test_the_anchor_dropped_is_caught(tmp_path: Path) -> None:
    """With the epoch-0 anchor and epoch 0's seal gone, the chain starts at epoch 1: the seals
    before it were dropped."""
    clock = Clock()
    s = build(tmp_path / "data", clock)
    anchor = s.where[4] + 1
    for index in (anchor, s.seal_at[0]):
        rewrite_leaf(s.data_dir, index, b'"sealtrail.seal"', b'"sealtrail.note"')
    rebuild_and_resign(s.data_dir)
    code, out = verify(s.data_dir, "--seal-key", s.key.format())
    assert code == 1, out
    assert "not the epoch-0 anchor" in out


def _truncate(s: Sealed, clock: Clock, k: int, last_seal: int) -> None:
    """Cut the log back to its first ``k`` entries (the attacker's truncation), pointing the
    settings' last-seal copy at the seal entry ``last_seal``."""
    with open_log(s.data_dir, clock) as log:
        links = chain(log)
    prev = links[max(i for i in links if i < last_seal)][1]
    with edit(s.data_dir) as db:
        assert db.execute("SELECT 1 FROM chunks WHERE start = ?", (k,)).fetchone()
        db.execute("DELETE FROM chunks WHERE start >= ?", (k,))
        db.execute("DELETE FROM id_buckets WHERE start >= ?", (k,))
        db.execute("DELETE FROM exact_ids WHERE idx >= ?", (k,))
        db.execute("DELETE FROM checkpoints WHERE size > ?", (k,))
        db.execute("UPDATE meta SET value = ? WHERE key = 'seal_last'",
                   (seal_target(s.data_dir, last_seal),))
        db.execute("UPDATE meta SET value = ? WHERE key = 'seal_last_at'", (str(last_seal),))
        db.execute("UPDATE meta SET value = ? WHERE key = 'seal_last_prev'",
                   (base64.b64encode(prev).decode(),))


def test_newest_seals_dropped_with_their_entries_show_as_a_gap(tmp_path: Path) -> None:
    """The limit, made visible: an attacker who cuts the log back to before epoch 3's seal
    (dropping that seal, the later ones and every entry after), rewrites an entry of epoch 3
    and re-seals with today's key has a log whose seals all verify, but epochs 3..5 have no
    seal: the report says so (the host was down, or seals were dropped)."""
    clock = Clock()
    s = build(tmp_path / "data", clock)
    _truncate(s, clock, s.seal_at[3], s.seal_at[2])
    rewrite_leaf(s.data_dir, s.where[5 + 3 * 8 + 1], b"orig-", b"evil-")
    rebuild_and_resign(s.data_dir)
    # Here the engine itself continues the chain (the last seal left still holds).
    clock.now += timedelta(seconds=EPOCH_S)
    with open_log(s.data_dir, clock) as log:
        sealing.run_round(log, clock.now)
    code, out = verify(s.data_dir, "--seal-key", s.key.format())
    assert code == 0, out
    assert "GAP: epochs 3..5 have no seal" in out
    assert "seals were dropped" in out
    code, out = verify(s.data_dir, "--seal-key", s.key.format(), "--json")
    doc = json.loads(out.split("\n", 1)[0])
    assert doc["seal"]["gaps"] == [[3, 5]]
    assert doc["seal"]["last_epoch"] == 6
