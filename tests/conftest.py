"""Test-wide settings.

Logs encrypt by default and need a key-encryption key to be created, so every test (and every
CLI subprocess it starts, which inherits the environment) gets a raw one in ``SEALTRAIL_KEK``:
opening a keyring with it costs nothing, where a passphrase costs a scrypt stretching (about
0.15 s) per new keyring and per process. Tests of what a passphrase does ask for it explicitly:
``passphrase=`` or ``--passphrase-file``, or the :func:`passphrase_env` fixture, which puts the
suite's passphrase in the environment in place of the raw key. Tests of a locked, missing or
wrong keyring remove or override the variables explicitly.
"""

from __future__ import annotations

import base64
import os

import pytest

from sealtrail.log.keyring import KEK_ENV, PASSPHRASE_ENV

TEST_PASSPHRASE = "test passphrase, not a secret"
TEST_KEK = base64.b64encode(b"sealtrail test KEK, not a secret").decode()

os.environ.pop(PASSPHRASE_ENV, None)
os.environ[KEK_ENV] = TEST_KEK

# Tests in tests/server that test what a passphrase does, written when the suite's default key was
# the passphrase: they get it here, by node id, until they ask for ``passphrase_env`` themselves.
# Keep the names in step: with the raw key, a wrong passphrase is never asked for (the logs open)
# and a delenv of SEALTRAIL_PASSPHRASE finds nothing, so three of them would fail, and the metrics
# one would pass without any keyring being unavailable.
_PASSPHRASE_TESTS = frozenset({
    "tests/server/test_api.py::test_wrong_passphrase_is_not_ready_and_stores_nothing",
    "tests/server/test_api.py::test_metrics_still_answer_when_a_keyring_is_unavailable",
    "tests/server/test_readyz.py::test_wrong_passphrase_names_each_log_and_the_reason",
    "tests/server/test_readyz.py::test_no_passphrase_at_all_says_the_keyring_is_locked",
})


@pytest.fixture
def passphrase_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """The suite's passphrase in ``SEALTRAIL_PASSPHRASE`` and no raw key: logs this test creates
    without a key argument get a passphrase keyring (scrypt), as an operator's would."""
    monkeypatch.setenv(PASSPHRASE_ENV, TEST_PASSPHRASE)
    monkeypatch.delenv(KEK_ENV, raising=False)
    return TEST_PASSPHRASE


@pytest.fixture(autouse=True)
def _passphrase_for_listed_tests(request: pytest.FixtureRequest) -> None:
    if request.node.nodeid in _PASSPHRASE_TESTS:
        request.getfixturevalue("passphrase_env")
