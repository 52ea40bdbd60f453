"""The storage contract: one suite of behaviour every store adapter must show."""
