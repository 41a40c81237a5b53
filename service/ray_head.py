"""The local Ray head the service starts when no cluster address is configured.

It runs as ``ray start --head --block`` in its own session, so a crash of the API process leaves
running studies alone; a graceful shutdown stops it. Token auth is on; the token is generated per
installation and kept in the state directory with 0600 permissions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayEndpoint:
    """Where the Ray Jobs API answers and how to authenticate to it."""

    dashboard_url: str
    token: str | None
    worker_python: str

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers for the dashboard/Jobs API."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def read_or_create_token(state_dir: Path) -> str:
    """This installation's Ray token, created on first use with 0600 permissions."""
    path = state_dir / "ray_token"
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)
    return token


def free_ports(count: int, taken: Collection[int] = ()) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1, free right now and not in ``taken``.

    The sockets are held open until all are chosen: ports asked for one at a time may repeat
    (Ray then refuses to start: "trying to use a port number that is used by other components").
    """
    ports: list[int] = []
    with contextlib.ExitStack() as held:
        while len(ports) < count:
            sock = held.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in taken:
                ports.append(port)
    return ports


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    return free_ports(1)[0]


class LocalRayHead:
    """Start, reuse and stop a single-node Ray cluster on loopback."""

    def __init__(
        self,
        state_dir: Path,
        *,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        dashboard_port: int = 8265,
        object_store_bytes: int | None = None,
        reserved_ports: Collection[int] = (),
    ) -> None:
        self._dir = state_dir / "ray"
        self._state_dir = state_dir
        self._num_cpus = num_cpus
        self._num_gpus = num_gpus
        # The API's own port: uvicorn binds it only after start-up, when Ray already runs.
        self._reserved_ports = set(reserved_ports)
        self._dashboard_port = dashboard_port
        self._object_store_bytes = object_store_bytes
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def temp_dir(self) -> Path:
        """This installation's own Ray temp dir: Ray's default (/tmp/ray) is shared by every
        cluster on the host, and drivers of one cluster then find another's session. Kept
        short: Ray's unix sockets live under it."""
        digest = hashlib.sha1(str(self._state_dir).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"hpo-ray-{digest}"

    @property
    def _info_path(self) -> Path:
        return self._dir / "head.json"

    def start(self, timeout_s: float = 120.0) -> RayEndpoint:
        """Reuse a head this installation started earlier if it still answers, else start one."""
        token = read_or_create_token(self._state_dir)
        reused = self._reuse(token)
        if reused:
            log.info("reusing the local Ray head at %s", reused.dashboard_url)
            return reused
        self._dir.mkdir(parents=True, exist_ok=True)
        reserved = self._reserved_ports
        port = self._dashboard_port or free_ports(1, taken=reserved)[0]
        if port in reserved or not _port_free(port):
            port = free_ports(1, taken=reserved)[0]
            log.warning("port %s is taken; the Ray dashboard uses %s", self._dashboard_port, port)
        gcs_port, client_port, agent_port, metrics_port = free_ports(4, taken={port, *reserved})
        command = [
            str(Path(sys.executable).parent / "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs_port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={port}",
            f"--ray-client-server-port={client_port}",
            f"--dashboard-agent-listen-port={agent_port}",
            f"--metrics-export-port={metrics_port}",
            "--include-dashboard=true",
            "--disable-usage-stats",
            f"--temp-dir={self.temp_dir}",
        ]
        if self._num_cpus is not None:
            command.append(f"--num-cpus={self._num_cpus}")
        if self._num_gpus is not None:
            command.append(f"--num-gpus={self._num_gpus}")
        if self._object_store_bytes is not None:
            command.append(f"--object-store-memory={self._object_store_bytes}")
        env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
        env.pop("RAY_ADDRESS", None)
        logfile = (self._dir / "head.log").open("ab")
        self._process = subprocess.Popen(
            command, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
        )
        endpoint = RayEndpoint(f"http://127.0.0.1:{port}", token, sys.executable)
        self._wait_ready(endpoint, timeout_s)
        self._info_path.write_text(
            json.dumps({"pid": self._process.pid, "dashboard_url": endpoint.dashboard_url})
        )
        log.info("started a local Ray head; dashboard at %s", endpoint.dashboard_url)
        return endpoint

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the head (and every Ray process it started)."""
        pid = self._process.pid if self._process else self._recorded_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _group_alive(pid):
            if self._process:
                self._process.poll()  # reap the leader so a zombie does not count as alive
            time.sleep(0.2)
        if _group_alive(pid):
            os.killpg(pid, signal.SIGKILL)
        if self._process:
            self._process.wait(timeout=5)
        self._info_path.unlink(missing_ok=True)

    def _recorded_pid(self) -> int | None:
        try:
            return int(json.loads(self._info_path.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def _reuse(self, token: str) -> RayEndpoint | None:
        pid = self._recorded_pid()
        if pid is None or not _group_alive(pid):
            return None
        endpoint = RayEndpoint(
            json.loads(self._info_path.read_text())["dashboard_url"], token, sys.executable
        )
        return endpoint if jobs_api_ready(endpoint) else None

    def _wait_ready(self, endpoint: RayEndpoint, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process and self._process.poll() is not None:
                raise RuntimeError(
                    f"ray start exited with {self._process.returncode}; see {self._dir}/head.log"
                )
            if jobs_api_ready(endpoint):
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the local Ray head did not answer within {timeout_s:.0f} s")


def jobs_api_ready(endpoint: RayEndpoint) -> bool:
    """True when the Ray Jobs API answers an authenticated request."""
    try:
        response = httpx.get(
            f"{endpoint.dashboard_url}/api/jobs/", headers=endpoint.headers, timeout=3
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
