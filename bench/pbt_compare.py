"""PBT against random search and TPE+ASHA at equal compute (trial-epochs), through the service.

Full run: GLUE RTE (seeded subsets of ``../shared/data/rte``) with the pretrained MiniLM-L6,
each study submitted over REST to a local server with its own Ray. Every method gets the same
budget in trial-epochs: random search runs ``budget / epochs`` trials to the end, TPE+ASHA
(ASHA on the dev loss) twice as many and is cut at the budget, and PBT evolves a population of
``budget / epochs`` trials that train at once (its compute is the epochs its trials trained,
``epochs_trained``, epochs redone after a pause included). Records best dev accuracy against
compute, writes ``bench/results/pbt_compare.json`` and a PNG, and prints the README's table.
``--quick`` runs the same pipeline on tiny BERT and synthetic data in about a minute (the
test suite runs it so the script cannot rot).

    python bench/pbt_compare.py                   # RTE: about 10 min per study on 2 CPU cores
    python bench/pbt_compare.py --quick --url http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.search_compare import best_within, curve, plot, run_study, service  # noqa: E402

RESULTS = REPO / "bench" / "results"
RTE = REPO.parent / "shared" / "data" / "rte"
METHODS = ("random", "tpe+asha-loss", "pbt")


def task(args: argparse.Namespace) -> dict[str, Any]:
    """The fine-tuning task every method tunes."""
    if args.quick:
        return {
            "model": "tiny-bert",
            "dataset": {"name": "synthetic-sentiment"},
            "max_seq_length": 32,
            "max_train_samples": 64,
            "max_eval_samples": 64,
            "epochs": args.epochs,
        }
    return {
        "model": "minilm-l6",
        "dataset": {
            "train": str(RTE / "train.tsv"),
            "eval": str(RTE / "dev.tsv"),
            "text_column": "sentence1",
            "text_pair_column": "sentence2",
            "label_column": "label",
        },
        "max_seq_length": 128,
        "max_train_samples": args.train_samples,
        "max_eval_samples": args.eval_samples,
        "epochs": args.epochs,
    }


def spec_for(method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One study; every method the same budget in trial-epochs."""
    members = args.budget // args.epochs
    space: dict[str, Any] = {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 2e-4, "log": True},
        "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
        "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2},
    }
    spec: dict[str, Any] = {
        "name": f"pbt-compare-{method.replace('+', '-')}-s{seed}",
        "objective": {"metric": "eval_accuracy", "direction": "maximize"},
        "algorithm": "tpe" if method.startswith("tpe") else "random",
        "algorithm_settings": {"seed": seed},
        "budget": {"n_trials": members, "max_concurrent_trials": 1},
        "resources_per_trial": {"num_workers": 1, "cpus_per_worker": args.cpus},
        "task": task(args),
        "search_space": space,
    }
    if method == "tpe+asha-loss":
        spec["algorithm_settings"]["n_startup_trials"] = max(2, members // 2)
        spec["budget"]["n_trials"] = 2 * members
        spec["scheduler"] = {"type": "asha", "grace_period": 1, "reduction_factor": 2,
                             "metric": "eval_loss"}  # fmt: skip
    elif method == "pbt":
        spec["budget"]["max_concurrent_trials"] = members
        spec["resources_per_trial"]["cpus_per_worker"] = args.cpus / members
        spec["scheduler"] = {"type": "pbt", "perturbation_interval": 1, "metric": "eval_loss"}
    return spec


def summarise(runs: dict[str, list[dict[str, Any]]], budget: int) -> dict[str, Any]:
    """Per method: mean best at the budget, per seed, and the compute it spent; the target:
    PBT's mean best at least TPE+ASHA's."""
    table: dict[str, Any] = {}
    for method, seeds in runs.items():
        bests = [best_within(r["curve"], budget) for r in seeds]
        present = [b for b in bests if b is not None]
        table[method] = {
            "best_at_budget": sum(present) / len(present) if present else None,
            "per_seed": {str(r["seed"]): b for r, b in zip(seeds, bests, strict=True)},
            "trial_epochs": [r["curve"][-1]["trial_epochs"] if r["curve"] else 0 for r in seeds],
            "exploits": [sum(len(t.get("lineage") or []) for t in r["trials"]) for r in seeds],
        }
    pbt, asha = table.get("pbt", {}), table.get("tpe+asha-loss", {})
    met = None
    if pbt.get("best_at_budget") is not None and asha.get("best_at_budget") is not None:
        met = pbt["best_at_budget"] >= asha["best_at_budget"]
    return {"methods": table, "target_met": met}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny BERT, seconds per study")
    parser.add_argument("--url", help="an hpo-service to use (default: start a local one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budget", type=int, default=16, help="trial-epochs per method")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of a full trial")
    parser.add_argument("--train-samples", type=int, default=256)
    parser.add_argument("--eval-samples", type=int, default=277, help="277: all of RTE dev")
    parser.add_argument("--cpus", type=float, default=2.0, help="CPUs per study")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.cpus = min(args.cpus, 1.0)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "pbt_compare_quick" if args.quick else "pbt_compare"
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in args.methods}
    with service(args.url) as url, httpx.Client(base_url=url, timeout=30) as api:
        for seed in args.seeds:
            for method in args.methods:
                result = run_study(api, spec_for(method, seed, args), timeout_s=7200)
                result.update(seed=seed, curve=curve(result["trials"], trained=True))
                runs[method].append(result)
                best = best_within(result["curve"], args.budget)
                print(f"{method:14s} seed {seed}: best {best} in {result['wall_s']:.0f} s",
                      flush=True)  # fmt: skip
    summary = summarise(runs, args.budget)
    report = {
        "benchmark": name,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "summary": summary,
        "runs": {m: [{k: r[k] for k in ("seed", "wall_s", "curve")} for r in rs]
                 for m, rs in runs.items()},
    }  # fmt: skip
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(runs, args.budget, args.out / f"{name}.png")
    print("| method | mean best dev accuracy | per seed | trial-epochs | exploits |")
    print("|---|---|---|---|---|")
    for method, row in summary["methods"].items():
        seeds = ", ".join(f"{v:.3f}" if v is not None else "-" for v in row["per_seed"].values())
        best = row["best_at_budget"]
        print(f"| {method} | {best:.4f} | {seeds} | {row['trial_epochs']} | {row['exploits']} |"
              if best is not None else f"| {method} | - | {seeds} | - | - |")  # fmt: skip
    print("target (PBT >= TPE+ASHA at equal compute):", summary["target_met"])
    return report


if __name__ == "__main__":
    main()
