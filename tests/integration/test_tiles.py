"""C2SP tlog-tiles: paths round-trip, and tiles served by the engine rebuild the signed root."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.reference_tree import ReferenceTree, rfc_leaf_hash

from sealtrail import AuditLog, ConfigError, FormatError
from sealtrail.core.checkpoint import open_checkpoint
from sealtrail.core.tiles import TileRef, parse_tile_path


@given(st.one_of(st.none(), st.integers(0, 63)), st.integers(0, 10**12), st.integers(1, 256))
def test_tile_paths_round_trip(level: int | None, index: int, width: int) -> None:
    """Every tile reference formats to a path that parses back to it."""
    ref = TileRef(level, index, width)
    assert parse_tile_path(ref.format()) == ref


@pytest.mark.parametrize("path", ["tile/0/1", "tile/0/x1/000", "tile/64/000", "tile/0/000.p/0",
                                  "tile/0/000.p/256", "tile/0/000.p/007", "tiles/0/000",
                                  "tile/entries", "tile/-1/000"])
def test_malformed_tile_paths_are_refused(path: str) -> None:
    """Paths outside the spec's grammar are a format error, never a guess."""
    with pytest.raises(FormatError):
        parse_tile_path(path)


def test_tiles_rebuild_the_signed_root(tmp_path: Path) -> None:
    """Entry bundles hash to the level-0 tiles, level-1 tiles fold them, and all of it gives
    the checkpoint's root: a standard tile client can check the log from tiles alone."""
    n = 600
    with AuditLog.open(tmp_path) as log:
        log.append_many({"actor": {"id": f"u{i}"}, "action": "a.b", "outcome": "success"}
                        for i in range(n))
        cp = open_checkpoint(log.checkpoint().note, log.verifier)
        leaves: list[bytes] = []
        hashes: list[bytes] = []
        for k, width in ((0, 256), (1, 256), (2, n - 512)):
            bundle = log.tile(TileRef(None, k, width))
            pos = 0
            while pos < len(bundle):
                size = int.from_bytes(bundle[pos:pos + 2], "big")
                leaves.append(bundle[pos + 2:pos + 2 + size])
                pos += 2 + size
            tile = log.tile(TileRef(0, k, width))
            hashes.extend(tile[i:i + 32] for i in range(0, len(tile), 32))
        assert [rfc_leaf_hash(leaf) for leaf in leaves] == hashes
        ref = ReferenceTree(leaves)
        assert log.tile(TileRef(1, 0, 2)) == ref.mth(0, 256) + ref.mth(256, 512)
        assert ref.root(n) == cp.root
        with pytest.raises(ConfigError, match="past"):
            log.tile(TileRef(0, 2, 256))
        with pytest.raises(ConfigError, match="past"):
            log.tile(TileRef(1, 0, 3))
