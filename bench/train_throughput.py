"""Training throughput of our fine-tuning loop against Hugging Face ``transformers.Trainer``.

Both train the same model (same initial weights) on the same pre-tokenised data with the same
batch size, sequence length, epochs, AdamW settings, fp32 and CPU threads, one after the other
in this process (alternating order over the repeats; medians, and the best run). Only training is
timed: per epoch, from the first batch to the last optimizer step, like the loop's own
``train_samples_per_second``, in wall-clock seconds and in CPU seconds (steadier when other
work shares the machine). Model loading, tokenising and evaluation are reported apart, and so
is each loop's padding (padded / real tokens).

Full run: pretrained MiniLM-L6 on a fixed SST-2 subset (``../shared/data/sst2``). ``--quick``:
the tiny random BERT on the synthetic set, well under a minute (the test suite runs it).

    python bench/train_throughput.py               # full: about 5 minutes on 2 CPU cores
    python bench/train_throughput.py --quick --out /tmp/results
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import patch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import workers.batching as batching  # noqa: E402
import workers.trial_run as trial_run  # noqa: E402
from search_spaces.spec import Dataset  # noqa: E402
from search_spaces.tunables import TUNABLES  # noqa: E402
from workers.data import TokenizedData, collate, load_text_data, tokenize, truncate  # noqa: E402
from workers.models import build_model, build_tokenizer  # noqa: E402
from workers.train_loop import run_training  # noqa: E402

RESULTS = REPO / "bench" / "results"
SST2 = REPO.parent / "shared" / "data" / "sst2"


def idle_cores() -> int:
    """Cores not busy with other work (1-minute load average), at least 1.

    A thread more than there are free cores makes every step wait for a descheduled thread:
    on a busy 2-core machine, 2 threads train several times slower than 1.
    """
    cores = os.cpu_count() or 1
    return max(1, min(cores, cores - round(os.getloadavg()[0])))


def load_data(args: argparse.Namespace) -> tuple[TokenizedData, Any]:
    """The tokenised train/eval data both loops train on, and the tokenizer."""
    if args.quick:
        dataset = Dataset(name="synthetic-sentiment")
    else:
        dataset = Dataset(
            train=str(SST2 / "train.tsv"), eval=str(SST2 / "dev.tsv"), format="tsv",
            text_column="sentence", label_column="label",
        )  # fmt: skip
    text = load_text_data(dataset, args.train_samples, args.eval_samples, seed=0)
    tokenizer = build_tokenizer(args.model)
    return tokenize(text, tokenizer, args.max_seq_length), tokenizer


def hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    """Every tunable: defaults, plus the benchmark's settings."""
    hp: dict[str, Any] = {name: tunable.default for name, tunable in TUNABLES.items()}
    hp.update(
        learning_rate=args.learning_rate, batch_size=args.batch_size, epochs=args.epochs,
        max_seq_length=args.max_seq_length, weight_decay=0.01, warmup_ratio=0.1, seed=0,
        num_threads=args.threads,
    )  # fmt: skip
    return hp


def run_ours(hp: dict[str, Any], data: TokenizedData, model: str) -> dict[str, Any]:
    """One run of ``workers.train_loop.run_training`` on the CPU (the in-process trial path).

    Besides the loop's own per-epoch wall time, measures the CPU seconds of training (those of
    the run less model building and evaluation; robust on a busy machine) and the padded
    tokens of its training batches.
    """
    probe = {"excluded_cpu_s": 0.0, "padded_tokens": 0, "evaluating": False}

    def excluded(function: Callable[..., Any], evaluating: bool = False) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            probe["evaluating"] = evaluating
            try:
                return function(*args, **kwargs)
            finally:
                probe["excluded_cpu_s"] += time.process_time() - started
                probe["evaluating"] = False

        return wrapper

    def counting_collate(ids: list[list[int]], labels: list[int], pad_id: int, types: Any) -> Any:
        if not probe["evaluating"]:
            probe["padded_tokens"] += len(ids) * max(map(len, ids))
        return collate(ids, labels, pad_id, types)

    reports: list[dict[str, float]] = []
    with (
        patch.object(trial_run, "build_model", excluded(trial_run.build_model)),
        patch.object(trial_run, "evaluate", excluded(trial_run.evaluate, evaluating=True)),
        patch.object(batching, "collate", counting_collate),
    ):
        started, cpu_started = time.perf_counter(), time.process_time()
        run_training(hp, data, model, reports.append, device=torch.device("cpu"))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    # Each epoch reports samples / its training seconds.
    train_s = sum(len(data.train_ids) / r["train_samples_per_second"] for r in reports)
    return {
        "train_s": train_s,
        "train_cpu_s": cpu - float(probe["excluded_cpu_s"]),
        "wall_s": wall,
        "padded_tokens": int(probe["padded_tokens"]),
        "eval_accuracy": reports[-1]["eval_accuracy"],
    }


class _Examples(torch.utils.data.Dataset[dict[str, Any]]):
    """Pre-tokenised examples as the dicts ``DataCollatorWithPadding`` pads."""

    def __init__(self, ids: list[list[int]], labels: list[int]) -> None:
        self.rows = [
            {"input_ids": i, "attention_mask": [1] * len(i), "labels": y}
            for i, y in zip(ids, labels, strict=True)
        ]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]


def run_hf(
    hp: dict[str, Any], data: TokenizedData, model_name: str, tokenizer: Any, out_dir: str
) -> dict[str, Any]:
    """One run of ``transformers.Trainer`` with its defaults, minus eval, saving and logging."""
    from transformers import (
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    class EpochTimer(TrainerCallback):  # the same span our loop times, in wall and CPU seconds
        seconds = cpu_seconds = 0.0
        training = False

        def on_epoch_begin(self, *args: Any, **kwargs: Any) -> None:
            self.training = True
            self.started, self.cpu_started = time.perf_counter(), time.process_time()

        def on_epoch_end(self, *args: Any, **kwargs: Any) -> None:
            self.training = False
            self.seconds += time.perf_counter() - self.started
            self.cpu_seconds += time.process_time() - self.cpu_started

    timer = EpochTimer()
    padding = DataCollatorWithPadding(tokenizer)  # Trainer's default collator given a tokenizer
    padded = {"tokens": 0}

    def counting_collator(features: list[dict[str, Any]]) -> Any:
        batch = padding(features)
        if timer.training:
            padded["tokens"] += batch["input_ids"].numel()
        return batch

    max_length = int(hp["max_seq_length"])
    train = _Examples(
        [truncate(i, max_length, data.sep_id) for i in data.train_ids], data.train_labels
    )
    evals = _Examples(
        [truncate(i, max_length, data.sep_id) for i in data.eval_ids], data.eval_labels
    )
    steps = math.ceil(len(train) / int(hp["batch_size"])) * int(hp["epochs"])
    arguments = TrainingArguments(
        output_dir=out_dir, per_device_train_batch_size=int(hp["batch_size"]),
        per_device_eval_batch_size=int(hp["batch_size"]), num_train_epochs=int(hp["epochs"]),
        learning_rate=float(hp["learning_rate"]), weight_decay=float(hp["weight_decay"]),
        warmup_steps=math.ceil(float(hp["warmup_ratio"]) * steps),  # as ours
        adam_beta1=float(hp["adam_beta1"]), adam_beta2=float(hp["adam_beta2"]),
        adam_epsilon=float(hp["adam_epsilon"]), max_grad_norm=float(hp["max_grad_norm"]),
        seed=int(hp["seed"]), use_cpu=True, eval_strategy="no", save_strategy="no",
        logging_strategy="no", report_to=[], disable_tqdm=True,
    )  # fmt: skip
    started = time.perf_counter()
    model = build_model(model_name, data.num_labels, float(hp["dropout"]), int(hp["seed"]))
    load_s = time.perf_counter() - started
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=train,
        data_collator=counting_collator,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    trainer.remove_callback(PrinterCallback)  # it prints the final train metrics
    started = time.perf_counter()
    trainer.train()
    train_wall = time.perf_counter() - started
    started = time.perf_counter()
    predictions = trainer.predict(evals)
    eval_s = time.perf_counter() - started
    logits = predictions.predictions
    predicted = (logits[0] if isinstance(logits, tuple) else logits).argmax(-1)
    accuracy = float((predicted == predictions.label_ids).mean())
    return {
        "train_s": timer.seconds,
        "train_cpu_s": timer.cpu_seconds,
        "train_wall_s": train_wall,
        "padded_tokens": padded["tokens"],
        "load_s": load_s,
        "eval_s": eval_s,
        "eval_accuracy": accuracy,
        "optimizer": str(getattr(arguments.optim, "value", arguments.optim)),
    }


def summarise(runs: list[dict[str, Any]], samples: int, tokens: int) -> dict[str, Any]:
    """Median throughput of one loop's runs (samples and real, unpadded tokens per second)."""
    train_s = statistics.median(r["train_s"] for r in runs)
    cpu_s = statistics.median(r["train_cpu_s"] for r in runs)
    return {
        "train_s_median": train_s,
        "samples_per_s": samples / train_s,
        "tokens_per_s": tokens / train_s,
        # The fastest run is the one other work disturbed least (like timeit's minimum).
        "best_samples_per_s": samples / min(r["train_s"] for r in runs),
        "samples_per_cpu_s": samples / cpu_s,
        "padded_tokens_per_real_token": statistics.median(r["padded_tokens"] for r in runs)
        / tokens,
        "eval_accuracy": statistics.median(r["eval_accuracy"] for r in runs),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny BERT, synthetic data")
    parser.add_argument("--model", help="default: minilm-l6 (quick: tiny-bert)")
    parser.add_argument("--train-samples", type=int, help="default 1024 (quick: 2048)")
    parser.add_argument("--eval-samples", type=int, help="default 500 (quick: 256)")
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, help="default 1e-4 (quick: 3e-3)")
    parser.add_argument("--repeats", type=int, help="runs of each loop; default 3 (quick: 2)")
    parser.add_argument("--threads", type=int, help="torch threads; default: the idle cores")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.model = args.model or ("tiny-bert" if args.quick else "minilm-l6")
    args.train_samples = args.train_samples or (2048 if args.quick else 1024)
    args.eval_samples = args.eval_samples or (256 if args.quick else 500)
    args.learning_rate = args.learning_rate or (3e-3 if args.quick else 1e-4)
    args.repeats = args.repeats or (2 if args.quick else 3)
    load_at_start = os.getloadavg()[0]
    args.threads = args.threads or idle_cores()
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    data, tokenizer = load_data(args)
    tokenise_s = time.perf_counter() - started
    hp = hyperparameters(args)
    lengths = [len(ids) for ids in data.train_ids]  # tokenised at max_seq_length
    samples, tokens = len(lengths) * args.epochs, sum(lengths) * args.epochs
    ours: list[dict[str, Any]] = []
    hf: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hf-trainer-") as scratch:
        for repeat in range(args.repeats):
            # Alternate the order so drifting background load hits both loops alike.
            order = ("ours", "hf") if repeat % 2 == 0 else ("hf", "ours")
            for loop in order:
                if loop == "ours":
                    ours.append(run_ours(hp, data, args.model))
                else:
                    hf.append(run_hf(hp, data, args.model, tokenizer, scratch))
                last = (ours if loop == "ours" else hf)[-1]
                print(f"repeat {repeat} {loop:4s}: {samples / last['train_s']:8.1f} samples/s, "
                      f"{samples / last['train_cpu_s']:8.1f} per CPU s, "
                      f"acc {last['eval_accuracy']:.4f}", flush=True)  # fmt: skip
    report = {
        "benchmark": "train_throughput",
        "quick": args.quick,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "torch": torch.__version__,
        "load_average_1m": {"start": load_at_start, "end": os.getloadavg()[0]},
        "train_examples": len(lengths),
        "mean_tokens_per_example": sum(lengths) / len(lengths),
        "tokenise_s": tokenise_s,
        "ours": summarise(ours, samples, tokens),
        "hf_trainer": summarise(hf, samples, tokens),
    }
    ours_row, hf_row = report["ours"], report["hf_trainer"]
    report["ratio_ours_over_hf"] = ours_row["samples_per_s"] / hf_row["samples_per_s"]
    report["ratio_ours_over_hf_best"] = (
        ours_row["best_samples_per_s"] / hf_row["best_samples_per_s"]
    )
    report["ratio_ours_over_hf_cpu_time"] = (
        ours_row["samples_per_cpu_s"] / hf_row["samples_per_cpu_s"]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("train_throughput_quick.json" if args.quick else "train_throughput.json")
    path.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"wrote {path}")
    return report


def print_table(report: dict[str, Any]) -> None:
    """The Markdown table the README quotes."""
    print("| loop | samples/s | best samples/s | tokens/s | samples per CPU s | padded/real tokens "
          "| eval acc |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, key in (("ours (workers/train_loop.py)", "ours"), ("HF Trainer", "hf_trainer")):
        row = report[key]
        print(
            f"| {name} | {row['samples_per_s']:.1f} | {row['best_samples_per_s']:.1f} "
            f"| {row['tokens_per_s']:.0f} "
            f"| {row['samples_per_cpu_s']:.1f} | {row['padded_tokens_per_real_token']:.2f} "
            f"| {row['eval_accuracy']:.4f} |"
        )
    print(
        f"ours / HF Trainer: {report['ratio_ours_over_hf']:.2f}x (median wall clock), "
        f"{report['ratio_ours_over_hf_best']:.2f}x (best run), "
        f"{report['ratio_ours_over_hf_cpu_time']:.2f}x (CPU time)"
    )


if __name__ == "__main__":
    main()
