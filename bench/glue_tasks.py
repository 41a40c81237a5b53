"""Hugging Face default hyperparameters vs a tuned study, task by task, through the real service.

For RTE (accuracy), MRPC (F1 of the paraphrase class), STS-B (Pearson, regression) and WNUT-17
(entity F1, token classification) with the pretrained MiniLM-L6, side by side in one run:

- **defaults**: the Hugging Face ``Trainer`` defaults (lr 2e-5, batch 32, 3 epochs, no weight
  decay, no warm-up), one grid study over the training seed (one trial per seed);
- **tuned**: the ready spec ``search_spaces/<task>_minilm.yaml`` (TPE over learning rate, batch
  size, weight decay and warm-up, ASHA stopping trials early on the eval loss, the task's metric
  as objective), one study per seed (the seed of TPE and of the trials' training), its best
  trial's dev metric.

Both see the same data (a fixed random subset of the training set, the dev set capped to the
same random subset, both drawn by the service with its fixed data seed) and the same longest
trial (3 epochs). The tuned study's compute is ``--trials`` trials of at most 3 epochs; the
trial-epochs it really ran (ASHA stops most trials early) are recorded and printed. Each study
is submitted over REST to a local server (SQLite, its own local Ray with 2 CPUs), one trial at a
time. Writes ``bench/results/glue_tasks.json`` after every study (``--resume`` keeps the studies
already recorded with the same settings) and prints the table the README quotes.

    python bench/glue_tasks.py                          # about 45 min on 2 shared CPU cores
    python bench/glue_tasks.py --smoke                  # tiny subsets, 2 trials: a few minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.client import Client  # noqa: E402
from service.local_server import start_server, stop_server  # noqa: E402

RESULTS = REPO / "bench" / "results"
SPECS = REPO / "search_spaces"
# Task -> (ready spec, the dev metric compared: the task's default objective).
TASKS = {
    "rte": ("rte_minilm.yaml", "eval_accuracy"),
    "mrpc": ("mrpc_minilm.yaml", "eval_f1"),
    "stsb": ("stsb_minilm.yaml", "eval_pearson"),
    "wnut17": ("wnut17_minilm.yaml", "eval_f1"),
}
# transformers.TrainingArguments' defaults (learning_rate, per_device_train_batch_size,
# num_train_epochs, weight_decay, warmup_ratio); the epochs are the task's.
HF_DEFAULTS = {"learning_rate": 2e-5, "batch_size": 32, "weight_decay": 0.0, "warmup_ratio": 0.0}
HF_EPOCHS = 3


def log(message: str) -> None:
    print(f"[glue_tasks {time.strftime('%H:%M:%S')}] {message}", flush=True)


def base_spec(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """The ready spec of ``task`` on the benchmark's data: absolute paths, subsets, 3 epochs."""
    spec: dict[str, Any] = yaml.safe_load((SPECS / TASKS[task][0]).read_text())
    dataset = spec["task"]["dataset"]
    for key in ("train", "eval"):  # the specs name ../shared/data relative to the repo root
        dataset[key] = str((REPO / dataset[key]).resolve())
    spec["task"].update(
        epochs=HF_EPOCHS,
        max_seq_length=args.max_seq_length,
        max_train_samples=args.train_samples,
        max_eval_samples=args.eval_samples,
    )
    spec["objective"] = {"metric": TASKS[task][1], "direction": "maximize"}
    spec["resources_per_trial"] = {"num_workers": 1, "cpus_per_worker": args.cpus}
    return spec


def defaults_spec(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """One trial per seed at the Hugging Face defaults (a grid over the seed alone)."""
    spec = base_spec(task, args)
    spec.update(
        name=f"glue-{task}-defaults",
        algorithm="grid",
        algorithm_settings={},
        scheduler={"type": "none"},
        budget={"n_trials": len(args.default_seeds), "max_concurrent_trials": 1},
        search_space={"seed": {"type": "categorical", "choices": list(args.default_seeds)}},
    )
    spec["task"]["hyperparameters"] = dict(HF_DEFAULTS)
    return spec


def tuned_spec(task: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The ready spec's search (TPE, ASHA on the eval loss) with ``--trials`` trials."""
    spec = base_spec(task, args)
    spec["name"] = f"glue-{task}-tuned-s{seed}"
    spec["algorithm_settings"] = {"seed": seed, "n_startup_trials": args.startup_trials}
    spec["scheduler"] = {
        "type": "asha", "metric": "eval_loss", "grace_period": 1,
        "reduction_factor": args.reduction_factor,
    }  # fmt: skip
    spec["budget"] = {"n_trials": args.trials, "max_concurrent_trials": 1}
    spec["task"]["hyperparameters"] = {"seed": seed}
    return spec


def run_study(client: Client, spec: dict[str, Any], metric: str) -> dict[str, Any]:
    """Submit one study, wait for it; its trials' dev metric, epochs run, params and state."""
    started = time.monotonic()
    study = client.submit(json.dumps(spec), yaml_syntax=False)
    study = client.wait(study.id, timeout_s=3 * 3600, poll_s=1)
    if study.status != "SUCCEEDED":
        raise RuntimeError(f"study {spec['name']} {study.status}: {study.status_reason}")
    trials = []
    for trial in client.all_trials(study.id):
        metrics = trial.metrics or {}
        trials.append({
            "number": trial.number,
            "state": trial.state,
            "params": trial.params,
            "value": trial.value if trial.value is not None else metrics.get(metric),
            "eval_loss": metrics.get("eval_loss"),
            "epochs": int(metrics.get("epoch") or len(trial.intermediate_values or {})),
            "duration_s": trial.duration_s,
        })  # fmt: skip
    return {
        "study_id": study.id, "wall_s": time.monotonic() - started,
        "best_value": study.best_value, "trials": trials,
    }  # fmt: skip


def spread(values: list[float]) -> float:
    """Sample standard deviation (0 for a single value)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(task: str, record: dict[str, Any]) -> dict[str, Any]:
    """Defaults' per-seed metric and tuned best per seed, means, spreads and the verdict.

    The target is met when the tuned mean exceeds the defaults' mean by more than the larger
    of the two seed spreads (sample standard deviations).
    """
    row: dict[str, Any] = {"metric": TASKS[task][1]}
    defaults = record.get("defaults")
    if defaults:
        values = [t["value"] for t in defaults["trials"] if t["value"] is not None]
        row["defaults"] = {
            "per_seed": {str(t["params"]["seed"]): t["value"] for t in defaults["trials"]},
            "mean": statistics.fmean(values), "spread": spread(values),
            "best_of_seeds": max(values),
            "trial_epochs": sum(t["epochs"] for t in defaults["trials"]),
        }  # fmt: skip
    tuned = record.get("tuned") or {}
    if tuned:
        best = {}
        for seed, run in sorted(tuned.items()):
            done = [t for t in run["trials"] if t["value"] is not None and t["state"] == "COMPLETE"]
            top = max(done, key=lambda t: t["value"])
            scored = [t["value"] for t in run["trials"] if t["value"] is not None]
            best[seed] = {
                "value": top["value"], "params": top["params"],
                # incl. pruned trials' last value: what stopping on the eval loss threw away
                "best_any_trial": max(scored),
                "trial_epochs": sum(t["epochs"] for t in run["trials"]),
                "trials": len(run["trials"]),
                "pruned": sum(t["state"] == "PRUNED" for t in run["trials"]),
            }  # fmt: skip
        values = [b["value"] for b in best.values()]
        row["tuned"] = {
            "per_seed": best, "mean": statistics.fmean(values), "spread": spread(values),
            "trial_epochs_mean": statistics.fmean(b["trial_epochs"] for b in best.values()),
        }  # fmt: skip
    if "defaults" in row and "tuned" in row:
        base, best_mean = row["defaults"]["mean"], row["tuned"]["mean"]
        margin = max(row["defaults"]["spread"], row["tuned"]["spread"])
        row["gain"] = best_mean - base
        # A relative gain means nothing against a baseline at or below zero (STS-B's Pearson
        # of an untrained regression head can be negative).
        row["relative_gain"] = (best_mean - base) / base if base > 0 else None
        row["target_met"] = best_mean - base > margin
    return row


def write_report(path: Path, runs: dict[str, Any], args: argparse.Namespace, wall: float) -> dict:
    """Write what has run so far (a later ``--resume`` run continues from it)."""
    summary = {task: summarise(task, runs[task]) for task in runs}
    verdicts = [row.get("target_met") for row in summary.values()]
    report = {
        "benchmark": "glue_tasks",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "hf_defaults": {**HF_DEFAULTS, "epochs": HF_EPOCHS},
        "summary": summary,
        "target_met": bool(verdicts) and all(v is True for v in verdicts),
        "wall_s": wall,
        "runs": runs,
    }
    path.write_text(json.dumps(report, indent=2))
    return report


SAME_SETTINGS = (
    "smoke", "train_samples", "eval_samples", "max_seq_length", "trials", "startup_trials",
    "reduction_factor", "default_seeds",
)  # fmt: skip


def previous_runs(path: Path, args: argparse.Namespace) -> tuple[dict[str, Any], float]:
    """Studies recorded by an earlier invocation with the same data, budget and seeds."""
    if not path.exists():
        return {}, 0.0
    old = json.loads(path.read_text())
    if not all(old["settings"].get(k) == getattr(args, k) for k in SAME_SETTINGS):
        return {}, 0.0
    return dict(old["runs"]), float(old.get("wall_s", 0.0))


def print_table(report: dict[str, Any]) -> None:
    """The Markdown table the README quotes."""
    print(
        "| task | dev metric | defaults (mean ± sd) | tuned best (mean ± sd) | relative gain "
        "| tuned trial-epochs | target met |"
    )
    print("|---|---|---|---|---|---|---|")
    for task, row in report["summary"].items():
        d, t = row.get("defaults"), row.get("tuned")
        cells = [
            f"{d['mean']:.4f} ± {d['spread']:.4f} ({len(d['per_seed'])})" if d else "-",
            f"{t['mean']:.4f} ± {t['spread']:.4f} ({len(t['per_seed'])})" if t else "-",
            f"{row['relative_gain']:+.1%}" if row.get("relative_gain") is not None else "-",
            f"{t['trial_epochs_mean']:.1f}" if t else "-",
            {True: "yes", False: "no"}.get(row.get("target_met"), "-"),
        ]
        print(f"| {task} | {row['metric']} | " + " | ".join(cells) + " |")


def run_pending(
    pending: list[tuple[str, int | None]],
    runs: dict[str, Any],
    args: argparse.Namespace,
    path: Path,
    wall_before: float,
) -> None:
    """Run the studies not recorded yet (seed None: the defaults), writing JSON after each."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hpo-glue-") as root:
        server = start_server(Path(root), f"sqlite:///{root}/bench.db")
        log(f"service at {server.url} (log {server.log_path})")
        try:
            client = Client(server.url, timeout_s=60)
            for task, seed in pending:
                spec = defaults_spec(task, args) if seed is None else tuned_spec(task, seed, args)
                log(f"{spec['name']}: submitting")
                result = run_study(client, spec, TASKS[task][1])
                if seed is None:
                    runs[task]["defaults"] = result
                else:
                    runs[task]["tuned"][str(seed)] = result
                values = [t["value"] for t in result["trials"]]
                epochs = sum(t["epochs"] for t in result["trials"])
                log(f"{spec['name']}: {values} ({epochs} trial-epochs, {result['wall_s']:.0f} s)")
                write_report(path, runs, args, wall_before + time.monotonic() - started)
            client.close()
        except BaseException:
            log(f"server log tail:\n{server.log_path.read_text(errors='replace')[-4000:]}")
            raise
        finally:
            stop_server(server)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny subsets and budget")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--train-samples", type=int, default=128)
    parser.add_argument("--eval-samples", type=int, default=150)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--default-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tuned-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--trials", type=int, default=6, help="trials per tuned study")
    parser.add_argument("--startup-trials", type=int, default=2, help="TPE's random start")
    parser.add_argument("--reduction-factor", type=float, default=2.0, help="ASHA's")
    parser.add_argument("--cpus", type=float, default=2.0, help="CPUs per trial")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--resume", action="store_true", help="keep the studies recorded")
    args = parser.parse_args(argv)
    if args.smoke:
        args.train_samples, args.eval_samples, args.trials = 32, 32, 2
        args.startup_trials, args.default_seeds, args.tuned_seeds = 1, [0], [0]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("glue_tasks_smoke.json" if args.smoke else "glue_tasks.json")
    runs, wall_before = previous_runs(path, args) if args.resume else ({}, 0.0)
    for task in args.tasks:
        runs.setdefault(task, {"defaults": None, "tuned": {}})
    # Defaults and the first tuned seed of every task first, then the further seeds, so that a
    # run cut short still compares every task.
    pending = [(task, None) for task in args.tasks if runs[task]["defaults"] is None] + [
        (task, seed)
        for seed in args.tuned_seeds
        for task in args.tasks
        if str(seed) not in runs[task]["tuned"]
    ]
    started = time.monotonic()
    if pending:
        run_pending(pending, runs, args, path, wall_before)
    wall_before += time.monotonic() - started
    report = write_report(path, runs, args, wall_before)
    print_table(report)
    log(f"wrote {path} ({report['wall_s']:.0f} s of studies); target met: {report['target_met']}")
    return report


if __name__ == "__main__":
    main()
