"""Full fine-tuning vs LoRA vs full + dynamic int8 (and more) on SST-2 with MiniLM-L6.

Each variant is one trial of the real training loop (``workers.train_loop.run_training``, as a
single-worker trial runs it), on the same data, seed and CPU threads, one after the other in
this process. For each: accuracy of the model as deployed (after compression), size of its
weights, inference latency at batch 1 and 32 (CPU, median of 7 runs), device-seconds (CPU
seconds of training and measuring), trainable parameters and checkpoint size (for LoRA, the
adapter). Then the accuracy-latency Pareto front is drawn to a PNG.

    python bench/efficiency.py            # full: SST-2 subset, MiniLM-L6; ~10 min on 2 cores
    python bench/efficiency.py --quick --out /tmp/results   # tiny BERT, synthetic data, ~20 s
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from search_spaces.tunables import TUNABLES  # noqa: E402
from workers.data import TokenizedData  # noqa: E402
from workers.train_loop import run_training  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from train_throughput import load_data  # noqa: E402

RESULTS = REPO / "bench" / "results"
# name -> (finetune_method, compression, learning rate): LoRA's adapters start at zero and
# want a larger step than full fine-tuning.
VARIANTS: dict[str, tuple[str, str, float]] = {
    "full": ("full", "none", 1e-4),
    "lora": ("lora", "none", 1e-3),
    "full+dynamic_int8": ("full", "dynamic_int8", 1e-4),
    "lora+dynamic_int8": ("lora", "dynamic_int8", 1e-3),
    "full+prune_l1_50": ("full", "prune_l1_50", 1e-4),
}
COLUMNS = (
    "compressed_eval_accuracy", "eval_accuracy", "compressed_model_bytes", "model_bytes",
    "compressed_latency_b1_ms", "compressed_latency_b32_ms", "latency_b1_ms", "latency_b32_ms",
    "device_seconds", "wall_time_s", "trainable_parameter_count", "parameter_count",
    "checkpoint_bytes", "peak_rss_bytes", "train_samples_per_second",
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny BERT on synthetic data")
    parser.add_argument("--train-samples", type=int, default=4000)
    parser.add_argument("--eval-samples", type=int, default=872, help="SST-2 dev has 872")
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="0: the machine's idle cores")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.train_samples, args.eval_samples, args.max_seq_length = 256, 128, 32
    args.model = "tiny-bert" if args.quick else "minilm-l6"
    if args.threads <= 0:
        cores = os.cpu_count() or 1
        args.threads = max(1, min(cores, cores - round(os.getloadavg()[0])))
    return args


def run_variant(
    args: argparse.Namespace, data: TokenizedData, method: str, compression: str, lr: float
) -> dict[str, Any]:
    hp: dict[str, Any] = {name: tunable.default for name, tunable in TUNABLES.items()}
    hp.update(
        learning_rate=lr * (10 if args.quick else 1), batch_size=32, epochs=args.epochs,
        max_seq_length=args.max_seq_length, weight_decay=0.01, warmup_ratio=0.1, seed=0,
        num_threads=args.threads, finetune_method=method, compression=compression,
    )  # fmt: skip
    reports: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as save_dir:
        run_training(
            hp, data, args.model, reports.append, torch.device("cpu"),
            save_dir=str(Path(save_dir) / "model"), started_at=time.time(),
        )  # fmt: skip
    last = reports[-1]
    return {key: last[key] for key in COLUMNS}


def pareto(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Variants no other beats on both deployed accuracy (higher) and batch-1 latency (lower)."""
    acc, lat = "compressed_eval_accuracy", "compressed_latency_b1_ms"

    def beaten(name: str) -> bool:
        a = rows[name]
        return any(
            b[acc] >= a[acc] and b[lat] <= a[lat] and (b[acc], b[lat]) != (a[acc], a[lat])
            for other, b in rows.items()
            if other != name
        )

    return [name for name in rows if not beaten(name)]


def plot(rows: dict[str, dict[str, Any]], front: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, row in rows.items():
        x, y = row["compressed_latency_b1_ms"], row["compressed_eval_accuracy"]
        ax.scatter(x, y, s=60, color="tab:red" if name in front else "tab:gray", zorder=3)
        size = row["compressed_model_bytes"] / 2**20
        ax.annotate(f"{name}\n{size:.0f} MiB", (x, y), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)  # fmt: skip
    points = sorted((rows[n]["compressed_latency_b1_ms"], rows[n]["compressed_eval_accuracy"])
                    for n in front)  # fmt: skip
    ax.step([p[0] for p in points], [p[1] for p in points], where="post", color="tab:red",
            linewidth=1, label="Pareto front (accuracy vs latency)")  # fmt: skip
    ax.margins(x=0.12, y=0.15)
    ax.set_xlabel("inference latency, batch 1, CPU (ms, median)")
    ax.set_ylabel("accuracy as deployed (SST-2 dev)")
    ax.set_title("MiniLM-L6 on SST-2: full vs LoRA vs compressed")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| variant | accuracy (deployed) | weights MiB | latency b1 ms | latency b32 ms "
        "| device-s | trainable params | checkpoint MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['compressed_eval_accuracy']:.3f} "
            f"| {r['compressed_model_bytes'] / 2**20:.1f} | {r['compressed_latency_b1_ms']:.1f} "
            f"| {r['compressed_latency_b32_ms']:.1f} | {r['device_seconds']:.0f} "
            f"| {int(r['trainable_parameter_count']):,} | {r['checkpoint_bytes'] / 2**20:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data, _ = load_data(args)  # the same SST-2 (or synthetic) subset as train_throughput.py
    rows: dict[str, dict[str, Any]] = {}
    for name, (method, compression, lr) in VARIANTS.items():
        started = time.perf_counter()
        rows[name] = run_variant(args, data, method, compression, lr)
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    front = pareto(rows)
    full = rows["full"]
    ratios = {
        name: {
            "accuracy_delta": r["compressed_eval_accuracy"] - full["compressed_eval_accuracy"],
            "size": r["compressed_model_bytes"] / full["compressed_model_bytes"],
            "latency_b1": r["compressed_latency_b1_ms"] / full["compressed_latency_b1_ms"],
            "latency_b32": r["compressed_latency_b32_ms"] / full["compressed_latency_b32_ms"],
            "device_seconds": r["device_seconds"] / full["device_seconds"],
            "trainable_parameters": r["trainable_parameter_count"]
            / full["trainable_parameter_count"],
        }
        for name, r in rows.items()
    }
    suffix = "_quick" if args.quick else ""
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report = {
        "benchmark": "efficiency", "quick": args.quick, "settings": settings,
        "torch": torch.__version__, "train_examples": len(data.train_ids),
        "eval_examples": len(data.eval_ids), "variants": rows, "relative_to_full": ratios,
        "pareto_accuracy_latency": front,
    }  # fmt: skip
    (args.out / f"efficiency{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(rows, front, args.out / f"efficiency{suffix}.png")
    print(table(rows))
    print("Pareto front (accuracy vs batch-1 latency):", ", ".join(front))
    for name, ratio in ratios.items():
        print(f"{name} / full: " + ", ".join(f"{k} {v:.3f}" for k, v in ratio.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
