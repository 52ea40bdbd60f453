"""RFC 6962 / RFC 9162 Merkle trees: hashing, node layout, proof planning and verification."""
