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
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from sealtrail.log.keyring import KEK_ENV, PASSPHRASE_ENV

TEST_PASSPHRASE = "test passphrase, not a secret"
TEST_KEK = base64.b64encode(b"sealtrail test KEK, not a secret").decode()

os.environ.pop(PASSPHRASE_ENV, None)
os.environ[KEK_ENV] = TEST_KEK

@pytest.fixture
def passphrase_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """The suite's passphrase in ``SEALTRAIL_PASSPHRASE`` and no raw key: logs this test creates
    without a key argument get a passphrase keyring (scrypt), as an operator's would."""
    monkeypatch.setenv(PASSPHRASE_ENV, TEST_PASSPHRASE)
    monkeypatch.delenv(KEK_ENV, raising=False)
    return TEST_PASSPHRASE


@pytest.fixture
def pg_store() -> Iterator[str]:
    """The URL of a PostgreSQL database of this test's own, dropped after it (tests using it
    carry ``pytest.mark.postgres``); skipped with the reason when PostgreSQL is unreachable."""
    from tests.pgdb import scratch_database, unavailable

    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    with scratch_database() as url:
        yield url


def chromium_path() -> str:
    """The system Chromium, or skip (``scripts/test`` installs it with apt as root)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no system chromium (scripts/test installs it with apt when run as root)")
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium (Debian's, driven by Playwright) for the whole session: a second
    Playwright started while one runs would meet its event loop and refuse."""
    sync_api = pytest.importorskip("playwright.sync_api")
    path = chromium_path()
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=path, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()

