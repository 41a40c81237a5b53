"""Record real learning curves once, for the ``replay`` objective to play back many times.

Fine-tunes every point of a grid (SST-2 with the pretrained MiniLM-L6 by default: learning rate
x batch size x weight decay x warm-up, 48 points, 4 epochs each, a fixed training subset and the
whole dev set) through the real service: one grid study per learning rate, each submitted over
REST to a local server with its own Ray, one trial at a time. Every epoch's eval metrics and its
measured seconds are read back from the study's event log (``/studies/{id}/events``) and written
to a compact table, ``search_spaces/replay/<name>.json.gz``, with how it was made.

Resumable: the study of each learning rate that finished is kept in ``--partial`` and skipped
when the script runs again; the table is written once every point is recorded.

    python bench/record_curves.py                  # about 1 hour on 2 CPU cores
    python bench/record_curves.py --quick --out /tmp/x.json.gz   # the toy objective, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import itertools
import json
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.local_server import start_server, stop_server  # noqa: E402

ASSETS = REPO / "search_spaces" / "replay"
SST2 = REPO.parent / "shared" / "data" / "sst2"
# The grid: a wide learning-rate range (below ~3e-5 four epochs underfit, above ~1e-3 MiniLM
# diverges: the runs early stopping should cut) and the usual choices of the other three.
GRID: dict[str, list[Any]] = {
    "learning_rate": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3],
    "batch_size": [16, 32],
    "weight_decay": [0.0, 0.1],
    "warmup_ratio": [0.0, 0.1],
}
# What each epoch keeps: the eval metrics, the training loss, and the epoch's measured seconds.
KEPT = ("eval_accuracy", "eval_f1", "eval_mcc", "eval_loss", "train_loss")


def task(args: argparse.Namespace) -> dict[str, Any]:
    """The fine-tuning task every grid point runs."""
    if args.quick:
        return {"model": "toy", "epochs": args.epochs}
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
        "max_train_samples": args.train_samples,
        "max_eval_samples": args.eval_samples,
        "epochs": args.epochs,
    }


def chunk_spec(learning_rate: float, args: argparse.Namespace) -> dict[str, Any]:
    """The grid study of one learning rate (every point of the other three parameters)."""
    space: dict[str, Any] = {
        name: {"type": "categorical", "choices": values}
        for name, values in GRID.items()
        if name != "learning_rate"
    }
    space["learning_rate"] = {"type": "categorical", "choices": [learning_rate]}
    if args.quick:
        space["dropout"] = {"type": "categorical", "choices": [0.1]}
    points = len(list(itertools.product(*(GRID[n] for n in GRID if n != "learning_rate"))))
    return {
        "name": f"record-{args.name}-lr{learning_rate:g}",
        "objective": {"metric": "eval_accuracy", "direction": "maximize"},
        "algorithm": "grid",
        "budget": {"n_trials": points, "max_concurrent_trials": 1},
        "resources_per_trial": {"num_workers": 1, "cpus_per_worker": args.cpus},
        "max_failures": 1,
        "task": task(args),
        "search_space": space,
    }


def record_chunk(api: httpx.Client, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Run one grid study and return each trial's params and per-epoch records."""
    created = api.post("/studies", json=spec)
    created.raise_for_status()
    study_id = created.json()["id"]
    results: dict[int, dict[int, dict[str, Any]]] = {}
    params: dict[int, dict[str, Any]] = {}
    status = None
    with api.stream("GET", f"/studies/{study_id}/events", timeout=None) as stream:
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
                if kind == "trial_started":
                    params[data["number"]] = data["params"]
                    results[data["number"]] = {}  # a retried trial starts its curve again
                elif kind == "trial_result" and data.get("epoch"):
                    results.setdefault(data["number"], {})[int(data["epoch"])] = data["metrics"]
                elif kind == "status":
                    status = data["status"]
    if status != "SUCCEEDED":
        raise RuntimeError(f"study {spec['name']} ended {status}")
    trials = api.get(f"/studies/{study_id}/trials", params={"limit": 1000}).json()["data"]
    complete = {t["number"] for t in trials if t["state"] == "COMPLETE"}
    return [
        {"params": {n: params[number][n] for n in GRID}, "epochs": epoch_records(results[number])}
        for number in sorted(complete)
    ]


def epoch_records(by_epoch: dict[int, dict[str, Any]]) -> list[dict[str, float]]:
    """Each epoch's kept metrics and its own seconds (the difference of the cumulative
    ``device_seconds`` the trial reports)."""
    records, spent = [], 0.0
    for epoch in sorted(by_epoch):
        metrics = by_epoch[epoch]
        # device seconds where the trial measured them (a fine-tune), else its wall time
        total = float(metrics.get("device_seconds") or metrics.get("wall_time_s") or 0.0)
        record = {k: round(float(metrics[k]), 6) for k in KEPT if k in metrics}
        record["seconds"] = round(total - spent, 3)
        spent = total
        records.append(record)
    return records


@contextlib.contextmanager
def service(url: str | None) -> Iterator[str]:
    """The given server, or a fresh local one (SQLite, a local Ray with 2 CPUs)."""
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="hpo-record-") as root:
        server = start_server(Path(root), f"sqlite:///{root}/record.db")
        try:
            yield server.url
        finally:
            stop_server(server)


def table(points: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The shipped table: the grid, how it was made, and every point's curve."""
    spec_task = task(args)
    grid = {**GRID, "learning_rate": sorted({p["params"]["learning_rate"] for p in points})}
    return {
        "name": args.name,
        "format": 1,
        "made_by": "bench/record_curves.py",
        "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "how": {
            "task": spec_task,
            "machine": f"{platform.machine()}, {args.cpus:g} CPUs per trial",
            "seed": 0,
            "note": "one trial per grid point, trained once with seed 0; 'seconds' is each "
            "epoch's measured device seconds (training and evaluation)",
        },
        "objective_metrics": list(KEPT),
        "epochs": args.epochs,
        "grid": grid,
        "points": sorted(points, key=lambda p: [p["params"][n] for n in grid]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="sst2-minilm")
    parser.add_argument("--quick", action="store_true", help="the toy objective, in seconds")
    parser.add_argument("--url", help="an hpo-service to use (default: start a local one)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-samples", type=int, default=400)
    parser.add_argument("--eval-samples", type=int, default=872, help="872: all of SST-2 dev")
    parser.add_argument("--cpus", type=float, default=2.0, help="CPUs per trial")
    parser.add_argument(
        "--learning-rates", type=float, nargs="+", help="record only these rows of the grid"
    )
    parser.add_argument("--partial", type=Path, help="default: bench/results/<name>_partial.json")
    parser.add_argument("--out", type=Path, help="default: search_spaces/replay/<name>.json.gz")
    args = parser.parse_args(argv)
    if args.quick:
        args.cpus = min(args.cpus, 0.5)
    partial = args.partial or REPO / "bench" / "results" / f"{args.name}_partial.json"
    out = args.out or ASSETS / f"{args.name}.json.gz"
    done: dict[str, Any] = json.loads(partial.read_text()) if partial.exists() else {}
    rows = args.learning_rates or GRID["learning_rate"]
    pending = [lr for lr in rows if f"{lr:g}" not in done]
    if pending:
        with service(args.url) as url, httpx.Client(base_url=url, timeout=60) as api:
            for learning_rate in pending:
                started = time.monotonic()
                done[f"{learning_rate:g}"] = record_chunk(api, chunk_spec(learning_rate, args))
                partial.parent.mkdir(parents=True, exist_ok=True)
                partial.write_text(json.dumps(done))
                print(f"lr {learning_rate:g}: {time.monotonic() - started:.0f} s", flush=True)
    points = [point for chunk in done.values() for point in chunk]
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt") as handle:
        json.dump(table(points, args), handle, separators=(",", ":"))
    print(f"wrote {out}: {len(points)} points x {args.epochs} epochs")


if __name__ == "__main__":
    main()
