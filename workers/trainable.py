"""The Tune trainable: one trial = one fine-tuning run, DDP over a kept worker group when asked."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune import PlacementGroupFactory

from search_spaces.converters import trial_hyperparameters
from search_spaces.pausing import checkpoints_kept
from search_spaces.registry import SIMULATED_MODELS
from search_spaces.replay import REPLAY_MODEL
from search_spaces.spec import StudySpec
from search_spaces.tunables import NODE_KEYS, RESUME_FROM_KEY, TRIAL_NUMBER_KEY
from workers.checkpoints import CHECKPOINT_DIR_KEY, CheckpointPlan
from workers.faults import maybe_fail, maybe_fail_after_epoch
from workers.replay import run_replay
from workers.study_data import study_data
from workers.toy import run_toy


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares; the tokenised data travels by object reference."""

    spec: StudySpec
    # The tokenised data of each of ``spec.models()``, in that order (one ref per model; a
    # trial narrows it to a one-element tuple of its model's), unresolved until a worker needs it.
    data_refs: tuple[ray.ObjectRef, ...]
    storage_path: str
    # <results_dir>/artifacts/<study_id>: each fine-tuning trial saves its final model under
    # trials/<optuna trial number>/ (None: save nothing, e.g. the toy objective).
    artifacts_dir: str | None = None


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Tune function trainable: fine-tune with the sampled ``config`` and report every epoch."""
    started_at = time.time()  # the trial's start, for its measured cost (workers/cost.py)
    hp = trial_hyperparameters(context.spec, config)
    trial = tune.get_context()
    # Attempts are counted per Tune trial id: a trial's directory differs between a fresh and
    # a reused actor process.
    attempts_dir = Path(context.storage_path) / "attempts" / trial.get_trial_id()
    number = config.get(TRIAL_NUMBER_KEY)
    maybe_fail(number, str(attempts_dir))
    report = with_location(_reporter(number, str(attempts_dir)))
    if context.spec.task.model == "toy":
        run_toy(hp, report=report, started_at=started_at)
        return
    if context.spec.task.model == REPLAY_MODEL:
        table = str(context.spec.task.dataset.name)
        run_replay(table, hp, report=report, started_at=started_at)
        return
    # This trial's model (sampled when the search space has "model") and its tokenised data.
    ref = context.data_refs[context.spec.models().index(hp["model"])]
    context = replace(context, data_refs=(ref,))
    resources = context.spec.resources_per_trial
    if resources.num_workers == 1:
        from workers.train_loop import run_training

        data = study_data(context.data_refs[0])
        run_training(
            hp,
            data,
            hp["model"],
            report=report,
            save_dir=_save_dir(config, context),
            started_at=started_at,
            auto_batch_size=context.spec.task.auto_batch_size,
            checkpoints=checkpoint_plan(context.spec, config.get(RESUME_FROM_KEY)),
        )
        return
    if resources.ddp == "ray_train":
        _fit_with_ray_train(hp, context, _save_dir(config, context), started_at)
        return
    resume_from = config.get(RESUME_FROM_KEY)
    _fit_on_kept_group(hp, context, _save_dir(config, context), started_at, report, resume_from)


def _reporter(number: int | None, attempts_dir: str) -> Callable[[dict[str, Any]], None]:
    """``tune.report`` that hands a report's checkpoint (``CHECKPOINT_DIR_KEY``) to Tune, which
    copies it into the study's storage, and then removes the temporary directory; and fails
    the trial after an epoch when test-only failure injection says so."""

    def report(metrics: dict[str, Any]) -> None:
        directory = metrics.pop(CHECKPOINT_DIR_KEY, None)
        if "resumed_from_epoch" in metrics and isinstance(metrics.get("epoch"), int | float):
            # A re-run resumed from an earlier attempt's checkpoint counts its Tune iterations
            # from 1; its reports keep the trial's epochs (schedulers and Optuna steps).
            metrics["training_iteration"] = int(metrics["epoch"])
        try:
            if directory is None:
                tune.report(metrics)
            else:
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
        finally:
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
        if isinstance(metrics.get("epoch"), int | float):
            maybe_fail_after_epoch(number, int(metrics["epoch"]), attempts_dir)

    return report


def checkpoint_plan(spec: StudySpec, resume_from: str | None = None) -> CheckpointPlan | None:
    """This trial's checkpoint plan: the spec's ``checkpoint`` setting and the checkpoint Tune
    restored it with (a retried trial's last), else ``resume_from`` (the last checkpoint of the
    trial of an earlier attempt this one re-runs); None when checkpoints are off."""
    setting = spec.checkpoint
    if not setting.enabled:
        return None
    latest = tune.get_checkpoint()
    latest_dir: str | None = resume_from if resume_from and Path(resume_from).is_dir() else None
    if latest is not None:
        # A local storage path is read in place (so older kept checkpoints beside it are
        # reachable); a remote one (s3://) is downloaded first.
        local = Path(latest.path)
        latest_dir = str(local) if local.is_dir() else latest.to_directory()
    return CheckpointPlan(
        setting.every_epochs,
        checkpoints_kept(spec),
        setting.max_bytes,
        latest_dir,
        _trial_storage_dir(),
    )


def _trial_storage_dir() -> str | None:
    """The trial's directory in the study's storage when that is a local directory (other
    trials' checkpoints are counted beside it), else None."""
    try:
        from ray.train._internal.session import get_storage

        path = Path(get_storage().trial_fs_path)
    except Exception:  # an internal API: without it only this trial's bytes are counted
        return None
    return str(path) if path.parent.is_dir() else None


def _save_dir(config: dict[str, Any], context: TrialContext) -> str | None:
    """Where this trial saves its final model: ``<artifacts>/trials/<optuna number>``."""
    number = config.get(TRIAL_NUMBER_KEY)
    if context.artifacts_dir is None or number is None:
        return None
    from workers.artifacts import trial_model_dir

    return str(trial_model_dir(context.artifacts_dir, int(number)))


def _fit_on_kept_group(
    hp: dict[str, Any],
    context: TrialContext,
    save_dir: str | None,
    started_at: float,
    report: Callable[[dict[str, Any]], None],
    resume_from: str | None,
) -> None:
    """Run the trial on this trial process's kept DDP group (``workers.rank_group``), as rank 0."""
    from workers.rank_group import group_for, run_on_group

    resources = context.spec.resources_per_trial
    threads = max(1, int(resources.cpus_per_worker))
    # The group first: its other ranks start while this process imports torch.
    group = group_for(
        resources.num_workers, resources.cpus_per_worker, resources.gpus_per_worker, threads
    )
    from workers.train_loop import default_device, run_training

    plan = checkpoint_plan(context.spec, resume_from)
    options = {
        "hp": hp,
        "model": hp["model"],
        "data_refs": context.data_refs,
        "started_at": started_at,
        "auto_batch_size": context.spec.task.auto_batch_size,
        "checkpoints": plan,  # every rank restores; rank 0 writes
    }
    # How the trial's workers started: a fresh group (its start-up in seconds) or a kept one.
    run_keys = {
        "ddp_group_trials": float(group.trials + 1),
        "ddp_group_start_s": group.started_s,
        "ddp_group_nodes": float(group.nodes),
    }
    data = study_data(context.data_refs[0])

    def train_rank_zero(send: Callable[[dict[str, Any]], None]) -> None:
        run_training(
            hp,
            data,
            hp["model"],
            report=lambda metrics: send({**metrics, **run_keys}),
            device=default_device(),
            save_dir=save_dir,
            started_at=started_at,
            auto_batch_size=context.spec.task.auto_batch_size,
            checkpoints=plan,
        )

    run_on_group(group, options, train_rank_zero, report)


def _fit_with_ray_train(
    hp: dict[str, Any], context: TrialContext, save_dir: str | None, started_at: float
) -> None:
    """Run the trial as a Ray Train ``TorchTrainer`` (fresh workers for this trial only)."""
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from workers.overhead import apply_train_env_defaults

    apply_train_env_defaults()  # before the trainer: Ray Train reads them when it starts
    resources = context.spec.resources_per_trial
    trainer = TorchTrainer(
        _ray_train_worker,
        train_loop_config={
            "hp": hp,
            "model": hp["model"],
            "data_refs": context.data_refs,
            "threads": max(1, int(resources.cpus_per_worker)),
            "save_dir": save_dir,
            "started_at": started_at,
            "auto_batch_size": context.spec.task.auto_batch_size,
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=resources.num_workers,
            use_gpu=resources.gpus_per_worker > 0,
            resources_per_worker={
                "CPU": resources.cpus_per_worker,
                **({"GPU": resources.gpus_per_worker} if resources.gpus_per_worker else {}),
            },
        ),
        run_config=ray.train.RunConfig(
            name=f"{tune.get_context().get_trial_name()}-ddp",
            storage_path=context.storage_path,
            callbacks=[TuneReportCallback()],  # type: ignore[list-item]
        ),
    )
    trainer.fit()


def _ray_train_worker(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker; DDP is already initialised (gloo on CPU, nccl on GPU)."""
    import torch
    from ray.train.torch import get_device

    from workers.train_loop import run_training

    torch.set_num_threads(config["threads"])
    data = ray.get(config["data_refs"][0])
    run_training(
        config["hp"],
        data,
        config["model"],
        report=with_location(ray.train.report),
        device=get_device(),
        save_dir=config.get("save_dir"),
        started_at=config.get("started_at"),
        auto_batch_size=config.get("auto_batch_size", True),
    )


def node_location() -> dict[str, str]:
    """Where this process runs (the keys of ``NODE_KEYS``): its Ray node id, the node's IP and
    the host name."""
    location = {
        "worker_node_id": ray.get_runtime_context().get_node_id(),
        "worker_node_ip": ray.util.get_node_ip_address(),
        "worker_hostname": socket.gethostname(),
    }
    assert tuple(location) == NODE_KEYS
    return location


def with_location(report: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """``report`` that adds :func:`node_location` to every result, so the study driver stores
    where each trial ran with its metrics (Tune's own ``node_ip``/``hostname`` name the trial's
    actor, not a DDP trial's workers; on one host they do not tell nodes apart)."""
    location = node_location()
    return lambda metrics: report({**metrics, **location})


def trial_resources(spec: StudySpec) -> dict[str, float] | PlacementGroupFactory:
    """What a Tune trial reserves: one worker's CPUs/GPUs, or one bundle per DDP rank.

    A kept-group DDP trial's process is rank 0 (bundle 0); ranks 1..N-1 run in the other
    bundles, packed onto as few nodes as fit them. A Ray Train trial reserves nothing itself:
    its TorchTrainer's workers reserve the CPUs/GPUs (the trial holds a little memory, as Tune
    refuses an empty request).
    """
    resources = spec.resources_per_trial
    worker = {"CPU": resources.cpus_per_worker, "GPU": resources.gpus_per_worker}
    distributed = resources.num_workers > 1 and spec.task.model not in SIMULATED_MODELS
    if distributed and resources.ddp == "ray_train":
        return {"CPU": 0, "memory": 128 * 1024**2}
    if distributed:
        bundle = {k: v for k, v in worker.items() if v > 0} or {"CPU": 0.01}
        return PlacementGroupFactory([dict(bundle)] * resources.num_workers, strategy="PACK")
    return worker
