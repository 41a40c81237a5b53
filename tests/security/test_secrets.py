"""Secrets stay secret: the Ray token (0600, never in an API response, required by the Ray
dashboard, which listens on loopback only) and database passwords (never in logs or errors)."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from service.local_server import Server
from tests.conftest import attached_server, toy_spec, wait_final

pytestmark = pytest.mark.integration


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_the_ray_token_is_private_and_never_served(server: Server, api: httpx.Client) -> None:
    head = server.ray_head()
    token_file = server.state_dir / "ray_token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    study = api.post("/studies", json=toy_spec("secrets", n_trials=1)).json()
    wait_final(api, study["id"])
    bodies = [
        api.get(path).text
        for path in (
            f"/studies/{study['id']}",
            f"/studies/{study['id']}/trials",
            "/studies",
            "/healthz",
            "/openapi.json",
            "/metrics",
        )
    ]
    assert not any(head["token"] in body for body in bodies)
    dashboard = head["dashboard_url"]
    assert urlsplit(dashboard).hostname == "127.0.0.1"
    assert httpx.get(f"{dashboard}/api/jobs/", timeout=30).status_code in (401, 403)
    with_token = httpx.get(
        f"{dashboard}/api/jobs/", headers={"Authorization": f"Bearer {head['token']}"}, timeout=30
    )
    assert with_token.status_code == 200
    public = _non_loopback_address()
    if public is not None:  # the dashboard port is not reachable from other hosts
        with socket.socket() as probe:
            assert probe.connect_ex((public, urlsplit(dashboard).port or 0)) != 0


def test_database_passwords_stay_out_of_logs_and_errors(
    server: Server, postgres_url: str, tmp_path: Path
) -> None:
    secret = "Pa55-not-in-logs"
    parts = urlsplit(postgres_url)
    with_password = postgres_url.replace(f"{parts.username}@", f"{parts.username}:{secret}@")
    assert secret in with_password  # trust auth accepts any password
    with attached_server(tmp_path / "pg", with_password, server) as running:
        assert httpx.get(f"{running.url}/healthz", timeout=30).status_code == 200
    assert secret not in running.log_path.read_text()
    unreachable = f"postgresql+psycopg://someone:{secret}@127.0.0.1:1/nowhere"
    failed = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "list", "--database-url", unreachable],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1
    assert secret not in failed.stdout + failed.stderr
    assert failed.stderr.startswith("error: database postgresql+psycopg://someone:***@")
    assert len(failed.stderr.strip().splitlines()) == 1
    assert json.dumps(secret) not in json.dumps(failed.stderr)
