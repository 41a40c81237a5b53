"""Search methods compared with many seeds, by replaying recorded learning curves.

Every study runs through the real service (REST, Ray jobs, Tune trials, Optuna rows) on the
``replay`` objective: each trial plays back the recorded curve of its grid point
(``search_spaces/replay/<table>.json.gz``, made by ``bench/record_curves.py``), so a study costs
seconds and a comparison can afford 30 seeds per method. Every method gets the same compute in
trial-epochs; early-stopping methods get more trials and are cut at the budget.

Writes ``bench/results/search_replay.json`` (per method: ``n_seeds``, mean best dev accuracy at
1/3, 2/3 and the full budget with 95 % t-intervals, and the fraction of the budget its mean
best-so-far curve needs to reach random search's mean full-budget best, with a bootstrap 95 %
interval), a PNG of best-so-far against compute (mean and band) and prints the README's table.

    python bench/search_replay.py                 # 8 methods x 30 seeds: about 40 min on 2 CPUs
    python bench/search_replay.py --quick --url http://127.0.0.1:8000    # 2 methods, 2 seeds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.search_compare import best_within, curve, service  # noqa: E402
from search_spaces.replay import load_table  # noqa: E402

RESULTS = REPO / "bench" / "results"
METHODS = ("grid", "random", "qmc", "tpe", "gp", "tpe+asha", "tpe+asha-loss", "tpe+hyperband")
# The scheduler of each early-stopping method (the rest run every trial to the end).
SCHEDULERS: dict[str, dict[str, Any]] = {
    "tpe+asha": {"type": "asha", "grace_period": 1, "reduction_factor": 3},
    "tpe+asha-loss": {"type": "asha", "grace_period": 1, "reduction_factor": 3,
                      "metric": "eval_loss"},
    "tpe+hyperband": {"type": "hyperband", "grace_period": 1, "reduction_factor": 3},
}  # fmt: skip
FRACTIONS = (1 / 3, 2 / 3, 1.0)
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def spec_for(method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One replay study over the table's whole grid; equal trial-epochs for every method."""
    table = load_table(args.table)
    algorithm = method.split("+")[0]
    full_trials = args.budget // args.epochs
    # TPE and GP draw their own random start-up trials (with random search's seed they would
    # replay its first ones).
    offset = args.model_seed_offset if algorithm in ("tpe", "gp") else 0
    settings: dict[str, Any] = {"seed": seed + offset}
    if algorithm in ("tpe", "gp"):
        settings["n_startup_trials"] = max(2, full_trials // 3)
    spec: dict[str, Any] = {
        "name": f"replay-{method.replace('+', '-')}-s{seed}",
        "objective": {"metric": "eval_accuracy", "direction": "maximize"},
        "algorithm": algorithm,
        "algorithm_settings": settings,
        "budget": {"n_trials": full_trials, "max_concurrent_trials": 1},
        "resources_per_trial": {"num_workers": 1, "cpus_per_worker": 0.25},
        "task": {"model": "replay", "dataset": {"name": args.table}, "epochs": args.epochs},
        "search_space": {n: {"type": "categorical", "choices": v} for n, v in table.grid.items()},
    }
    if method in SCHEDULERS:
        # Stopped trials cost less, so the same compute buys more of them (cut at the budget).
        spec["budget"]["n_trials"] = args.stopping_trials
        spec["scheduler"] = dict(SCHEDULERS[method])
    return spec


def run_all(api: httpx.Client, pending: list[tuple[str, int]], args: Any, on_done: Any) -> None:
    """Submit every pending study (the server runs ``HPO_MAX_RUNNING_STUDIES`` at once), then
    collect each as it finishes."""
    started = {}
    for method, seed in pending:
        response = api.post("/studies", json=spec_for(method, seed, args))
        response.raise_for_status()
        started[response.json()["id"]] = (method, seed, time.monotonic())
    while started:
        for study_id in list(started):
            study = api.get(f"/studies/{study_id}").json()
            if study["status"] not in FINAL:
                continue
            method, seed, since = started.pop(study_id)
            if study["status"] != "SUCCEEDED":
                raise RuntimeError(
                    f"{method} seed {seed}: {study['status']} {study['status_reason']}"
                )
            page = api.get(f"/studies/{study_id}/trials", params={"limit": 1000}).json()["data"]
            on_done(method, seed, page, time.monotonic() - since)
        time.sleep(1.0)


def mean_ci(values: list[float]) -> dict[str, float | None]:
    """Mean and its 95 % t-interval."""
    data = np.asarray([v for v in values if v is not None], dtype=float)
    if len(data) == 0:
        return {"mean": None, "low": None, "high": None}
    mean = float(data.mean())
    if len(data) < 2 or float(data.std()) == 0.0:
        return {"mean": mean, "low": mean, "high": mean}
    half = float(stats.t.ppf(0.975, len(data) - 1) * stats.sem(data))
    return {"mean": mean, "low": mean - half, "high": mean + half}


def best_so_far(runs: list[dict[str, Any]], budget: int) -> np.ndarray:
    """Seeds x trial-epochs (1..budget): each seed's best accuracy so far (NaN before its first
    finished trial)."""
    table = np.full((len(runs), budget), np.nan)
    for row, run in enumerate(runs):
        for spent in range(1, budget + 1):
            best = best_within(run["curve"], spent)
            table[row, spent - 1] = np.nan if best is None else best
    return table


def crossing(curves: np.ndarray, target: float) -> float:
    """The first fraction of the budget where the mean curve reaches ``target`` (inf: never)."""
    with warnings.catch_warnings():  # a column of NaN: no seed has finished a trial yet
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(curves, axis=0)
    reached = np.nonzero(means >= target - 1e-12)[0]
    return float(reached[0] + 1) / curves.shape[1] if len(reached) else float("inf")


def summarise(
    runs: dict[str, list[dict[str, Any]]], budget: int, optimum: float, resamples: int = 2000
) -> Any:
    """Per method: bests at 1/3, 2/3 and the budget, the seeds that found the grid's optimum by
    then, and the fraction of the budget needed to reach random search's mean full-budget best
    (bootstrap over the seeds of both)."""
    curves = {m: best_so_far(r, budget) for m, r in runs.items() if r}
    random_full = curves["random"][:, -1] if "random" in curves else None
    target = float(np.nanmean(random_full)) if random_full is not None else None
    rng = np.random.default_rng(0)
    methods: dict[str, Any] = {}
    for method, table in curves.items():
        row: dict[str, Any] = {"n_seeds": int(table.shape[0])}
        for fraction in FRACTIONS:
            column = max(1, round(fraction * budget)) - 1
            row[f"best_at_{_label(fraction)}"] = mean_ci(list(table[:, column]))
            found = int(np.sum(table[:, column] >= optimum - 1e-9))
            row[f"seeds_at_optimum_at_{_label(fraction)}"] = found
        if target is not None and random_full is not None:
            samples = []
            for _ in range(resamples):
                mine = table[rng.integers(0, len(table), len(table))]
                theirs = random_full[rng.integers(0, len(random_full), len(random_full))]
                samples.append(crossing(mine, float(np.nanmean(theirs))))
            low, high = np.quantile(samples, [0.025, 0.975], method="inverted_cdf")
            row["fraction_to_reach_random_best"] = {
                "estimate": _finite(crossing(table, target)),
                "low": _finite(float(low)),
                "high": _finite(float(high)),  # None: not reached in over 2.5 % of resamples
                "unreached_share": float(np.mean(np.isinf(samples))),
            }
        methods[method] = row
    verdict = None
    reach = methods.get("tpe+asha-loss", {}).get("fraction_to_reach_random_best")
    if reach:
        verdict = reach["high"] is not None and reach["high"] <= 1 / 3
    return {"random_full_budget_mean_best": target, "methods": methods, "target_met": verdict}


def _label(fraction: float) -> str:
    return {1 / 3: "third", 2 / 3: "two_thirds", 1.0: "budget"}[fraction]


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def plot(runs: dict[str, list[dict[str, Any]]], budget: int, path: Path) -> bool:
    """Mean best-so-far against trial-epochs, with its 95 % band, one line per method."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(8, 5))
    steps = np.arange(1, budget + 1)
    for index, (method, seeds) in enumerate(runs.items()):
        if not seeds:
            continue
        table = best_so_far(seeds, budget)
        intervals = [mean_ci(list(table[:, i])) for i in range(budget)]
        mean = np.array([np.nan if c["mean"] is None else c["mean"] for c in intervals])
        low = np.array([np.nan if c["low"] is None else c["low"] for c in intervals])
        high = np.array([np.nan if c["high"] is None else c["high"] for c in intervals])
        colour = f"C{index % 10}"
        axis.step(steps, mean, where="post", color=colour, label=f"{method} ({len(seeds)} seeds)")
        axis.fill_between(steps, low, high, step="post", color=colour, alpha=0.15)
    axis.axvline(budget / 3, color="grey", linestyle=":", label="1/3 of the budget")
    axis.set_xlabel("compute spent (trial-epochs)")
    axis.set_ylabel("best dev accuracy so far (mean, 95 % band)")
    axis.set_xlim(1, budget)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 methods x 2 seeds, small budget")
    parser.add_argument("--url", help="an hpo-service to use (default: start a local one)")
    parser.add_argument("--table", default="sst2-minilm")
    parser.add_argument("--seeds", type=int, default=30, help="seeds 0..N-1 per method")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--budget", type=int, default=64, help="trial-epochs per study")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of a full trial")
    parser.add_argument("--stopping-trials", type=int, default=48, help="early-stopping studies")
    parser.add_argument("--concurrent-studies", type=int, default=3)
    parser.add_argument(
        "--model-seed-offset", type=int, default=10_000, help="TPE's and GP's seed: seed + this"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--resume", action="store_true", help="keep the runs already recorded")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.budget, args.stopping_trials = 2, 16, 12
        args.methods = ["random", "tpe+asha-loss"]
    args.out.mkdir(parents=True, exist_ok=True)
    name = "search_replay_quick" if args.quick else "search_replay"
    path = args.out / f"{name}.json"
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in args.methods}
    earlier_wall = 0.0  # of the runs kept from an earlier invocation
    if args.resume and path.exists():
        old = json.loads(path.read_text())
        if all(old["settings"].get(k) == getattr(args, k) for k in ("table", "budget", "epochs")):
            runs.update(old["runs"])
            earlier_wall = float(old.get("wall_s", 0.0))
    started = time.monotonic() - earlier_wall
    pending = [
        (method, seed)
        for method in args.methods
        for seed in range(args.seeds)
        if not any(r["seed"] == seed for r in runs.get(method, []))
    ]

    def done(method: str, seed: int, trials: list[dict[str, Any]], wall_s: float) -> None:
        points = curve(trials)
        run = {"seed": seed, "since_submitted_s": wall_s, "curve": points}
        runs.setdefault(method, []).append(run)
        print(f"{method:14s} seed {seed:2d}: best {points[-1]['best']:.4f}", flush=True)
        write_report(path, runs, args, time.monotonic() - started)

    if pending:
        env = {"HPO_MAX_RUNNING_STUDIES": str(args.concurrent_studies)}
        with service(args.url, env) as url, httpx.Client(base_url=url, timeout=60) as api:
            run_all(api, pending, args, done)
    report = write_report(path, runs, args, time.monotonic() - started)
    plotted = plot(runs, args.budget, args.out / f"{name}.png")
    print_table(report)
    print(f"wrote {path}" + (" and .png" if plotted else ""))
    return report


def write_report(path: Path, runs: dict[str, list[dict[str, Any]]], args: Any, wall: float) -> Any:
    """Write what has run so far (``--resume`` continues from it)."""
    for seeds in runs.values():
        seeds.sort(key=lambda r: r["seed"])
    runs = {m: runs[m] for m in sorted(runs, key=METHODS.index)}  # the table's order
    table = load_table(args.table)
    optimum = max(c[args.epochs - 1]["eval_accuracy"] for c in table.curves.values())
    report = {
        "benchmark": "search_replay",
        "settings": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "methods": list(runs),  # every method recorded, not only this invocation's
        },
        "table": {"name": table.name, "points": len(table.curves), "how": table.how,
                  "grid_optimum": optimum},
        "wall_s": wall,
        "summary": summarise(runs, args.budget, optimum),
        "runs": runs,
    }  # fmt: skip
    path.write_text(json.dumps(report, indent=1))
    return report


def print_table(report: dict[str, Any]) -> None:
    """The Markdown table the README quotes."""
    budget = report["settings"]["budget"]
    print(f"| method | seeds | best @ {budget // 3} | @ {2 * budget // 3} | @ {budget} "
          "trial-epochs | budget share to reach random's mean best |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for method, row in report["summary"]["methods"].items():
        cells = [_ci(row[f"best_at_{_label(f)}"]) for f in FRACTIONS]
        reach = row.get("fraction_to_reach_random_best")
        share = "-" if reach is None else _share(reach)
        print(f"| {method} | {row['n_seeds']} | " + " | ".join(cells) + f" | {share} |")


def _ci(cell: dict[str, float | None]) -> str:
    if cell["mean"] is None:
        return "-"
    return f"{cell['mean']:.4f} [{cell['low']:.4f}, {cell['high']:.4f}]"


def _share(reach: dict[str, Any]) -> str:
    def shown(value: float | None) -> str:
        return "not reached" if value is None else f"{value:.2f}"

    return f"{shown(reach['estimate'])} [{shown(reach['low'])}, {shown(reach['high'])}]"


if __name__ == "__main__":
    main()
