"""Turn the Ray address a user gives into the Jobs API (dashboard) URL the service talks to.

Accepted: ``http(s)://HEAD:8265`` (the dashboard), ``HEAD:8265`` (http assumed) and a Ray
Client address ``ray://HEAD:10001``, which Ray itself resolves to its dashboard URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

_RESOLVE = (
    "import sys\n"
    "from ray.dashboard.utils import ray_client_address_to_api_server_url as url\n"
    "print(url(sys.argv[1]))\n"
)


class RayAddressError(RuntimeError):
    """The Ray Client address could not be resolved."""


def jobs_api_url(address: str, auth_token: str | None = None, timeout_s: float = 180) -> str:
    """The dashboard URL of the cluster at ``address``."""
    if address.startswith("ray://"):
        return _from_ray_client(address, auth_token, timeout_s)
    return address if "://" in address else f"http://{address}"


ATTEMPTS = 3  # a Ray Client server can fail to start one session (e.g. a port race): retry
RETRY_PAUSE_S = 2.0


def _from_ray_client(address: str, auth_token: str | None, timeout_s: float) -> str:
    # A child process: Ray reads its auth mode and token once per process, and a Ray Client
    # connection would otherwise stay attached to the server.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    if auth_token:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=auth_token)
    deadline = time.monotonic() + timeout_s
    reason = "no attempt"
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(RETRY_PAUSE_S)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            done = subprocess.run(
                [sys.executable, "-c", _RESOLVE, address],
                env=env,
                capture_output=True,
                text=True,
                timeout=left,
            )
        except subprocess.TimeoutExpired:
            raise RayAddressError(f"no answer from the Ray Client at {address}") from None
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines and lines[-1].startswith("http"):
            return lines[-1]
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise RayAddressError(f"cannot reach the Ray Client at {address}: {reason}")
