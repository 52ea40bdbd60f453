"""Storage: one narrow protocol, adapters that persist and fetch and hold no policy."""
