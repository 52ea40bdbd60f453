"""Test-wide settings.

Logs encrypt by default and need a key-encryption key to be created, so every test (and every
CLI subprocess it starts, which inherits the environment) gets a passphrase. Tests of a locked,
missing or wrong keyring remove or override it explicitly.
"""

from __future__ import annotations

import os

TEST_PASSPHRASE = "test passphrase, not a secret"

os.environ["SEALTRAIL_PASSPHRASE"] = TEST_PASSPHRASE
