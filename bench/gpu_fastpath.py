"""The GPU fast path, measured step by step: BERT-base training throughput and MFU on one card.

Needs only torch and transformers (the GPU machine's own Python runs it). Batches hold random
token ids whose lengths follow SST-2's real WordPiece lengths (``bench/sst2_token_lengths.json``,
mean 13.3 tokens), so padding costs what it costs on SST-2. Cases, each timed for ``--seconds``:

- ``padded``: random batches padded to ``max_seq_length`` (128), as a plain Trainer setup does;
- ``loop``: the training loop's batching (length-grouped, padded to the batch's longest), a
  host synchronisation per step (``isfinite(norm)``), pageable host memory;
- ``fast``: length-grouped, pinned host memory copied with ``non_blocking``, no host
  synchronisation inside the step; ``fast+compile`` adds ``torch.compile`` (lengths rounded up
  to a multiple of 16 so few shapes compile);
- ``shared-K``: K processes running ``fast`` side by side on one card (each with 1/K of its
  memory, as ``gpus_per_worker`` 1/K trials), the aggregate is their sum;
- ``oom``: the automatic micro-batch on a real CUDA out-of-memory (a memory fraction caps the
  card), and a model that cannot fit at all failing at once.

All cases: bf16 autocast with fp32 master weights, SDPA attention, fused AdamW. MFU is
6 x parameters x real (unpadded) tokens/s / the card's dense bf16 peak, as ``gpu_check.py``.
Writes ``gpu_fastpath.json`` (after every case, so a run stopped early keeps what it measured).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
H200_PEAK_BF16_FLOPS = 989e12


def sst2_lengths(n: int, seed: int, max_len: int) -> list[int]:
    """``n`` token lengths drawn from SST-2's real length histogram."""
    histogram = json.loads((HERE / "sst2_token_lengths.json").read_text())["histogram"]
    values = [min(int(k), max_len) for k in histogram]
    return random.Random(seed).choices(values, weights=list(histogram.values()), k=n)


def make_batches(
    lengths: list[int], batch_size: int, grouped: bool, pad_to: int | None, multiple: int, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Host tensors (ids, mask, labels) of every batch: grouped by length (chunks of 50
    batches sorted, as ``workers.train_loop``) or in random order; padded to ``pad_to`` or to
    the batch's longest (rounded up to ``multiple``)."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if grouped:
        chunk = batch_size * 50
        order = [
            i
            for s in range(0, len(order), chunk)
            for i in sorted(order[s : s + chunk], key=lambda i: lengths[i])
        ]
    cut = [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
    rng.shuffle(cut)
    out = []
    for rows in cut:
        longest = max(lengths[i] for i in rows)
        width = pad_to or -(-longest // multiple) * multiple
        ids = torch.randint(1000, 30000, (len(rows), width))
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for r, i in enumerate(rows):
            mask[r, : lengths[i]] = 1
        out.append((ids * mask, mask, torch.randint(0, 2, (len(rows),))))
    return out


def bert_base(device: torch.device, tiny: bool) -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    size = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2} if tiny else {}
    config = BertConfig(num_labels=2, intermediate_size=256 if tiny else 3072, **size)
    config._attn_implementation = "sdpa"
    return BertForSequenceClassification(config).to(device)


def energy_counter(device: torch.device) -> Any:
    """NVML's total-energy counter of the card (millijoules), or None."""
    if device.type != "cuda":
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        return lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception:  # no NVML: energy stays unmeasured
        return None


def train_case(args: argparse.Namespace, case: str, batch_size: int, seconds: float) -> dict:
    """Train for ``seconds`` (after warm-up); real tokens/s, samples/s, MFU, memory, energy."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = bert_base(device, args.tiny)
    params = sum(p.numel() for p in model.parameters())
    fast = case.startswith("fast")
    step_model: Any = model
    if case == "fast+compile":
        step_model = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=device.type == "cuda")
    lengths = sst2_lengths(batch_size * 200, seed=1, max_len=args.max_seq_length)
    multiple = 16 if case == "fast+compile" else 1
    pad_to = args.max_seq_length if case == "padded" else None
    batches = make_batches(lengths, batch_size, case != "padded", pad_to, multiple, seed=2)
    if fast and device.type == "cuda":
        batches = [tuple(t.pin_memory() for t in b) for b in batches]  # type: ignore[misc]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    def step(batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        ids, mask, labels = (t.to(device, non_blocking=fast) for t in batch)
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            logits = step_model(input_ids=ids, attention_mask=mask).logits
        loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if not fast and not torch.isfinite(norm):  # the per-step host sync of the loop
            raise RuntimeError("diverged")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return mask.sum()

    # Warm-up: one step per distinct width (kernel selection and compilation happen per shape).
    for batch in {b[0].shape[1]: b for b in batches}.values():
        step(batch)
    sync(device)
    time.sleep(max(0.0, args.start_at - time.time()))  # side-by-side processes start together
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    energy = energy_counter(device)
    joules0 = energy() if energy else None
    tokens = torch.zeros((), dtype=torch.long, device=device)
    samples = steps = padded = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(10):  # check the clock every 10 steps (no per-step sync)
            batch = batches[steps % len(batches)]
            tokens += step(batch)
            samples += len(batch[2])
            padded += batch[1].numel()
            steps += 1
    sync(device)
    wall = time.perf_counter() - started
    real = int(tokens.item())
    result = {
        "case": case, "batch_size": batch_size, "steps": steps, "wall_s": wall,
        "samples_per_s": samples / wall, "real_tokens_per_s": real / wall,
        "padding_fraction": 1 - real / padded, "params": params,
        "mfu": 6 * params * real / wall / args.peak_flops,
    }  # fmt: skip
    if device.type == "cuda":
        result["peak_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    if energy and joules0 is not None:
        joules = (energy() - joules0) / 1000
        result["energy_joules"] = joules
        result["joules_per_million_tokens"] = joules / real * 1e6
    return result


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def shared_case(args: argparse.Namespace, k: int, batch_size: int) -> dict:
    """K ``fast`` processes side by side, each capped to 1/K of the card's memory."""
    start_at = time.time() + 25  # after every process has built its model and warmed up
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                str(k),
                "--batch-sizes",
                str(batch_size),
                "--seconds",
                str(args.seconds),
                "--max-seq-length",
                str(args.max_seq_length),
                "--start-at",
                str(start_at),
            ]
            + (["--tiny"] if args.tiny else []),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(k)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=args.seconds * 4 + 120)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if lines:
            results.append(json.loads(lines[-1]))
    total = sum(r["real_tokens_per_s"] for r in results)
    params = results[0]["params"] if results else 0
    return {
        "case": f"shared-{k}", "batch_size": batch_size, "processes_ok": len(results),
        "per_process": results, "aggregate_real_tokens_per_s": total,
        "aggregate_mfu": 6 * params * total / args.peak_flops,
    }  # fmt: skip


def oom_case(args: argparse.Namespace) -> dict:
    """The automatic micro-batch on a real CUDA OOM, and a model that cannot fit at all."""
    device = torch.device("cuda", torch.cuda.current_device())
    result: dict[str, Any] = {"case": "oom"}
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(4 * 2**30 / total, device)  # a 4 GiB share
    model = bert_base(device, False)
    ids = torch.randint(1000, 30000, (1, args.max_seq_length), device=device)

    def try_batch(size: int) -> None:
        batch = ids.expand(size, -1)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=batch).logits
        logits.float().sum().backward()
        model.zero_grad(set_to_none=True)

    started = time.perf_counter()
    try:
        sys.path.insert(0, str(HERE.parent))
        from workers.auto_batch import fit_micro_batch

        result["auto_batch"] = "workers.auto_batch.fit_micro_batch"
        size = fit_micro_batch(try_batch, 8192, False, device)
    except ImportError:  # no project dependencies here: the same halving, inline
        result["auto_batch"] = "inline halving (project not importable)"
        size = 8192
        while True:
            try:
                try_batch(size)
                break
            except torch.OutOfMemoryError:
                size //= 2
                torch.cuda.empty_cache()
    result.update(fitted_micro_batch=size, fit_s=time.perf_counter() - started)
    model.cpu()  # frees the card for the no-room case
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(64 * 2**20 / total, device)  # 64 MiB: no room
    started = time.perf_counter()
    try:
        bert_base(device, False)
        result["no_room"] = "model fitted (unexpected)"
    except torch.OutOfMemoryError as error:
        result["no_room"] = f"OutOfMemoryError after {time.perf_counter() - started:.2f} s"
        result["no_room_message"] = str(error).splitlines()[0][:200]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--shared", type=int, nargs="*", default=[2, 4])
    parser.add_argument("--cases", nargs="+", default=["fast", "shared", "loop", "oom", "padded"])
    parser.add_argument("--compile", action="store_true", help="also fast+compile (slow start)")
    parser.add_argument("--budget-s", type=float, default=150.0, help="skip cases past this")
    parser.add_argument("--tiny", action="store_true", help="a tiny BERT (CPU rehearsal)")
    parser.add_argument("--peak-flops", type=float, default=H200_PEAK_BF16_FLOPS)
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(0.95 / args.worker)
        print(json.dumps(train_case(args, "fast", args.batch_sizes[0], args.seconds)), flush=True)
        return
    started = time.monotonic()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    report: dict[str, Any] = {"benchmark": "gpu_fastpath", "gpu": gpu, "torch": torch.__version__}
    report.update(settings=vars(args) | {"out": str(args.out)}, results=[], skipped=[])
    plan: list[tuple[str, int]] = []
    for case in args.cases + (["fast+compile"] if args.compile else []):
        sizes = args.shared if case == "shared" else [0] if case == "oom" else args.batch_sizes
        plan += [(case, size) for size in sizes]
    args.out.mkdir(parents=True, exist_ok=True)
    for case, size in plan:
        if time.monotonic() - started > args.budget_s:
            report["skipped"].append(f"{case} {size}: over the time budget")
            continue
        try:
            if case == "shared":
                result = shared_case(args, size, 256)
            elif case == "oom":
                result = oom_case(args) if gpu != "cpu" else {"case": "oom", "skipped": "no GPU"}
            else:
                result = train_case(args, case, size, args.seconds)
        except Exception as error:  # one failed case must not lose the others
            result = {"case": case, "size": size, "error": f"{type(error).__name__}: {error}"}
        if torch.cuda.is_available():  # the next case (or process) gets the whole card
            gc.collect()
            torch.cuda.empty_cache()
        print(json.dumps(result), flush=True)
        report["results"].append(result)
        report["wall_s"] = time.monotonic() - started
        (args.out / "gpu_fastpath.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
