"""Grid vs random vs TPE vs TPE+ASHA at the same compute (trial-epochs), through the real service.

Full run: SST-2 (a fixed training subset of ``../shared/data/sst2``) with the pretrained MiniLM-L6,
each study submitted over REST to a local server with its own Ray, one trial at a time. Records
best-dev-accuracy-so-far against trial-epochs spent, writes JSON and a PNG to ``bench/results/``
and prints the table the README quotes. ``--quick`` runs the same pipeline on the built-in toy
objective in about a minute (the test suite runs it so the script cannot rot).

    python bench/search_compare.py                 # full: about 1 hour on 2 CPU cores
    python bench/search_compare.py --quick --url http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.local_server import start_server, stop_server  # noqa: E402

RESULTS = REPO / "bench" / "results"
SST2 = REPO.parent / "shared" / "data" / "sst2"
METHODS = ("grid", "random", "tpe", "tpe+asha")
GRID_LR = [2e-5, 5e-5, 1e-4, 2e-4]


def task(quick: bool, epochs: int, train_samples: int) -> dict[str, Any]:
    """The fine-tuning task every method tunes."""
    if quick:
        return {"model": "toy", "epochs": epochs}
    return {
        "model": "minilm-l6",
        "dataset": {
            "train": str(SST2 / "train.tsv"),
            "eval": str(SST2 / "dev.tsv"),
            "format": "tsv",
            "text_column": "sentence",
            "label_column": "label",
        },
        "max_seq_length": 64,
        "max_train_samples": train_samples,
        "max_eval_samples": 500,
        "epochs": epochs,
    }


def spec_for(method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One study spec; every method gets the same budget in trial-epochs."""
    budget_trials = args.budget // args.epochs
    if method == "grid":
        space: dict[str, Any] = {
            "learning_rate": {"type": "categorical", "choices": GRID_LR},
            "batch_size": {"type": "categorical", "choices": [16, 32]},
        }
    else:
        space = {
            "learning_rate": {"type": "float", "low": 1e-5, "high": 3e-4, "log": True},
            "batch_size": {"type": "categorical", "choices": [16, 32]},
            "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
            "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2},
        }
    algorithm = method.split("+")[0]
    settings: dict[str, Any] = {} if algorithm == "grid" else {"seed": seed}
    if algorithm == "tpe":
        settings["n_startup_trials"] = max(2, budget_trials // 3)
    spec: dict[str, Any] = {
        "name": f"bench-{method.replace('+', '-')}-s{seed}",
        "objective": {"metric": "eval_accuracy", "direction": "maximize"},
        "algorithm": algorithm,
        "algorithm_settings": settings,
        "budget": {"n_trials": budget_trials, "max_concurrent_trials": 1},
        "resources_per_trial": {"num_workers": 1, "cpus_per_worker": args.cpus},
        "task": task(args.quick, args.epochs, args.train_samples),
        "search_space": space,
    }
    if method == "tpe+asha":
        # ASHA stops most trials after the grace period, so the same compute buys more trials.
        spec["budget"]["n_trials"] = args.asha_trials or 2 * budget_trials
        spec["scheduler"] = {"type": "asha", "grace_period": 1, "reduction_factor": 3}
    return spec


def curve(trials: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Best accuracy so far against cumulative trial-epochs, in order of trial completion.

    A trial's accuracy is its last reported dev accuracy (the final one if it ran to the end).
    """
    finished = [t for t in trials if t["intermediate_values"] and t["datetime_complete"]]
    finished.sort(key=lambda t: t["datetime_complete"])
    spent, best, points = 0, float("-inf"), []
    for trial in finished:
        steps = trial["intermediate_values"]
        spent += len(steps)
        last = steps[max(steps, key=int)]
        if last is not None:
            best = max(best, last)
        points.append({"trial_epochs": spent, "best": best, "trial": trial["number"]})
    return points


def best_within(points: list[dict[str, float]], budget: float) -> float | None:
    """The best accuracy reached within ``budget`` trial-epochs."""
    within = [p["best"] for p in points if p["trial_epochs"] <= budget]
    return max(within) if within else None


def epochs_to_reach(points: list[dict[str, float]], target: float) -> float | None:
    """Trial-epochs spent when the best-so-far first reached ``target`` (None: never)."""
    return next((p["trial_epochs"] for p in points if p["best"] >= target - 1e-12), None)


def run_study(api: httpx.Client, spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Submit one study, wait for it, and return its trials and wall time."""
    started = time.monotonic()
    created = api.post("/studies", json=spec)
    created.raise_for_status()
    study_id = created.json()["id"]
    deadline = started + timeout_s
    while (study := api.get(f"/studies/{study_id}").json())["status"] not in (
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"study {spec['name']} not finished in {timeout_s} s")
        time.sleep(2)
    if study["status"] != "SUCCEEDED":
        raise RuntimeError(f"study {spec['name']} {study['status']}: {study['status_reason']}")
    trials = api.get(f"/studies/{study_id}/trials", params={"limit": 1000}).json()["data"]
    return {"study_id": study_id, "wall_s": time.monotonic() - started, "trials": trials}


@contextlib.contextmanager
def service(url: str | None) -> Iterator[str]:
    """The given server, or a fresh local one (SQLite, a local Ray with 2 CPUs)."""
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="hpo-bench-") as root:
        server = start_server(Path(root), f"sqlite:///{root}/bench.db")
        try:
            yield server.url
        finally:
            stop_server(server)


def summarise(runs: dict[str, list[dict[str, Any]]], budget: int) -> dict[str, Any]:
    """Per-method best at full budget and at a third of it, and the headline ratio."""
    table: dict[str, Any] = {}
    for method, seeds in runs.items():
        full = [best_within(r["curve"], budget) for r in seeds]
        third = [best_within(r["curve"], budget / 3) for r in seeds]
        table[method] = {
            "best_at_budget": _mean(full),
            "best_at_third": _mean(third),
            "trials": _mean([len(r["trials"]) for r in seeds]),
            "trial_epochs": _mean([r["curve"][-1]["trial_epochs"] for r in seeds if r["curve"]]),
            "pruned": _mean([sum(t["state"] == "PRUNED" for t in r["trials"]) for r in seeds]),
        }
    fractions = []
    for asha, rnd in zip(runs.get("tpe+asha", []), runs.get("random", []), strict=False):
        target = best_within(rnd["curve"], budget)
        reached = epochs_to_reach(asha["curve"], target) if target is not None else None
        fractions.append(reached / budget if reached is not None else None)
    return {
        "methods": table,
        "tpe_asha_fraction_of_budget_to_reach_random_best": fractions,
        "target_met": bool(fractions) and all(f is not None and f <= 1 / 3 for f in fractions),
    }


def _mean(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def plot(runs: dict[str, list[dict[str, Any]]], budget: int, path: Path) -> bool:
    """Best-so-far against trial-epochs, one line per method and seed (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for colour, (method, seeds) in zip(("C0", "C1", "C2", "C3"), runs.items(), strict=False):
        for index, run in enumerate(seeds):
            xs = [p["trial_epochs"] for p in run["curve"]]
            ys = [p["best"] for p in run["curve"]]
            axis.step(xs, ys, where="post", color=colour, label=method if index == 0 else None)
    axis.axvline(budget / 3, color="grey", linestyle=":", label="1/3 of the budget")
    axis.set_xlabel("compute spent (trial-epochs)")
    axis.set_ylabel("best dev accuracy so far")
    axis.set_xlim(0, budget)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy objective, seconds per study")
    parser.add_argument("--url", help="an hpo-service to use (default: start a local one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budget", type=int, default=24, help="trial-epochs per method")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of a full trial")
    parser.add_argument("--asha-trials", type=int, default=0, help="default: 2x budget/epochs")
    parser.add_argument("--train-samples", type=int, default=800)
    parser.add_argument("--cpus", type=float, default=2.0, help="CPUs per trial")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--resume", action="store_true", help="keep the runs already recorded")
    args = parser.parse_args(argv)
    if args.quick:
        args.cpus = min(args.cpus, 0.5)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "search_compare_quick" if args.quick else "search_compare"
    path = args.out / f"{name}.json"
    runs = previous_runs(path, args) if args.resume else {}
    runs = {m: runs.get(m, []) for m in args.methods}
    with service(args.url) as url, httpx.Client(base_url=url, timeout=30) as api:
        for seed in args.seeds:
            for method in args.methods:
                if any(r["seed"] == seed for r in runs[method]) or (
                    method == "grid" and runs[method]
                ):
                    continue  # done already; the grid has no randomness: one run for every seed
                result = run_study(api, spec_for(method, seed, args), timeout_s=7200)
                result.update(seed=seed, curve=curve(result["trials"]))
                runs[method].append(result)
                best = result["curve"][-1]["best"] if result["curve"] else None
                print(
                    f"{method:9s} seed {seed}: best {best} in {result['wall_s']:.0f} s", flush=True
                )
                write_report(path, runs, args)
    report = write_report(path, runs, args)
    plotted = plot(runs, args.budget, args.out / f"{name}.png")
    print_table(report["summary"], args.budget)
    print(f"wrote {args.out / (name + '.json')}" + (" and .png" if plotted else ""))
    return report


def write_report(path: Path, runs: dict[str, list[dict[str, Any]]], args: Any) -> dict[str, Any]:
    """Write what has run so far (a later ``--resume`` run continues from it)."""
    report = {
        "benchmark": "search_compare",
        "quick": args.quick,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "summary": summarise(runs, args.budget),
        "runs": {
            m: [{k: r[k] for k in ("seed", "wall_s", "curve", "trials")} for r in v]
            for m, v in runs.items()
        },
    }
    path.write_text(json.dumps(report, indent=2))
    return report


def previous_runs(path: Path, args: Any) -> dict[str, list[dict[str, Any]]]:
    """Runs recorded by an earlier invocation with the same budget, epochs and training subset."""
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    same = all(
        old["settings"].get(k) == getattr(args, k)
        for k in ("budget", "epochs", "quick", "train_samples")
    )
    return dict(old["runs"]) if same else {}


def print_table(summary: dict[str, Any], budget: int) -> None:
    """The Markdown table the README quotes."""
    print(f"| method | best acc @ {budget} trial-epochs | @ {budget / 3:.0f} | trials | pruned |")
    print("|---|---|---|---|---|")
    for method, row in summary["methods"].items():
        print(
            f"| {method} | {_fmt(row['best_at_budget'])} | {_fmt(row['best_at_third'])} "
            f"| {_fmt(row['trials'], 1)} | {_fmt(row['pruned'], 1)} |"
        )
    fractions = summary["tpe_asha_fraction_of_budget_to_reach_random_best"]
    print(f"tpe+asha reached random's full-budget best at fractions {fractions} of the budget")


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
