"""Whether one trial of a study fits on a Ray cluster: what it reserves against what the
cluster has (CPUs and GPUs; trials reserve no memory, so memory is not compared)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from search_spaces.registry import SIMULATED_MODELS

if TYPE_CHECKING:
    from search_spaces.spec import StudySpec


@dataclass(frozen=True)
class TrialDemand:
    """What one trial reserves: ``workers`` processes of ``cpus`` and ``gpus`` each."""

    workers: int
    cpus: float
    gpus: float

    @classmethod
    def of(cls, spec: StudySpec) -> TrialDemand:
        """A study's trial: ``num_workers`` DDP workers, or one process for the toy objective
        (it has no model to distribute)."""
        resources = spec.resources_per_trial
        workers = 1 if spec.task.model in SIMULATED_MODELS else resources.num_workers
        return cls(workers, resources.cpus_per_worker, resources.gpus_per_worker)

    def describe(self) -> str:
        """E.g. "2 workers x (4 CPUs, 1 GPUs)"."""
        unit = f"{self.cpus:g} CPUs" + (f", {self.gpus:g} GPUs" if self.gpus else "")
        return f"{self.workers} worker{'s' * (self.workers != 1)} x ({unit})"


@dataclass(frozen=True)
class ClusterCapacity:
    """A cluster's alive nodes: their CPUs and GPUs in all, and on its largest node."""

    nodes: int
    cpus: float
    gpus: float
    node_cpus: float
    node_gpus: float

    @classmethod
    def of_nodes(cls, nodes: list[dict[str, float]]) -> ClusterCapacity:
        """From each node's total resources (Ray's ``resources_total``)."""
        cpus = [node.get("CPU", 0.0) for node in nodes]
        gpus = [node.get("GPU", 0.0) for node in nodes]
        return cls(len(nodes), sum(cpus), sum(gpus), max(cpus, default=0), max(gpus, default=0))


def placement_problem(demand: TrialDemand, capacity: ClusterCapacity) -> str | None:
    """Why no trial of this demand can ever run on this (fixed) cluster, or None."""
    has = (
        f"the cluster has {capacity.cpus:g} CPUs and {capacity.gpus:g} GPUs on "
        f"{capacity.nodes} node{'s' * (capacity.nodes != 1)}, at most {capacity.node_cpus:g} "
        f"CPUs and {capacity.node_gpus:g} GPUs on one"
    )
    needs = f"one trial needs {demand.describe()}"
    if demand.cpus > capacity.node_cpus or demand.gpus > capacity.node_gpus:
        return f"{needs}: a worker fits on no node; {has}"
    if demand.workers * demand.cpus > capacity.cpus or demand.workers * demand.gpus > capacity.gpus:
        return f"{needs}: more than the whole cluster; {has}"
    return None
