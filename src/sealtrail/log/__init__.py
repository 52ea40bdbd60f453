"""The engine: sequencing, group commit, tree maintenance, checkpointing, proofs, verification."""
