"""GPU check: a real study on one GPU through the service, with throughput, MFU and memory.

Starts ``hpo serve`` (SQLite, its own local Ray), submits a study over REST whose trials share
the card (fractional ``gpus_per_worker``; bf16 autocast in the training loop), samples
``nvidia-smi`` while it runs, and writes ``gpu_check.json``: per-trial and aggregate training
samples/s and tokens/s, an MFU estimate (6 x params x tokens/s / peak bf16 FLOP/s) and peak GPU
memory. ``--dry-run`` runs the same path on the CPU with the tiny BERT and a few samples
(``gpu_check_dry_run.json``). Run it through ``bench/gpu_check.sh``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.client import Client  # noqa: E402
from service.local_server import start_server, stop_server  # noqa: E402

RESULTS = REPO / "bench" / "results"
SST2 = REPO.parent / "shared" / "data" / "sst2"
H200_PEAK_BF16_FLOPS = 989e12  # dense bf16 tensor-core peak of an H200 (SXM)


def log(message: str) -> None:
    print(f"[gpu_check] {message}", flush=True)


class GpuSampler(threading.Thread):
    """Polls ``nvidia-smi`` once a second; keeps the peaks of memory and utilisation."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_used_mib = 0.0
        self.peak_process_mib = 0.0
        self.peak_util = 0.0
        self.util_sum = 0.0
        self.util_samples = 0
        self.name_ = ""
        self._done = threading.Event()

    def _query(self, *args: str) -> list[list[str]]:
        text = subprocess.run(
            ["nvidia-smi", *args, "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
        return [[f.strip() for f in line.split(",")] for line in text.strip().splitlines()]

    def run(self) -> None:
        while not self._done.is_set():
            try:
                name, used, util = self._query("--query-gpu=name,memory.used,utilization.gpu")[0]
                processes = self._query("--query-compute-apps=pid,used_memory")
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                processes, used, util, name = [], "0", "0", self.name_
            self.name_ = name
            self.peak_used_mib = max(self.peak_used_mib, float(used))
            self.peak_util = max(self.peak_util, float(util))
            if float(util) > 0:
                self.util_sum += float(util)
                self.util_samples += 1
            for row in processes:
                if len(row) == 2 and row[1].replace(".", "").isdigit():
                    self.peak_process_mib = max(self.peak_process_mib, float(row[1]))
            self._done.wait(1.0)

    def stop(self) -> dict[str, Any]:
        self._done.set()
        self.join(timeout=15)
        return {
            "gpu": self.name_,
            "peak_memory_used_mib": self.peak_used_mib,
            "peak_trial_process_memory_mib": self.peak_process_mib,
            "peak_utilization_pct": self.peak_util,
            "mean_busy_utilization_pct": self.util_sum / max(self.util_samples, 1),
        }


def random_bert_base(directory: Path) -> str:
    """A BERT-base-shaped model with random weights and the tiny tokenizer, written locally
    (when no pretrained weights are installed: throughput and MFU need only the shapes)."""
    from transformers import AutoModelForSequenceClassification, BertConfig

    from workers.tiny_bert import build_tiny_bert_tokenizer

    if not (directory / "config.json").is_file():
        config = BertConfig()  # the defaults are bert-base: 12 layers x 768, 110M parameters
        config.num_labels = 2
        AutoModelForSequenceClassification.from_config(config).save_pretrained(directory)
        build_tiny_bert_tokenizer().save_pretrained(directory)
    return str(directory)


def pick_model(args: argparse.Namespace, scratch: Path) -> str:
    """tiny-bert (dry run), pretrained MiniLM-L6 if installed, else a random BERT-base."""
    if args.model != "auto":
        return random_bert_base(scratch / "bert-base") if args.model == "bert-base" else args.model
    if args.dry_run:
        return "tiny-bert"
    from workers.models import minilm_dir

    try:
        minilm_dir()
        return "minilm-l6"
    except RuntimeError:
        log("MiniLM package not installed: using a random BERT-base (throughput only)")
        return random_bert_base(scratch / "bert-base")


def dataset() -> dict[str, Any]:
    """SST-2 from ../shared/data when present, else the built-in synthetic set."""
    if (SST2 / "train.tsv").is_file():
        return {
            "train": str(SST2 / "train.tsv"), "eval": str(SST2 / "dev.tsv"), "format": "tsv",
            "text_column": "sentence", "label_column": "label",
        }  # fmt: skip
    return {"name": "synthetic-sentiment"}


def study_spec(args: argparse.Namespace, model: str) -> dict[str, Any]:
    """The study: random search over lr and batch size, trials sharing the GPU."""
    return {
        "name": "gpu-check-dry-run" if args.dry_run else "gpu-check",
        "objective": {"metric": "eval_accuracy", "direction": "maximize"},
        "algorithm": "random",
        "algorithm_settings": {"seed": 0},
        "budget": {
            "n_trials": args.trials,
            "max_concurrent_trials": args.concurrency,
            "time_budget_s": args.study_budget_s,
        },
        "resources_per_trial": {
            "num_workers": 1,
            "cpus_per_worker": args.cpus_per_trial,
            "gpus_per_worker": args.gpus_per_trial,
        },
        "task": {
            "model": model,
            "dataset": dataset(),
            "max_seq_length": args.max_seq_length,
            "max_train_samples": args.train_samples,
            "max_eval_samples": args.eval_samples,
            "epochs": args.epochs,
        },
        "search_space": {
            "learning_rate": {"type": "float", "low": 2e-5, "high": 2e-4, "log": True},
            "batch_size": {"type": "categorical", "choices": args.batch_sizes},
        },
    }


def workload(spec: dict[str, Any]) -> dict[str, float]:
    """Parameters of the model and mean real tokens per training example (as the driver sees)."""
    from search_spaces.spec import StudySpec
    from workers.data import load_text_data, tokenize
    from workers.models import build_model, build_tokenizer

    parsed = StudySpec.model_validate(spec)
    task = parsed.task
    text = load_text_data(task.dataset, task.max_train_samples, task.max_eval_samples, seed=0)
    data = tokenize(text, build_tokenizer(task.model), task.max_seq_length)
    model = build_model(task.model, data.num_labels, 0.1, seed=0)
    params = sum(p.numel() for p in model.parameters())
    embeddings = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    return {
        "params": float(params),
        "non_embedding_params": float(params - embeddings),
        "train_examples": float(len(data.train_ids)),
        "mean_tokens_per_example": sum(map(len, data.train_ids)) / len(data.train_ids),
    }


def max_overlap(trials: list[dict[str, Any]]) -> int:
    """The most trials that ran at the same time."""
    edges: list[tuple[datetime, int]] = []
    for trial in trials:
        if trial["datetime_start"] and trial["datetime_complete"]:
            edges.append((datetime.fromisoformat(trial["datetime_start"]), 1))
            edges.append((datetime.fromisoformat(trial["datetime_complete"]), -1))
    running = most = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        running += step
        most = max(most, running)
    return most


def throughput(
    trials: list[dict[str, Any]], work: dict[str, float], peak_flops: float
) -> dict[str, Any]:
    """Per-trial and aggregate samples/s, tokens/s and MFU from the trials' own metrics."""
    rates = [
        float(t["metrics"]["train_samples_per_second"])
        for t in trials
        if t["state"] == "COMPLETE" and t["metrics"].get("train_samples_per_second")
    ]
    if not rates:
        return {"per_trial_samples_per_s": [], "aggregate_samples_per_s": 0.0}
    concurrent = max(1, min(max_overlap(trials), len(rates)))
    per_trial = sum(rates) / len(rates)
    aggregate = per_trial * concurrent  # trials that overlap train side by side
    tokens = work["mean_tokens_per_example"]

    def mfu(samples_per_s: float, params: float) -> float:
        return 6 * params * samples_per_s * tokens / peak_flops

    return {
        "per_trial_samples_per_s": rates,
        "mean_trial_samples_per_s": per_trial,
        "mean_trial_tokens_per_s": per_trial * tokens,
        "concurrent_trials": concurrent,
        "aggregate_samples_per_s": aggregate,
        "aggregate_tokens_per_s": aggregate * tokens,
        "mfu_per_trial": mfu(per_trial, work["params"]),
        "mfu_aggregate": mfu(aggregate, work["params"]),
        "mfu_aggregate_non_embedding": mfu(aggregate, work["non_embedding_params"]),
        "mfu_formula": "6 * params * tokens_per_s / peak_bf16_flops (real, unpadded tokens)",
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny BERT, few samples")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--model", default="auto", help="auto | minilm-l6 | bert-base | DIR")
    parser.add_argument("--trials", type=int, help="default 8 (dry run: 2)")
    parser.add_argument("--concurrency", type=int, help="default 4 (dry run: 2)")
    parser.add_argument("--gpus-per-trial", type=float, default=0.25)
    parser.add_argument("--cpus-per-trial", type=float, help="default <= 3 (dry run: 0.5)")
    parser.add_argument("--train-samples", type=int, help="default 16000 (dry run: 256)")
    parser.add_argument("--eval-samples", type=int, help="default 872 (dry run: 128)")
    parser.add_argument("--epochs", type=int, help="default 2 (dry run: 1)")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--study-budget-s", type=float, help="default 300 (dry run: 120)")
    parser.add_argument("--peak-flops", type=float, default=H200_PEAK_BF16_FLOPS)
    args = parser.parse_args(argv)
    dry = args.dry_run
    defaults = {
        "trials": (2, 8), "concurrency": (2, 4),
        "train_samples": (256, 16000), "eval_samples": (128, 872), "epochs": (1, 2),
        "study_budget_s": (120.0, 300.0),
    }  # fmt: skip
    for name, (dry_value, gpu_value) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, dry_value if dry else gpu_value)
    if args.cpus_per_trial is None:  # the concurrent trials fit, two cores left for the rest
        spare = max(1, ((os.cpu_count() or 2) - 2) // args.concurrency)
        args.cpus_per_trial = 0.5 if dry else float(min(3, spare))
    if dry:
        args.gpus_per_trial = 0.0
    return args


def run_on_service(
    args: argparse.Namespace, spec: dict[str, Any], root: Path
) -> tuple[Any, list[dict[str, Any]], dict[str, Any], dict[str, float]]:
    """Start the service, submit the study, measure the workload while it runs, and wait.

    Returns:
        The final study, its trials (as JSON), the GPU sampler's peaks and the workload.
    """
    gpu = not args.dry_run
    env = {
        "HPO_RAY_NUM_GPUS": "1" if gpu else "0",
        # The Ray job runs `python -m workers.run_study`: importable without an install.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        # The random BERT-base of pick_model lies in the scratch directory.
        "HPO_MODEL_ROOTS": json.dumps([str(root)]),
    }
    cpus = (os.cpu_count() or 2) if gpu else 2
    log(f"starting the service (local Ray: {cpus} CPUs, {env['HPO_RAY_NUM_GPUS']} GPU)")
    server = start_server(root / "service", f"sqlite:///{root}/hpo.db", env, num_cpus=cpus)
    sampler = GpuSampler()
    if gpu:
        sampler.start()
    try:
        client = Client(server.url, timeout_s=30)
        study = client.submit(json.dumps(spec), yaml_syntax=False)
        log(f"submitted study {study.id}; measuring the workload (params, tokens per example)")
        work = workload(spec)
        log(f"waiting for the study (time budget {args.study_budget_s:.0f} s)")
        study = client.wait(study.id, timeout_s=args.study_budget_s + 180, poll_s=1)
        trials = [t.model_dump(mode="json") for t in client.trials(study.id, limit=1000).data]
        client.close()
    except BaseException:
        log(f"server log tail:\n{server.log_path.read_text(errors='replace')[-4000:]}")
        raise
    finally:
        memory = sampler.stop() if gpu else {}
        stop_server(server)
    return study, trials, memory, work


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.monotonic()
    if not args.dry_run and shutil.which("nvidia-smi") is None:
        raise SystemExit("nvidia-smi not found: run on the GPU machine, or pass --dry-run")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hpo-gpu-check-") as root:
        model = pick_model(args, Path(root))
        log(f"model {model}")
        spec = study_spec(args, model)
        study, trials, memory, work = run_on_service(args, spec, Path(root))
    if study.status != "SUCCEEDED":
        log(f"study {study.status}: {study.status_reason}")
    report = {
        "benchmark": "gpu_check",
        "dry_run": args.dry_run,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "model": "bert-base (random weights)" if model.startswith(root) else model,
        "study": {"id": study.id, "status": study.status, "reason": study.status_reason},
        "best_eval_accuracy": study.best_value,
        "trials": [
            {k: t[k] for k in ("number", "state", "params", "metrics", "duration_s")}
            for t in trials
        ],
        "workload": work,
        "throughput": throughput(trials, work, args.peak_flops),
        "gpu_memory": memory,
        "precision": "fp32 (CPU)" if args.dry_run else "bf16 autocast, fp32 weights",
        "peak_bf16_flops": args.peak_flops,
        "wall_s": time.monotonic() - started,
    }
    name = "gpu_check_dry_run.json" if args.dry_run else "gpu_check.json"
    (args.out / name).write_text(json.dumps(report, indent=2))
    summary = report["throughput"]
    log(
        f"study {study.status}; {len(trials)} trials; aggregate "
        f"{summary.get('aggregate_samples_per_s', 0):.1f} samples/s, "
        f"{summary.get('aggregate_tokens_per_s', 0):.0f} tokens/s, "
        f"MFU {summary.get('mfu_aggregate', 0):.2%}; peak GPU memory "
        f"{memory.get('peak_memory_used_mib', 0):.0f} MiB; wrote {args.out / name}"
    )
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["study"]["status"] == "SUCCEEDED" else 1)
