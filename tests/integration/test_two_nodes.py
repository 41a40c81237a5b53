"""A real two-node Ray cluster on loopback: two ``ray start`` processes (a head and a worker
node, one CPU each, token auth), the service attached to it by its ``ray://`` address and token,
and a study
whose trials must land on both nodes.

Only this test's own processes are stopped: each node runs ``ray start --block`` in its own
session (killed as a process group), and whatever is left is found by the cluster's unique
token in the process environment and killed by PID. ``ray stop`` is never run: it would stop
every Ray cluster on the machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from search_spaces.tunables import NODE_KEYS
from service.local_server import REPO, start_server, stop_server
from service.ray_head import RayEndpoint, free_ports, jobs_api_ready
from tests.conftest import toy_spec, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RAY = str(Path(sys.executable).parent / "ray")
OBJECT_STORE_BYTES = 100 * 1024**2


@dataclass
class Cluster:
    """A running two-node cluster started by this test."""

    token: str
    temp_dir: Path
    log_dir: Path
    gcs_address: str = ""
    head_node_id: str = ""
    dashboard_url: str = ""
    client_address: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
        env.pop("RAY_ADDRESS", None)
        return env

    def start_node(self, name: str, args: list[str]) -> None:
        """``ray start --block …`` in its own session, logging to ``<log_dir>/<name>.log``."""
        log = (self.log_dir / f"{name}.log").open("wb")
        self.processes.append(
            subprocess.Popen(
                [RAY, "start", "--block", "--disable-usage-stats", *args],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def status(self) -> str:
        """``ray status`` of this cluster (by its GCS address, with its token)."""
        result = subprocess.run(
            [RAY, "status", f"--address={self.gcs_address}"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout + result.stderr

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


def active_node_ids(status: str) -> set[str]:
    """Node ids (hex, as ``get_node_id()`` returns them) listed under "Active:" by ray status."""
    active = status.split("Active:", 1)[-1].split("Pending:", 1)[0] if "Active:" in status else ""
    return set(re.findall(r"^\s*\d+\s+node_([0-9a-f]+)\s*$", active, flags=re.MULTILINE))


def _processes_with_token(token: str) -> list[int]:
    """PIDs of this user's processes whose environment holds RAY_AUTH_TOKEN=<token>: every Ray
    process of this cluster (raylets, GCS, workers, job drivers) and nothing else."""
    needle = f"RAY_AUTH_TOKEN={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def stop_cluster(cluster: Cluster) -> None:
    """SIGTERM each node's process group (worker node first), then SIGKILL what is left of the
    groups and of every process carrying the cluster's token; fails if anything survives."""
    for process in reversed(cluster.processes):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)

    def groups_gone() -> bool:
        for process in cluster.processes:
            process.poll()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, 0)
                return False
        return True

    _wait(groups_gone, 10)
    for process in cluster.processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    for pid in _processes_with_token(cluster.token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for process in cluster.processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    _wait(lambda: not _processes_with_token(cluster.token), 10)
    left = _processes_with_token(cluster.token)
    assert not left, f"Ray processes of the test cluster survived: {left}"


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A head node and a worker node, 1 CPU each, on 127.0.0.1 with token auth, shared by this
    module's tests (the last one kills the worker node)."""
    # Ray's unix sockets live under the temp dir: keep its path short (not under tmp_path).
    temp_dir = Path(tempfile.mkdtemp(prefix="hpo-2n-"))
    cluster = Cluster(secrets.token_hex(32), temp_dir, tmp_path_factory.mktemp("two-nodes"))
    ports = iter(free_ports(7))  # distinct: ports asked for one by one may repeat
    gcs_port, dashboard_port, client_port = next(ports), next(ports), next(ports)
    cluster.gcs_address = f"127.0.0.1:{gcs_port}"
    cluster.dashboard_url = f"http://127.0.0.1:{dashboard_port}"
    cluster.client_address = f"ray://127.0.0.1:{client_port}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0"]
    common.append(f"--object-store-memory={OBJECT_STORE_BYTES}")
    try:
        cluster.start_node(
            "head",
            [
                "--head",
                f"--port={gcs_port}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard_port}",
                "--include-dashboard=true",
                f"--ray-client-server-port={client_port}",
                f"--dashboard-agent-listen-port={next(ports)}",
                f"--metrics-export-port={next(ports)}",
                f"--temp-dir={temp_dir}",
                *common,
            ],
        )
        endpoint = RayEndpoint(cluster.dashboard_url, cluster.token, sys.executable)
        assert _wait(lambda: jobs_api_ready(endpoint), 180), f"head not up\n{cluster.logs()}"
        assert _wait(lambda: len(active_node_ids(cluster.status())) == 1, 60), cluster.status()
        [cluster.head_node_id] = active_node_ids(cluster.status())
        cluster.start_node(  # processes[1]: the worker node's process group
            "worker",
            [
                f"--address={cluster.gcs_address}",
                f"--dashboard-agent-listen-port={next(ports)}",
                f"--metrics-export-port={next(ports)}",
                *common,
            ],
        )
        assert _wait(lambda: len(active_node_ids(cluster.status())) == 2, 180), (
            f"the worker node did not join\n{cluster.status()}\n{cluster.logs()}"
        )
        yield cluster
    finally:
        try:
            stop_cluster(cluster)
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _run_ddp_study(client: httpx.Client, log: Path) -> list[dict[str, object]]:
    """A study of two 2-worker tiny-BERT trials; its trials by number."""
    spec = {
        "name": "two-nodes-ddp",
        "algorithm": "random",
        "algorithm_settings": {"seed": 0},
        "budget": {"n_trials": 2},
        "resources_per_trial": {"num_workers": 2, "cpus_per_worker": 1},
        "task": {
            "model": "tiny-bert",
            "dataset": {"name": "synthetic-sentiment"},
            "max_seq_length": 32,
            "max_train_samples": 128,
            "max_eval_samples": 32,
            "epochs": 1,
        },
        "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2}},
    }
    response = client.post("/studies", json=spec)
    assert response.status_code == 201, response.text
    study = wait_final(client, response.json()["id"], timeout_s=600)
    assert study["status"] == "SUCCEEDED", (study, log.read_text()[-3000:])
    found = client.get(f"/studies/{study['id']}/trials").json()["data"]
    return sorted(found, key=lambda t: t["number"])


def test_trials_run_on_both_nodes(two_nodes: Cluster, tmp_path: Path) -> None:
    status = two_nodes.status()
    nodes = active_node_ids(status)
    assert len(nodes) == 2, status
    assert re.search(r"/2\.0 CPU", status), status  # one CPU per node

    env = {  # by its Ray Client address, as after `ray start --head`; resolved to the dashboard
        "HPO_RAY_ADDRESS": two_nodes.client_address,
        "HPO_RAY_AUTH_TOKEN": two_nodes.token,
        "HPO_WORKER_PYTHON": sys.executable,
        "HPO_TOY_EPOCH_SECONDS": "1.0",  # long enough trials that two always run at once
    }
    server = start_server(tmp_path / "server", f"sqlite:///{tmp_path / 'hpo.db'}", env)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            health = client.get("/healthz").json()
            assert health == {"status": "ok", "database": True, "ray": True}, health
            # 1 CPU per trial, one CPU per node, two at a time: the two trials running at
            # once cannot share a node. The study driver itself reserves no CPU.
            spec = toy_spec(
                "two-nodes",
                epochs=3,
                budget={"n_trials": 4, "max_concurrent_trials": 2},
                resources_per_trial={"num_workers": 1, "cpus_per_worker": 1},
            )
            response = client.post("/studies", json=spec)
            assert response.status_code == 201, response.text
            study_id = response.json()["id"]
            study = wait_final(client, study_id, timeout_s=600)
            assert str(study["dashboard_url"]).startswith(two_nodes.dashboard_url), study
            assert study["status"] == "SUCCEEDED", (study, server.log_path.read_text()[-3000:])
            trials = client.get(f"/studies/{study_id}/trials", params={"limit": 100}).json()
            ddp = _run_ddp_study(client, server.log_path)
    finally:
        stop_server(server)

    # 2-worker DDP trials, one CPU per rank and per node: each group spans both nodes (gloo
    # between them), and the study's second trial runs on the first one's group.
    assert [t["state"] for t in ddp] == ["COMPLETE", "COMPLETE"], ddp
    assert [t["metrics"]["ddp_group_nodes"] for t in ddp] == [2.0, 2.0]
    assert [t["metrics"]["ddp_group_trials"] for t in ddp] == [1.0, 2.0]

    completed = [t for t in trials["data"] if t["state"] == "COMPLETE"]
    assert len(completed) == 4, trials
    for trial in completed:
        assert set(NODE_KEYS) <= set(trial["metrics"]), trial["metrics"]
        assert trial["metrics"]["worker_node_ip"], trial["metrics"]
        assert trial["metrics"]["worker_hostname"], trial["metrics"]
        assert isinstance(trial["metrics"]["eval_accuracy"], float)
    used = {t["metrics"]["worker_node_id"] for t in completed}
    assert used == nodes, f"trials ran on {used}, the cluster's nodes are {nodes}"


def test_a_killed_worker_nodes_trial_resumes_on_the_other_node(
    two_nodes: Cluster, tmp_path: Path
) -> None:
    """kill -9 of a worker node mid-study: its trial resumes from its last checkpoint on the head
    node (Tune's retry), the study succeeds with exactly its trials, and at most the epoch in
    progress is lost. Runs last: the module's cluster loses its worker node."""
    env = {
        "HPO_RAY_ADDRESS": two_nodes.client_address,
        "HPO_RAY_AUTH_TOKEN": two_nodes.token,
        "HPO_WORKER_PYTHON": sys.executable,
    }
    epochs = 5
    spec = {
        "name": "two-nodes-kill",
        "algorithm": "random",
        "algorithm_settings": {"seed": 0},
        "budget": {"n_trials": 2, "max_concurrent_trials": 2},
        "max_failures": 1,
        "resources_per_trial": {"num_workers": 1, "cpus_per_worker": 1},
        "task": {
            "model": "tiny-bert",
            "dataset": {"name": "synthetic-sentiment"},
            "max_seq_length": 32,
            "max_train_samples": 384,
            "max_eval_samples": 32,
            "epochs": epochs,
        },
        "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3}},
    }
    server = start_server(tmp_path / "server", f"sqlite:///{tmp_path / 'hpo.db'}", env)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            response = client.post("/studies", json=spec)
            assert response.status_code == 201, response.text
            study_id = response.json()["id"]

            def on_worker_node_past_epoch_2() -> dict[str, object] | None:
                found = client.get(f"/studies/{study_id}/trials").json()["data"]
                for trial in found:
                    metrics = trial["metrics"]
                    if (
                        trial["state"] == "RUNNING"
                        and metrics.get("worker_node_id") not in (None, two_nodes.head_node_id)
                        and metrics.get("epoch", 0) >= 2
                    ):
                        return trial
                return None

            victim: dict[str, object] | None = None

            def found_victim() -> bool:
                nonlocal victim
                victim = on_worker_node_past_epoch_2()
                return victim is not None

            assert _wait(found_victim, 300), client.get(f"/studies/{study_id}/trials").text
            # The node's raylet, agents and workers: the `ray start` process's descendants
            # (Ray starts some in sessions of their own, so not one process group).
            node = _descendants(two_nodes.processes[1].pid)
            assert len(node) > 2, node
            for pid in node:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            study = wait_final(client, study_id, timeout_s=600)
            assert study["status"] == "SUCCEEDED", (study, server.log_path.read_text()[-3000:])
            trials = client.get(f"/studies/{study_id}/trials").json()["data"]
    finally:
        stop_server(server)

    assert victim is not None
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"], trials
    resumed = next(t for t in trials if t["number"] == victim["number"])
    metrics = resumed["metrics"]
    assert metrics["worker_node_id"] == two_nodes.head_node_id  # it finished on the head
    assert metrics["resumed_from_epoch"] >= 1
    assert sorted(int(k) for k in resumed["intermediate_values"]) == list(range(1, epochs + 1))
    # Lost: at most the epoch in progress when the node died.
    killed_at = int(victim["metrics"]["epoch"])  # type: ignore[index]
    assert metrics["resumed_from_epoch"] >= killed_at - 1


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it (by parent PID, from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found
