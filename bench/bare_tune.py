"""The baseline of ``dispatch_overhead.py``: the same trials in a bare Ray Tune script.

No service, no Ray job, no callbacks: ``ray.init`` of a fresh local Ray, a ``Tuner`` with Ray's
``OptunaSearch`` (Optuna's ``RandomSampler``) and the trainable. ``--kind sleep`` runs trials
that sleep 1 s and report once; ``--kind ddp`` runs each trial as a 2-worker ``TorchTrainer``
of this project's training loop (tiny BERT, synthetic data, tokenised once, passed by
reference). Writes its timings as JSON to ``--json-out``.

    python bench/bare_tune.py --kind sleep --trials 10 --json-out /tmp/bare.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STARTED = time.time()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def sleep_trial(config: dict[str, Any], seconds: float) -> None:
    """Sleep for ``seconds`` and report one result."""
    from ray import tune

    time.sleep(seconds)
    tune.report({"eval_accuracy": 1.0 / (1.0 + abs(config["learning_rate"] - 1e-3))})


def ddp_trial(config: dict[str, Any], setup: dict[str, Any]) -> None:
    """One trial: a TorchTrainer of ``num_workers`` workers running ``ddp_worker``."""
    import ray.train
    from ray import tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trainer = TorchTrainer(
        ddp_worker,
        train_loop_config={**setup, "config": config},
        scaling_config=ray.train.ScalingConfig(
            num_workers=setup["num_workers"], resources_per_worker={"CPU": setup["cpus"]}
        ),
        run_config=ray.train.RunConfig(
            name=f"{tune.get_context().get_trial_name()}-ddp",
            storage_path=setup["storage_path"],
            callbacks=[TuneReportCallback()],  # type: ignore[list-item]
        ),
    )
    trainer.fit()


def ddp_worker(setup: dict[str, Any]) -> None:
    """A Ray Train worker: the project's training loop; reports when it started and how long
    the loop (model build, training, evaluation) took."""
    began = time.time()
    import ray
    import torch

    from search_spaces.converters import trial_hyperparameters
    from search_spaces.spec import validate_spec
    from workers.train_loop import run_training

    torch.set_num_threads(int(setup["cpus"]))
    hp = trial_hyperparameters(validate_spec(setup["spec"]), setup["config"])
    data = ray.get(setup["data_refs"][0])
    loop_started = time.time()

    def report(metrics: dict[str, float]) -> None:
        extra = {"worker_started_at": began, "loop_s": time.time() - loop_started}
        ray.train.report({**metrics, **extra})

    run_training(hp, data, setup["spec"]["task"]["model"], report=report)


def tokenised(spec: dict[str, Any]) -> Any:
    """The spec's data, tokenised once (as the study driver does)."""
    from search_spaces.spec import validate_spec
    from workers.data import load_text_data, tokenize
    from workers.models import build_tokenizer

    task = validate_spec(spec).task
    text = load_text_data(task.dataset, task.max_train_samples, task.max_eval_samples, seed=0)
    return tokenize(text, build_tokenizer(task.model), task.max_seq_length)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the Tuner; returns the timings."""
    import optuna
    import ray
    from optuna.distributions import FloatDistribution
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    imported = time.time()
    root = Path(tempfile.mkdtemp(prefix="hpo-bare-", dir="/tmp"))
    ray.init(
        address="local",
        num_cpus=args.cpus_total,
        object_store_memory=512 * 1024**2,
        _temp_dir=str(root / "ray"),
    )
    ray_ready = time.time()
    storage = None
    if args.storage == "sqlite":
        storage = optuna.storages.RDBStorage(f"sqlite:///{root}/optuna.db")
    searcher = OptunaSearch(
        space={
            "learning_rate": FloatDistribution(1e-5, 1e-1, log=True),
            "weight_decay": FloatDistribution(0.0, 0.1),
        },
        metric="eval_accuracy",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=args.seed),
        storage=storage,
        study_name="bare",
    )
    if args.kind == "sleep":
        trainable = tune.with_resources(
            tune.with_parameters(sleep_trial, seconds=args.seconds), {"CPU": args.cpus}
        )
    else:
        spec = json.loads(args.spec)
        setup = {
            "spec": spec,
            "data_refs": (ray.put(tokenised(spec)),),  # a tuple: resolved by the workers only
            "num_workers": args.num_workers,
            "cpus": args.cpus,
            "storage_path": str(root / "results"),
        }
        # The trainers' workers hold the CPUs; the trial itself holds none (as in the service).
        trainable = tune.with_resources(
            tune.with_parameters(ddp_trial, setup=setup), {"CPU": 0, "memory": 128 * 1024**2}
        )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, num_samples=args.trials, max_concurrent_trials=1
        ),
        run_config=tune.RunConfig(storage_path=str(root / "results"), verbose=1),
    )
    fit_started = time.time()
    grid = tuner.fit()
    fit_ended = time.time()
    study = searcher._ot_study
    assert study is not None
    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "start": t.datetime_start.timestamp() if t.datetime_start else None,
            "complete": t.datetime_complete.timestamp() if t.datetime_complete else None,
        }
        for t in study.get_trials(deepcopy=False)
    ]
    metrics = [grid[i].metrics or {} for i in range(len(grid))]
    ray.shutdown()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "process_started_at": STARTED,
        "imported_at": imported,
        "ray_ready_at": ray_ready,
        "fit_started_at": fit_started,
        "fit_ended_at": fit_ended,
        "errors": sum(1 for i in range(len(grid)) if grid[i].error is not None),
        "trials": trials,
        "results": [
            {k: m.get(k) for k in ("worker_started_at", "loop_s", "eval_accuracy")} for m in metrics
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("sleep", "ddp"), default="sleep")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=1.0, help="sleep of a sleep trial")
    parser.add_argument("--cpus", type=float, default=1.0, help="CPUs per trial (per worker)")
    parser.add_argument("--cpus-total", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--num-workers", type=int, default=2, help="DDP workers per trial")
    parser.add_argument("--spec", default="{}", help="study spec (JSON) of the DDP task")
    parser.add_argument("--storage", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--json-out", type=Path, required=True)
    parser.add_argument("--keep", action="store_true", help="keep Ray's logs and the results")
    args = parser.parse_args(argv)
    args.json_out.write_text(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
