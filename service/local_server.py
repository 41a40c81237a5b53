"""Local infrastructure for tests and benchmarks: an ``hpo serve`` subprocess on a loopback
port, and fresh PostgreSQL databases on this machine's server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from service.ray_head import free_port

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://root@127.0.0.1:5432/postgres"


@dataclass
class Server:
    """A running ``hpo serve`` subprocess."""

    url: str
    database_url: str
    state_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def ray_head(self) -> dict[str, str]:
        """The local Ray head's recorded address and this installation's token."""
        info = json.loads((self.state_dir / "ray" / "head.json").read_text())
        info["token"] = (self.state_dir / "ray_token").read_text().strip()
        return info


def start_server(
    root: Path, database_url: str, extra_env: dict[str, str] | None = None, num_cpus: int = 2
) -> Server:
    """Start ``hpo serve`` on a free loopback port and wait until /healthz is ok."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # Local files a spec may name: the repository, the shared data beside it, this server's root.
    shared = REPO.parent / "shared"
    data_roots = [str(p) for p in (REPO, shared, root) if p.is_dir()]
    env = {
        **os.environ,
        "HPO_DATA_ROOTS": json.dumps(data_roots),
        "HPO_MODEL_ROOTS": json.dumps(data_roots),
        "HPO_STATE_DIR": str(root / "state"),
        "HPO_RAY_NUM_CPUS": str(num_cpus),
        "HPO_RAY_DASHBOARD_PORT": "0",
        "HPO_RAY_OBJECT_STORE_BYTES": str(512 * 1024**2),
        "HPO_POLL_INTERVAL_S": "0.5",
        **(extra_env or {}),
    }
    if "HPO_RAY_ADDRESS" not in env:
        env.pop("RAY_ADDRESS", None)
    log_path = root / "server.log"
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--database-url", database_url],
        cwd=REPO,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", database_url, root / "state", log_path, process)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"server not healthy in time:\n{log_path.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    """Stop the server gracefully (it stops its Ray head), killing what is left."""
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.process.kill()
    head = server.state_dir / "ray" / "head.json"
    if head.exists():
        with contextlib.suppress(ProcessLookupError, ValueError, KeyError):
            os.killpg(int(json.loads(head.read_text())["pid"]), signal.SIGKILL)


def _postgres_answers(within_s: float) -> bool:
    """Whether the machine's PostgreSQL accepts a connection within ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            psycopg.connect(PG_ADMIN, connect_timeout=3).close()
            return True
        except psycopg.OperationalError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)


def _ensure_postgres_running() -> None:
    """Start the machine's PostgreSQL cluster if it is down (CI machines may have it stopped)."""
    if _postgres_answers(0):
        return
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if versions:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
            check=False,
        )
    if not _postgres_answers(30):
        raise RuntimeError("PostgreSQL on 127.0.0.1:5432 is not reachable and could not be started")


def restart_postgres() -> float:
    """Restart the machine's PostgreSQL cluster (fast shutdown: open connections are cut);
    seconds until it answers again (tests and bench/chaos.py inject it as a fault)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    started = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
        check=True,
        timeout=120,
    )
    if not _postgres_answers(30):
        raise RuntimeError("PostgreSQL did not come back within 30 s of its restart")
    return time.monotonic() - started


@contextlib.contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (SQLAlchemy URL), dropped afterwards."""
    _ensure_postgres_running()
    name = f"hpo_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://root@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
