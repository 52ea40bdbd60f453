"""The deployment files (deploy/) do what docs/deployment.md says: the compose file runs three
nodes on one PostgreSQL store behind a load balancer, and a node's entrypoint provisions its
data directory from the shared key files and the KEK secret, so the node reads the log."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sealtrail import AuditLog

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
KEK = base64.b64encode(b"deployment test KEK, not secret!").decode()


def test_compose_runs_three_nodes_on_one_store_behind_a_balancer() -> None:
    """Three serve nodes, each on the same SEALTRAIL_STORE, restarted when killed, with a
    data volume of its own; the balancer's upstream names exactly those nodes."""
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = doc["services"]
    nodes = sorted(n for n in services if n.startswith("node"))
    assert nodes == ["node1", "node2", "node3"]
    stores = {services[n]["environment"]["SEALTRAIL_STORE"] for n in nodes}
    assert len(stores) == 1
    assert stores.pop().startswith("postgresql://")
    volumes = set()
    for n in nodes:
        assert services[n]["command"][:2] == ["sealtrail", "serve"]
        assert services[n]["restart"] == "always"
        volumes |= {v for v in services[n]["volumes"] if v.endswith("/var/lib/sealtrail")}
    assert len(volumes) == 3  # one data directory per node
    conf = (DEPLOY / "nginx.conf").read_text()
    assert [f"server {n}:8470" in conf for n in nodes] == [True] * 3


@pytest.mark.postgres
def test_entrypoint_provisions_a_node_that_reads_the_log(tmp_path: Path, pg_store: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``init`` into a keys directory; the entrypoint copies the key files 0600 into a new
    node's data directory and hands it the KEK from the secret file; the node then appends to
    and verifies the same log."""
    keys, node = tmp_path / "keys", tmp_path / "node"
    env = {**os.environ, "SEALTRAIL_KEK": KEK}
    cli = [sys.executable, "-m", "sealtrail.cli"]
    subprocess.run([*cli, "--data", keys, "--store", pg_store, "init"], env=env, check=True,
                   capture_output=True)
    secret = tmp_path / "kek.secret"
    secret.write_text(KEK + "\n")
    secret.chmod(0o600)
    node_env = {k: v for k, v in os.environ.items() if k != "SEALTRAIL_KEK"}
    node_env |= {"SEALTRAIL_DATA": str(node), "SEALTRAIL_KEYS": str(keys),
                 "SEALTRAIL_KEK_FILE": str(secret), "SEALTRAIL_STORE": pg_store}
    sh = shutil.which("sh")
    assert sh is not None
    ran = subprocess.run(
        [sh, DEPLOY / "entrypoint.sh", *cli, "append"], check=False, env=node_env,
        capture_output=True,
        input=b'{"actor":{"id":"a","name":"Ann"},"action":"x.y","outcome":"success"}\n')
    assert ran.returncode == 0, ran.stderr
    for name in ("signing.key", "verifier.vkey"):
        mode = stat.S_IMODE((node / "default" / name).stat().st_mode)
        assert mode == 0o600, name
        assert (node / "default" / name).read_bytes() == (keys / "default" / name).read_bytes()
    verified = subprocess.run([sh, DEPLOY / "entrypoint.sh", *cli, "verify"], check=False,
                              env=node_env, capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    monkeypatch.setenv("SEALTRAIL_KEK", KEK)
    with AuditLog.open(node, "default", store=pg_store, create=False) as log:
        assert log.read(log.entry(0))["actor"]["name"] == "Ann"
