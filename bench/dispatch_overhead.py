"""Dispatch overhead: trivial trials through the service vs the same trials in bare Ray Tune.

Our path: a local ``hpo serve`` (SQLite, its own Ray with 2 CPUs), a study submitted over REST,
run as a Ray job (the study driver, a Tune experiment, Optuna in SQL). The baseline
(``bench/bare_tune.py``): a bare Ray Tune script with Ray's ``OptunaSearch`` (Optuna's
``RandomSampler``) on a fresh local Ray with the same CPUs. Both run one trial at a time.

* sleep: N trials of the built-in ``toy`` model with 1-s epochs (one epoch, one report) vs a
  trainable that sleeps 1 s and reports once.
* ddp: trials of 2 DDP workers (tiny BERT, a few synthetic samples, 1 epoch): ours on the
  study's kept worker group (``workers/rank_group.py``: started by the first trial, reused by
  the others) vs a bare ``TorchTrainer`` per trial in a bare Tune run of the same training
  loop. A bare trial's start-up is its duration less the loop's (the bare run's median loop
  time); ours the first trial measures itself (``ddp_group_start_s``: starting the group), and
  a later one's whole duration, loop included, bounds its start-up from above.

Wall times: ours from submit to the study's final status, the bare run from process start to
exit; "trial phase" from the first trial's start to the last trial's end (Optuna's
datetime_start/complete), so the fixed per-study start-up is reported on its own.

    python bench/dispatch_overhead.py            # full: 6-8 minutes on 2 busy CPU cores
    python bench/dispatch_overhead.py --quick    # 3 sleep trials, no DDP: 1-2 minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.local_server import start_server, stop_server  # noqa: E402

RESULTS = REPO / "bench" / "results"
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
SPACE: dict[str, Any] = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
}
DDP_TASK: dict[str, Any] = {
    "model": "tiny-bert",
    "dataset": {"name": "synthetic-sentiment"},
    "max_seq_length": 32,
    "max_train_samples": 64,
    "max_eval_samples": 32,
    "epochs": 1,
}


def study_spec(kind: str, n_trials: int, args: argparse.Namespace) -> dict[str, Any]:
    """The study both paths run: random search, one trial at a time."""
    ddp = kind == "ddp"
    return {
        "name": f"dispatch-overhead-{kind}",
        "objective": {"metric": "eval_accuracy", "direction": "maximize"},
        "algorithm": "random",
        "algorithm_settings": {"seed": args.seed},
        "budget": {"n_trials": n_trials, "max_concurrent_trials": 1},
        "resources_per_trial": {"num_workers": 2 if ddp else 1, "cpus_per_worker": args.cpus},
        "task": DDP_TASK if ddp else {"model": "toy", "epochs": 1},
        "search_space": SPACE,
    }


def _epoch(value: str | None) -> float | None:
    """Seconds since the epoch of an ISO time (naive times are Optuna's local time)."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.timestamp() if parsed.tzinfo else parsed.astimezone().timestamp()


def run_ours(api: httpx.Client, spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Submit the study, poll it to its final status; returns its times (epoch seconds)."""
    submitted = time.time()
    created = api.post("/studies", json=spec)
    created.raise_for_status()
    study_id = created.json()["id"]
    while (study := api.get(f"/studies/{study_id}").json())["status"] not in FINAL:
        if time.time() - submitted > timeout_s:
            raise TimeoutError(f"study {spec['name']} not finished in {timeout_s} s")
        time.sleep(0.1)
    final = time.time()
    if study["status"] != "SUCCEEDED":
        raise RuntimeError(f"study {spec['name']} {study['status']}: {study['status_reason']}")
    trials = api.get(f"/studies/{study_id}/trials", params={"limit": 1000}).json()["data"]
    return {
        "submitted_at": submitted,
        "final_at": final,
        "trials": [
            {
                "number": t["number"],
                "state": t["state"],
                "start": _epoch(t["datetime_start"]),
                "complete": _epoch(t["datetime_complete"]),
                # Measured by a DDP trial itself: its worker group's start (s) and use count.
                "ddp_group_start_s": (t.get("metrics") or {}).get("ddp_group_start_s"),
                "ddp_group_trials": (t.get("metrics") or {}).get("ddp_group_trials"),
            }
            for t in trials
        ],
    }


def run_bare(kind: str, n_trials: int, spec: dict[str, Any], args: argparse.Namespace) -> Any:
    """Run ``bare_tune.py`` in a fresh process; returns its times (epoch seconds)."""
    with tempfile.TemporaryDirectory(prefix="hpo-bare-out-") as out:
        path = Path(out) / "bare.json"
        command = [
            sys.executable, str(REPO / "bench" / "bare_tune.py"), "--kind", kind,
            "--trials", str(n_trials), "--seed", str(args.seed), "--cpus", str(args.cpus),
            "--cpus-total", str(args.cpus_total), "--spec", json.dumps(spec),
            "--json-out", str(path),
        ]  # fmt: skip
        started = time.time()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)
        ended = time.time()
        if done.returncode != 0 or not path.exists():
            raise RuntimeError(f"bare run failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        times = json.loads(path.read_text())
    return {**times, "submitted_at": started, "final_at": ended}


def summarise(run: dict[str, Any], n_trials: int, seconds: float) -> dict[str, Any]:
    """Wall time, trial phase, fixed start-up and per-trial overhead of one run."""
    trials = [t for t in run["trials"] if t["start"] and t["complete"]]
    first = min(t["start"] for t in trials)
    last = max(t["complete"] for t in trials)
    wall = run["final_at"] - run["submitted_at"]
    phase = last - first
    durations = [t["complete"] - t["start"] for t in trials]
    summary = {
        "trials_finished": len(trials),
        "wall_s": wall,
        "trial_phase_s": phase,
        "startup_s": first - run["submitted_at"],  # submit (or launch) to the first trial start
        "teardown_s": run["final_at"] - last,  # last trial end to the final status (or exit)
        "per_trial_overhead_s": (wall - n_trials * seconds) / n_trials,
        "per_trial_overhead_in_phase_s": (phase - n_trials * seconds) / n_trials,
        "mean_trial_s": sum(durations) / len(durations),
    }
    if "ray_ready_at" in run:  # the bare run also starts its own Ray
        summary["ray_start_s"] = run["ray_ready_at"] - run["imported_at"]
        summary["wall_without_ray_start_s"] = wall - summary["ray_start_s"]
    return summary


def compare(kind: str, ours: dict[str, Any], bare: dict[str, Any], n: int) -> dict[str, Any]:
    """Both runs' figures and ours/bare ratios; DDP adds the per-trial start-up estimates."""
    seconds = 1.0
    result: dict[str, Any] = {"n_trials": n}
    if kind == "ddp":
        loops = [r["loop_s"] for r in bare["results"] if r.get("loop_s") is not None]
        # The training loop itself (model build, training, evaluation; the same code in both
        # paths): the median, as the first trial of a fresh process also pays imports.
        seconds = statistics.median(loops)
        result["train_loop_s"] = seconds
    result["ours"] = summarise(ours, n, seconds)
    result["bare"] = summarise(bare, n, seconds)
    o, b = result["ours"], result["bare"]
    result["ratio"] = o["wall_s"] / b["wall_s"]
    result["ratio_without_bare_ray_start"] = o["wall_s"] / b["wall_without_ray_start_s"]
    result["ratio_trial_phase"] = o["trial_phase_s"] / b["trial_phase_s"]
    if kind == "ddp":
        for name, run in (("ours", ours), ("bare", bare)):
            durations = _durations_in_order(run)
            result[name]["first_trial_s"] = durations[0]
            if len(durations) > 1:
                result[name]["later_trial_s"] = statistics.mean(durations[1:])
        # The bare trials' start-up: each is a fresh TorchTrainer, so its duration less the loop.
        b["first_trial_startup_s"] = b["first_trial_s"] - seconds
        if "later_trial_s" in b:
            b["later_trial_startup_s"] = b["later_trial_s"] - seconds
        # Ours: the first trial starts the study's kept group and times that start itself; a
        # later trial's whole duration (loop included) bounds its start-up from above. (Our
        # loop on a warm process with the study's data already there is faster than the bare
        # run's, so "duration less the bare loop" would be negative.)
        starts = [t["ddp_group_start_s"] for t in ours["trials"] if t.get("ddp_group_trials") == 1]
        if starts:
            o["first_trial_startup_s"] = statistics.mean(starts)
        if "later_trial_s" in o:
            o["later_trial_startup_s"] = o["later_trial_s"]
    return result


def _durations_in_order(run: dict[str, Any]) -> list[float]:
    """Each finished trial's duration (s), in order of start."""
    trials = sorted(
        (t for t in run["trials"] if t["start"] and t["complete"]), key=lambda t: t["start"]
    )
    return [t["complete"] - t["start"] for t in trials]


def print_report(report: dict[str, Any]) -> None:
    """The figures as a table."""
    rows = (
        ("wall_s", "wall time (s)"),
        ("wall_without_ray_start_s", "  without starting Ray (s)"),
        ("startup_s", "fixed start-up (s)"),
        ("trial_phase_s", "trial phase (s)"),
        ("teardown_s", "teardown (s)"),
        ("per_trial_overhead_s", "per-trial overhead, wall (s)"),
        ("per_trial_overhead_in_phase_s", "per-trial overhead, phase (s)"),
        ("mean_trial_s", "mean trial (s)"),
        ("first_trial_s", "first trial, duration (s)"),
        ("later_trial_s", "later trials, mean duration (s)"),
        ("first_trial_startup_s", "first trial, start-up (s)"),
        ("later_trial_startup_s", "later trials, start-up at most (s)"),
    )
    for kind, result in report["results"].items():
        print(f"\n{kind}: {result['n_trials']} trials")
        if "train_loop_s" in result:
            print(f"  training loop per trial: {result['train_loop_s']:.2f} s")
        print(f"  {'':32s} {'ours':>8s} {'bare':>8s}")
        for key, label in rows:
            ours, bare = result["ours"].get(key), result["bare"].get(key)
            if ours is None and bare is None:
                continue
            print(f"  {label:32s} {_fmt(ours)} {_fmt(bare)}")
        print(
            f"  ratio ours/bare: wall {result['ratio']:.2f}, "
            f"wall vs bare without Ray start {result['ratio_without_bare_ray_start']:.2f}, "
            f"trial phase {result['ratio_trial_phase']:.2f}"
        )


def _fmt(value: float | None) -> str:
    return f"{'-':>8s}" if value is None else f"{value:8.2f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 sleep trials, no DDP")
    parser.add_argument("--trials", type=int, help="sleep trials (default 20, quick 3)")
    parser.add_argument("--ddp-trials", type=int, help="DDP trials (default 4, quick 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpus", type=float, default=1.0, help="CPUs per trial (per worker)")
    parser.add_argument("--cpus-total", type=int, default=2, help="CPUs of each local Ray")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", type=Path, help="keep the server's state and logs here")
    args = parser.parse_args(argv)
    n_sleep = args.trials if args.trials is not None else (3 if args.quick else 20)
    n_ddp = args.ddp_trials if args.ddp_trials is not None else (0 if args.quick else 4)
    kinds = {kind: n for kind, n in (("sleep", n_sleep), ("ddp", n_ddp)) if n > 0}
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    bare = {}
    for kind, n in kinds.items():  # the bare runs first, while no server's Ray is up
        bare[kind] = run_bare(kind, n, study_spec(kind, n, args), args)
        print(f"bare {kind}: {bare[kind]['final_at'] - bare[kind]['submitted_at']:.1f} s")
    ours = {}
    with tempfile.TemporaryDirectory(prefix="hpo-overhead-") as temporary:
        root = str(args.keep or temporary)
        server = start_server(
            Path(root), f"sqlite:///{root}/bench.db", {"HPO_TOY_EPOCH_SECONDS": "1"},
            num_cpus=args.cpus_total,
        )  # fmt: skip
        try:
            with httpx.Client(base_url=server.url, timeout=30) as api:
                for kind, n in kinds.items():
                    ours[kind] = run_ours(api, study_spec(kind, n, args), timeout_s=1800)
                    print(
                        f"ours {kind}: {ours[kind]['final_at'] - ours[kind]['submitted_at']:.1f} s"
                    )
        finally:
            stop_server(server)
    report = {
        "benchmark": "dispatch_overhead",
        "quick": args.quick,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "bench_wall_s": time.time() - started,
        "results": {k: compare(k, ours[k], bare[k], n) for k, n in kinds.items()},
        "raw": {"ours": ours, "bare": bare},
    }
    name = "dispatch_overhead_quick" if args.quick else "dispatch_overhead"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2))
    print_report(report)
    print(f"\nwrote {args.out / (name + '.json')}")
    return report


if __name__ == "__main__":
    main()
