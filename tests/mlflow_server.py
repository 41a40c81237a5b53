"""A real ``mlflow server`` for the tests: SQLite backend store, local artifact root, one worker,
on a free loopback port, in its own process group (stopped with everything it started)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from service.ray_head import free_port


class MlflowServer:
    """``mlflow server`` under ``root``; ``start`` returns at once, ``ready`` waits for it."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """The tracking URI (http on 127.0.0.1: allowed by the service's default hosts)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server (its database and artifacts persist across restarts)."""
        command = [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--default-artifact-root",
            str(self.root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        # Job execution starts a job runner and Huey consumers: six processes nobody here uses.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def ready(self, timeout_s: float = 120) -> str:
        """Wait until /health answers (starting the server again if it was stopped)."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.uri}/health", timeout=2).status_code == 200:
                    return self.uri
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        log = (self.root / "server.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"mlflow server not ready in {timeout_s} s:\n{log}")

    def stop(self) -> None:
        """Stop the server and every process it started (SIGTERM, then SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)
