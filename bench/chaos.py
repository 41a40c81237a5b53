"""Chaos: several fine-tuning studies at once while random faults are injected, then every
invariant checked and the epochs the faults cost counted.

A real server (its own local Ray head, PostgreSQL by default) runs ``--studies`` tiny-BERT
studies with trial checkpoints and as many without (``checkpoint.every_epochs: 0``). For
``--duration`` seconds, every ``--every`` seconds one fault is injected, the kinds in turn (in a
seeded random order):

- ``driver``: kill -9 of a running study driver (the study resumes in its next attempt);
- ``api``: kill -9 of the API process, then a new one on the same database and Ray;
- ``ray``: kill -9 of the API and of the whole local Ray (raylet, GCS, workers, drivers), then
  a new API (which starts a new Ray and resumes the studies);
- ``postgres``: a restart of the machine's PostgreSQL cluster (not with ``--sqlite``).

Afterwards every study must end SUCCEEDED with exactly ``n_trials`` counted trials (COMPLETE
or PRUNED; an interrupted trial is FAIL "interrupted" and re-run once), no two counted trials
of one configuration, and nothing left RUNNING or PAUSED. Epochs redone = epochs the trials
reported training minus the epochs planned (the epoch in progress at a kill reported nothing
and is not in it), per arm (with and without checkpoints) and per fault.

    python bench/chaos.py                      # 2+2 studies, 5 min of faults: about 10 min
    python bench/chaos.py --duration 60 --every 20 --studies 1 --sqlite     # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.local_server import (  # noqa: E402
    Server,
    fresh_postgres_database,
    restart_postgres,
    start_server,
    stop_server,
)

RESULTS = REPO / "bench" / "results"
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
EPOCHS, TRIALS = 10, 8


def study_spec(name: str, seed: int, checkpoints: bool) -> dict[str, Any]:
    """Tiny-BERT trials long enough (several seconds an epoch) to be hit mid-epoch."""
    return {
        "name": name,
        "algorithm": "random",
        "algorithm_settings": {"seed": seed},
        "budget": {"n_trials": TRIALS, "max_concurrent_trials": 1},
        "max_failures": 1,
        "checkpoint": {"every_epochs": 1 if checkpoints else 0},
        "resources_per_trial": {"num_workers": 1, "cpus_per_worker": 0.5},
        "task": {
            "model": "tiny-bert",
            "dataset": {"name": "synthetic-sentiment"},
            "max_seq_length": 32,
            "max_train_samples": 2048,
            "max_eval_samples": 64,
            "epochs": EPOCHS,
        },
        "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3}},
    }


def _pids(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split() if int(p) != os.getpid()]


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Chaos:
    """The server under test, restarted after the faults that kill it."""

    def __init__(self, root: Path, database_url: str, sqlite: bool, rng: random.Random) -> None:
        self.root, self.database_url, self.rng = root, database_url, rng
        self.kinds = ["driver", "api", "ray"] + ([] if sqlite else ["postgres"])
        rng.shuffle(self.kinds)  # then taken in turn: every kind is injected
        self.server: Server = start_server(root, database_url)
        self.log: list[dict[str, Any]] = []

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=30)

    def restart_api(self, with_ray: bool) -> None:
        head_pid = int(self.server.ray_head()["pid"]) if with_ray else None
        self.server.process.send_signal(signal.SIGKILL)
        self.server.process.wait(timeout=30)
        if head_pid is not None:
            with suppress(ProcessLookupError):
                os.killpg(head_pid, signal.SIGKILL)
            _kill(_pids("workers.run_study --study-id"))  # drivers run in their own session
        self.server = start_server(self.root, self.database_url)

    def inject(self, running: list[str]) -> None:
        kind = self.kinds[len(self.log) % len(self.kinds)]
        started = time.monotonic()
        detail = ""
        if kind == "driver":
            drivers = [s for s in running if _pids(f"workers.run_study --study-id {s}")]
            if not drivers:
                return
            victim = self.rng.choice(drivers)
            _kill(_pids(f"workers.run_study --study-id {victim}"))
            detail = victim
        elif kind == "api":
            self.restart_api(with_ray=False)
        elif kind == "ray":
            self.restart_api(with_ray=True)
        else:
            restart_postgres()
        self.log.append(
            {"fault": kind, "at_s": round(time.time(), 1), "detail": detail,
             "recovery_s": round(time.monotonic() - started, 1)}
        )  # fmt: skip
        print(f"fault {len(self.log)}: {kind} {detail}", flush=True)


def check(client: httpx.Client, study_ids: dict[str, bool]) -> dict[str, Any]:
    """Every invariant, and the epochs trained against those planned, per arm."""
    problems: list[str] = []
    arms: dict[str, dict[str, int]] = {
        "checkpoints": {"planned": 0, "trained": 0, "interrupted": 0},
        "no_checkpoints": {"planned": 0, "trained": 0, "interrupted": 0},
    }
    for study_id, checkpoints in study_ids.items():
        study = client.get(f"/studies/{study_id}").json()
        trials = client.get(f"/studies/{study_id}/trials", params={"limit": 1000}).json()["data"]
        arm = arms["checkpoints" if checkpoints else "no_checkpoints"]
        if study["status"] != "SUCCEEDED":
            problems.append(f"{study_id}: {study['status']} ({study['status_reason']})")
        counted = [t for t in trials if t["state"] in ("COMPLETE", "PRUNED")]
        if len(counted) != TRIALS:
            problems.append(f"{study_id}: {len(counted)} counted trials, not {TRIALS}")
        configs = [json.dumps(t["params"], sort_keys=True) for t in counted]
        if len(set(configs)) != len(configs):
            problems.append(f"{study_id}: a configuration counted twice")
        left = [t["number"] for t in trials if t["state"] in ("RUNNING", "PAUSED", "WAITING")]
        if left:
            problems.append(f"{study_id}: trials {left} left unfinished")
        arm["planned"] += TRIALS * EPOCHS
        arm["trained"] += sum(int(t["metrics"].get("epochs_trained", 0)) for t in trials)
        arm["interrupted"] += sum(t.get("error") == "interrupted" for t in trials)
    for arm in arms.values():
        arm["redone"] = arm["trained"] - arm["planned"]
    return {"problems": problems, "arms": arms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=2, help="per arm (with, without)")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of faults")
    parser.add_argument("--every", type=float, default=20.0, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sqlite", action="store_true", help="SQLite (no postgres faults)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="for the studies to end")
    parser.add_argument("--out", type=Path, default=RESULTS / "chaos.json")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hpo-chaos-")))
        url = (
            f"sqlite:///{root / 'hpo.db'}"
            if args.sqlite
            else stack.enter_context(fresh_postgres_database())
        )
        chaos = Chaos(root / "server", url, args.sqlite, rng)
        stack.callback(lambda: stop_server(chaos.server))
        study_ids: dict[str, bool] = {}
        with chaos.client() as client:
            for index in range(args.studies):
                for checkpoints in (True, False):
                    name = f"chaos-{index}-{'ckpt' if checkpoints else 'none'}"
                    spec = study_spec(name, args.seed + index, checkpoints)
                    response = client.post("/studies", json=spec)
                    response.raise_for_status()
                    study_ids[response.json()["id"]] = checkpoints
        started = time.monotonic()
        while time.monotonic() - started < args.duration:
            time.sleep(args.every)
            with chaos.client() as client:
                running = [s for s in study_ids if client.get(f"/studies/{s}").json()["status"]
                           not in FINAL]  # fmt: skip
            if not running:
                break
            chaos.inject(running)
        deadline = time.monotonic() + args.timeout
        with chaos.client() as client:
            while any(client.get(f"/studies/{s}").json()["status"] not in FINAL for s in study_ids):
                if time.monotonic() > deadline:
                    break
                time.sleep(2)
            verdict = check(client, study_ids)
    faults = len(chaos.log)
    report = {
        "studies_per_arm": args.studies,
        "trials_per_study": TRIALS,
        "epochs_per_trial": EPOCHS,
        "database": "sqlite" if args.sqlite else "postgresql",
        "duration_s": args.duration,
        "faults": chaos.log,
        **verdict,
        "redone_per_fault": {
            name: round(arm["redone"] / faults, 2) if faults else 0.0
            for name, arm in verdict["arms"].items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{faults} faults: " + ", ".join(f["fault"] for f in chaos.log))
    print("| arm | epochs planned | epochs trained | redone | redone per fault |")
    print("|---|---|---|---|---|")
    for name, arm in verdict["arms"].items():
        print(f"| {name} | {arm['planned']} | {arm['trained']} | {arm['redone']} | "
              f"{report['redone_per_fault'][name]} |")  # fmt: skip
    print("invariants:", "all hold" if not verdict["problems"] else verdict["problems"])
    sys.exit(1 if verdict["problems"] else 0)


if __name__ == "__main__":
    main()
