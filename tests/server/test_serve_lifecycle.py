"""Starting and stopping ``sealtrail serve`` and ``sealtrail demo`` as a person at a terminal
does: a taken port fails before anything is announced (no "serving", no keys printed or made),
and Ctrl-C (SIGINT) stops the service, its monitor child included, without a fatal error or a
traceback. Real console commands in subprocesses, on loopback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sealtrail.server.serving import ListenError, listen
from tests.ports import free_port
from tests.server.test_serve_cli import SEALTRAIL, run

CLEAN_STOP = (0, 130)  # SIGINT handled: 0, or 128 + 2 as shells report it


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port that another program listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_listen_refuses_a_taken_port_with_a_clear_message(busy_port: int) -> None:
    """listen() binds first: a taken port is a ListenError naming the address and the cause."""
    with pytest.raises(ListenError) as info:
        listen("127.0.0.1", busy_port)
    assert f"127.0.0.1:{busy_port}" in str(info.value)
    assert "already in use" in str(info.value)


def test_listen_binds_a_free_port() -> None:
    """listen() returns listening sockets: a client can connect before the server runs."""
    [sock] = listen("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        sock.close()


def test_demo_on_a_busy_port_fails_before_printing_or_making_keys(
        tmp_path: Path, busy_port: int) -> None:
    """``sealtrail demo`` on a taken port: non-zero exit, the reason on stderr, no key printed
    and no data directory made."""
    data = tmp_path / "demo"
    res = subprocess.run([*SEALTRAIL, "demo", "--data", str(data), "--port", str(busy_port)],
                         capture_output=True, text=True, timeout=60, check=False,
                         stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})
    assert res.returncode != 0
    assert "already in use" in res.stderr, res.stderr
    assert "st_" not in res.stdout + res.stderr
    assert "curl" not in res.stdout
    assert not data.exists()


def test_serve_on_a_busy_port_fails_before_announcing(tmp_path: Path, busy_port: int) -> None:
    """``sealtrail serve`` on a taken port: non-zero exit with the reason, never "serving"
    (cli/app.py binds with sealtrail.server.serving.listen() before it prints)."""
    data = tmp_path / "data"
    assert run(data, "init").returncode == 0
    res = run(data, "serve", "--port", str(busy_port), "--no-monitor")
    assert res.returncode != 0
    assert "already in use" in res.stderr, res.stderr
    assert "serving" not in res.stdout + res.stderr


def test_serve_with_a_missing_certificate_fails_before_announcing(tmp_path: Path) -> None:
    """A missing TLS certificate is a usage error naming the options, not a traceback after
    "serving" was printed."""
    data = tmp_path / "data"
    assert run(data, "init").returncode == 0
    res = run(data, "serve", "--port", str(free_port()), "--no-monitor", "--tls-cert",
              str(tmp_path / "nope.pem"), "--tls-key", str(tmp_path / "nope.key"))
    assert res.returncode == 2, res.stderr
    assert "--tls-cert" in res.stderr
    assert "Traceback" not in res.stderr
    assert "serving" not in res.stdout + res.stderr


def _start(args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start a console command that serves on loopback; wait until /healthz answers."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([*SEALTRAIL, *args, "--port", str(port)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=base, timeout=2) as client:
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else b""
                pytest.fail(f"exited {proc.returncode}: {err!r}")
            try:
                if client.get("/healthz").status_code == 200:
                    return proc, base
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("did not answer within 60 s")
            time.sleep(0.1)


def _interrupt(proc: subprocess.Popen[bytes]) -> str:
    """SIGINT, as Ctrl-C sends; the exit status is checked by the caller; returns stderr."""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown is the failure
        proc.kill()
        proc.communicate()
        raise
    return err.decode(errors="replace")


def _wait_for_monitor(data: Path) -> None:
    """Until the monitor child has started (it holds its loop lock under DATA/_monitor)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any((data / "_monitor").glob("*")):
            return
        time.sleep(0.1)


def test_sigint_stops_serve_and_its_monitor_child_cleanly(tmp_path: Path) -> None:
    """Ctrl-C on ``sealtrail serve`` (monitor in a child process, the default): exit 0, no
    "Fatal Python error" (the child's stdin reader) and no traceback on stderr."""
    data = tmp_path / "data"
    assert run(data, "init").returncode == 0
    proc, _ = _start(["--data", str(data), "serve"], tmp_path / "serve.out")
    _wait_for_monitor(data)
    time.sleep(1.0)  # the child's rules loaded: its stdin reader is blocked in read()
    err = _interrupt(proc)
    assert proc.returncode in CLEAN_STOP, err
    assert "Fatal Python error" not in err, err
    assert "Traceback" not in err, err


def test_sigint_stops_the_demo_cleanly(tmp_path: Path) -> None:
    """Ctrl-C on ``sealtrail demo``: exit 0, nothing alarming on stderr."""
    proc, _ = _start(["demo", "--data", str(tmp_path / "demo")], tmp_path / "demo.out")
    err = _interrupt(proc)
    assert proc.returncode in CLEAN_STOP, err
    assert "Fatal Python error" not in err, err
    assert "Traceback" not in err, err
