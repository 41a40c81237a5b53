"""Keys and tenants on a real server (its own SQLite file, the shared local Ray): keys made by
``hpo keys`` on the database, studies run by one tenant, invisible to another, streams limited
per tenant, a revoked key refused at once, and no start on a public address without auth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from service.local_server import Server
from tests.conftest import attached_server, toy_spec

pytestmark = pytest.mark.integration
HPO = [sys.executable, "-m", "service.cli"]


def hpo(*args: str, key: str | None = None, url: str | None = None) -> subprocess.CompletedProcess:
    extra = [*(["--api-key", key] if key else []), *(["--url", url] if url else [])]
    return subprocess.run([*HPO, *args, *extra], capture_output=True, text=True, timeout=600)


def new_key(database_url: str, tenant: str, *flags: str) -> str:
    made = hpo("keys", "create", "--tenant", tenant, *flags, "--database-url", database_url)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]  # the key alone on the last line


def test_tenants_keys_and_streams_on_a_real_server(server: Server, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'auth.db'}"
    key_a, key_b = new_key(database_url, "a"), new_key(database_url, "b")
    admin = new_key(database_url, "ops", "--admin")
    env = {"HPO_AUTH": "enabled", "HPO_MAX_EVENT_STREAMS_PER_TENANT": "1"}
    with attached_server(tmp_path / "srv", database_url, server, env) as running:
        url = running.url
        spec = tmp_path / "toy.yaml"
        spec.write_text(yaml.safe_dump(toy_spec("tenant-a", n_trials=2)))
        done = hpo("submit", str(spec), "--wait", "--json", key=key_a, url=url)
        assert done.returncode == 0, done.stderr
        study_id = json.loads(done.stdout)["id"]

        hidden = hpo("show", study_id, key=key_b, url=url)
        assert hidden.returncode == 1 and f"HTTP 404: study '{study_id}' not found" in hidden.stderr
        assert json.loads(hpo("ls", "--json", key=key_b, url=url).stdout)["count"] == 0
        seen = json.loads(hpo("ls", "--json", key=admin, url=url).stdout)
        assert [s["id"] for s in seen["data"]] == [study_id]
        assert hpo("best", study_id, "--json", key=key_a, url=url).returncode == 0
        anonymous = hpo("ls", url=url)
        assert anonymous.returncode == 1 and "HTTP 401: missing API key" in anonymous.stderr

        long = tmp_path / "long.yaml"
        long.write_text(yaml.safe_dump(toy_spec("tenant-a-long", n_trials=50, epochs=50)))
        long_id = hpo("submit", str(long), key=key_a, url=url).stdout.strip()
        headers = {"Authorization": f"Bearer {key_a}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            stream_url = f"/studies/{long_id}/events"
            with client.stream("GET", stream_url) as first:
                assert first.status_code == 200
                lines = first.iter_lines()  # kept: dropping it would close the stream
                next(lines)  # the stream is open and counted
                second = client.get(stream_url)
                assert second.status_code == 429
                assert "already has 1 event streams open" in second.json()["detail"]
                other = httpx.get(
                    f"{url}/studies/{study_id}/events",
                    headers={"Authorization": f"Bearer {admin}"},
                    timeout=30,
                )
                assert other.status_code == 200  # another tenant's limit is its own
            deadline = time.monotonic() + 30
            while True:  # the closed stream's slot comes back
                with client.stream("GET", stream_url) as again:
                    if again.status_code == 200:
                        break
                assert time.monotonic() < deadline, "the closed stream was never released"
                time.sleep(0.5)
            assert client.post(f"/studies/{long_id}/cancel").status_code == 200

        revoked = hpo("keys", "revoke", key_a, "--database-url", database_url)
        assert revoked.returncode == 0, revoked.stderr
        refused = hpo("show", study_id, key=key_a, url=url)
        assert refused.returncode == 1 and "HTTP 401: invalid or revoked API key" in refused.stderr
        listed = json.loads(hpo("keys", "list", "--json", "--database-url", database_url).stdout)
        assert [k["revoked_at"] is not None for k in listed] == [True, False, False]
        assert key_b not in json.dumps(listed)
    log = running.log_path.read_text()
    assert key_a.split("_", 2)[2] not in log and admin.split("_", 2)[2] not in log  # never logged


def test_no_start_on_a_public_address_with_auth_disabled(tmp_path: Path) -> None:
    env = {**os.environ, "HPO_AUTH": "disabled", "HPO_STATE_DIR": str(tmp_path)}
    refused = subprocess.run(
        [*HPO, "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "error: refusing to serve on 0.0.0.0 with HPO_AUTH=disabled: anyone who reaches it "
        "could run code on the cluster; enable auth or bind to 127.0.0.1"
    ]
