"""The cluster files in deploy/ stay in step with the code (this machine runs no container
engine, so they are checked, not run): every setting the compose file gives exists, nginx
balances over the nodes it defines, and the image installs what the repository has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pullthrough.config import load_settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_the_nodes_settings_are_all_real_and_make_a_cluster() -> None:
    services = compose()["services"]
    nodes = {name: s for name, s in services.items() if "build" in s}
    assert sorted(nodes) == ["node-a", "node-b"]
    for node in nodes.values():
        env = {k: re.sub(r"\$\{[^}]*\}", "secret", str(v)) for k, v in node["environment"].items()}
        settings = load_settings(None, environ=env)  # unknown keys or bad values raise
        assert settings.server.database_url.startswith("postgresql+psycopg://")
        assert settings.storage.backend == "s3" and settings.storage.s3_bucket
        host = settings.storage.s3_endpoint_url.split("//")[1].split(":")[0]
        assert host in services
        assert node["build"]["dockerfile"] == "deploy/Containerfile"


def test_nginx_balances_over_the_nodes() -> None:
    conf = (DEPLOY / "nginx-cluster.conf").read_text()
    upstreams = re.findall(r"^\s*server (\S+):24817", conf, re.MULTILINE)
    assert sorted(upstreams) == ["node-a", "node-b"]
    nginx = compose()["services"]["nginx"]
    assert "./nginx-cluster.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]


def test_the_image_copies_what_exists_and_binds_for_the_network() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for name in copied.split():
            assert (DEPLOY.parent / name).exists(), name
    assert "PULLTHROUGH_SERVER__BIND=0.0.0.0:24817" in text
