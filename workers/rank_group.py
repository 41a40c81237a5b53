"""A DDP worker group kept for a whole study: a multi-worker trial pays its process starts once.

Rank 0 is the trial's own process (the Tune function trainable, which Tune reuses between the
trials of a study); ranks 1..N-1 are Ray actors in the trial's placement group (bundle ``i`` for
rank ``i``). ``torch.distributed`` is initialised once per group (gloo on CPU, NCCL on GPU) and
every later trial of the study runs on the same processes, process group and resolved data: a
new trial costs a model build, not N process starts and N torch imports (Ray Train's
``TorchTrainer``, which starts a controller and fresh workers for every ``fit``).

Early stopping stays exact: after every epoch rank 0 hands its report to Tune, which (reporting
synchronously) answers "continue" or stops the trial; rank 0 shares that answer with a one-flag
all-reduce, so every rank leaves the training loop at the same epoch boundary. A failed rank
closes its process group, so the other ranks' next collective fails within a step instead of
waiting for a timeout; the trial then fails with that rank's error and its group is discarded.
"""

from __future__ import annotations

import datetime
import gc
import importlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

logger = logging.getLogger(__name__)

# Collectives wait this long for a peer (a hung rank fails the trial after it).
TIMEOUT_ENV = "HPO_DDP_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600.0


class TrialStopped(Exception):
    """Raised on every rank when Tune stopped the trial at an epoch boundary."""


def agree_to_stop(stop: bool) -> bool:
    """True on every rank if any rank asks to stop (a one-element all-reduce; a barrier)."""
    import torch
    import torch.distributed as dist

    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    flag = torch.tensor([1.0 if stop else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.SUM)
    return bool(flag.item() > 0)


def follower_report(_metrics: dict[str, Any]) -> None:
    """Ranks 1..N-1: their reports are rank 0's (identical); they only learn Tune's answer."""
    if agree_to_stop(False):
        raise TrialStopped


def leader_report(report: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Rank 0: ``report`` to Tune, then tell the other ranks whether Tune stopped the trial.

    Tune stops a function trainable by raising ``SystemExit`` in its report; that is re-raised
    here once every rank knows.
    """

    def send(metrics: dict[str, Any]) -> None:
        try:
            report(metrics)
        except SystemExit:
            agree_to_stop(True)
            raise
        agree_to_stop(False)

    return send


def init_rank(init_method: str, rank: int, world_size: int, backend: str, threads: int) -> None:
    """Join the group's process group (every rank calls this once)."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(max(1, threads))
    timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    dist.init_process_group(
        backend,
        init_method=init_method,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout),
    )


@ray.remote
class RankWorker:
    """One DDP rank other than 0, kept for the study."""

    def __init__(self) -> None:
        import workers.train_loop  # noqa: F401  # torch and transformers, while the others start

    def join(
        self, init_method: str, rank: int, world_size: int, backend: str, threads: int
    ) -> tuple[int, str]:
        """Join the process group; returns this process's id and its Ray node's."""
        init_rank(init_method, rank, world_size, backend, threads)
        return os.getpid(), ray.get_runtime_context().get_node_id()

    def train(self, options: dict[str, Any]) -> str:
        """Run one trial's training loop as this rank: "finished" or "stopped" (by Tune)."""
        from workers.study_data import study_data
        from workers.train_loop import default_device, run_training

        try:
            run_training(
                options["hp"],
                study_data(options["data_refs"][0]),
                options["model"],
                report=follower_report,
                device=default_device(),
                save_dir=None,  # rank 0 saves
                started_at=options["started_at"],
                auto_batch_size=options["auto_batch_size"],
                checkpoints=options.get("checkpoints"),
            )
        except TrialStopped:
            return "stopped"
        except BaseException:
            # This process ends shortly after its error is returned: its closed connections
            # fail the other ranks' next collective at once (destroying the process group does
            # not close them while the last trial's DDP model still holds it).
            threading.Thread(target=_exit_soon, daemon=True).start()
            raise
        finally:
            gc.collect()  # the trial's model and optimizer, before the next trial builds its own
        return "finished"


@dataclass
class RankGroup:
    """Ranks 1..N-1 of a trial process's DDP group, and how many trials it has served."""

    key: tuple[Any, ...]
    workers: list[Any]
    pids: list[int]
    nodes: int  # Ray nodes the ranks (0 included) run on
    trials: int = 0
    started_s: float = 0.0  # how long creating the group took
    broken: bool = field(default=False)

    def close(self) -> None:
        """Kill the remote ranks and leave the process group (after a failure)."""
        import torch.distributed as dist

        self.broken = True
        for worker in self.workers:
            ray.kill(worker, no_restart=True)
        if dist.is_initialized():
            dist.destroy_process_group()


_GROUP: RankGroup | None = None  # this trial process's group, kept between trials


def group_for(world_size: int, cpus: float, gpus: float, threads: int) -> RankGroup:
    """This process's group for ``world_size`` ranks, started on first use (or after a failure).

    Must run in a Tune trial whose placement group has ``world_size`` bundles of ``cpus`` CPUs
    and ``gpus`` GPUs (bundle 0: this process).
    """
    global _GROUP
    from ray.util.placement_group import get_current_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    placement = get_current_placement_group()
    key = (placement.id.hex() if placement else None, world_size, cpus, gpus)
    if _GROUP is not None and _GROUP.key == key and not _GROUP.broken:
        return _GROUP
    if _GROUP is not None and not _GROUP.broken:
        _GROUP.close()
    _GROUP = None
    started = time.monotonic()
    options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus}
    workers = [
        RankWorker.options(  # type: ignore[attr-defined]
            **options,
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=placement, placement_group_bundle_index=rank
            )
            if placement
            else None,
        ).remote()
        for rank in range(1, world_size)
    ]
    import torch

    importlib.import_module("workers.train_loop")  # here too, while the other ranks import it

    backend = "nccl" if gpus > 0 and torch.cuda.is_available() else "gloo"
    init_method = f"tcp://{_reachable_address()}:{_free_port()}"
    joins = [
        worker.join.remote(init_method, rank, world_size, backend, threads)
        for rank, worker in enumerate(workers, start=1)
    ]
    try:
        init_rank(init_method, 0, world_size, backend, threads)
        joined = ray.get(joins)
    except BaseException:
        for worker in workers:
            ray.kill(worker, no_restart=True)
        raise
    pids = [pid for pid, _ in joined]
    nodes = len({ray.get_runtime_context().get_node_id(), *(node for _, node in joined)})
    _GROUP = RankGroup(key, workers, pids, nodes, started_s=time.monotonic() - started)
    logger.info(
        "DDP group of %d ranks (%s) started in %.1f s", world_size, backend, _GROUP.started_s
    )
    return _GROUP


def run_on_group(
    group: RankGroup,
    options: dict[str, Any],
    train_rank_zero: Callable[[Callable[[dict[str, Any]], None]], Any],
    report: Callable[[dict[str, Any]], None],
) -> None:
    """Run one trial: ``options`` on ranks 1..N-1, ``train_rank_zero(report)`` here as rank 0.

    Raises:
        SystemExit: Tune stopped the trial (the group stays usable).
        RuntimeError: A rank failed (the group is closed); chained to that rank's error.
    """
    group.trials += 1
    refs = [worker.train.remote(options) for worker in group.workers]
    try:
        train_rank_zero(leader_report(report))
    except SystemExit:
        ray.get(refs)  # every rank stopped at the same epoch boundary
        raise
    except BaseException as rank_zero_error:
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=10)
        group.close()
        for rank, ref in enumerate(refs, start=1):
            if ref in ready:
                try:
                    ray.get(ref)
                except Exception as exc:  # the failed rank's own error explains the trial's
                    cause = getattr(exc, "cause", None) or exc  # a RayTaskError's original
                    message = f"DDP rank {rank} failed: {type(cause).__name__}: {cause}"
                    raise RuntimeError(message) from rank_zero_error
        raise
    ray.get(refs)


def _exit_soon(delay_s: float = 2.0) -> None:
    time.sleep(delay_s)
    os._exit(1)


def _reachable_address() -> str:
    """This node's address as the other nodes of the cluster reach it."""
    return str(ray.util.get_node_ip_address())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])
