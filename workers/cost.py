"""The measured cost of one trial: time, CPU/GPU seconds, peak memory and energy.

A :class:`CostMeter` lives in every process that trains (each DDP rank, or the one process of
a single-worker or toy trial). At each report it gives a vector of per-process values
(:meth:`CostMeter.sums`) that the training loop sums over the ranks exactly like its other
statistics, and :meth:`CostMeter.metrics` turns the summed vector into the ``COST_KEYS`` of
``search_spaces.tunables``:

- ``wall_time_s``: trial start → this report; ``time_to_first_result_s``: trial start → the
  first report (for a DDP trial: the mean over ranks, so that every rank reports the same).
- ``peak_rss_bytes``: sum over ranks of each process's peak resident memory
  (``getrusage(RUSAGE_SELF).ru_maxrss``; a reused Ray worker process reports its lifetime peak).
- ``peak_accelerator_bytes``: sum over ranks of ``torch.cuda.max_memory_allocated`` (0 on CPU).
- ``device_seconds``: on GPU, ``wall_time_s`` * GPUs; on CPU, the process CPU time (user +
  system, since the meter started) summed over ranks. ``device_kind``: "cpu" or "cuda".
- ``energy_joules``: measured where the hardware tells it — NVML's total-energy counter of each
  rank's GPU (``pynvml``), or, for a single-process trial on CPU, Linux RAPL
  (``/sys/class/powercap/intel-rapl:0/energy_uj``: the whole CPU package, so it includes
  whatever else ran on that socket meanwhile). Otherwise it is estimated as ``device_seconds`` *
  :data:`NOMINAL_WATTS_PER_CPU_CORE` (CPU) or :data:`NOMINAL_WATTS_PER_GPU` (GPU).
  ``energy_estimated`` is 1.0 when any rank's part is estimated, else 0.0.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Nominal draws used when nothing measures energy (documented estimates, not measurements).
NOMINAL_WATTS_PER_CPU_CORE = 10.0  # one busy server core, its share of the package power
NOMINAL_WATTS_PER_GPU = 300.0  # a data-centre GPU under training load

RAPL_ENERGY_FILE = Path("/sys/class/powercap/intel-rapl:0/energy_uj")
RAPL_RANGE_FILE = Path("/sys/class/powercap/intel-rapl:0/max_energy_range_uj")

# Positions in the per-process vector that is summed over ranks.
_RANKS, _WALL, _RSS, _ACCEL, _CPU, _GPUS, _ENERGY, _ESTIMATED = range(8)
SUM_FIELDS = 8


def peak_rss_bytes() -> int:
    """This process's peak resident memory in bytes (``ru_maxrss``: KiB on Linux, bytes on
    macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return float(usage.ru_utime + usage.ru_stime)


class RaplCounter:
    """Package energy from Linux RAPL, in joules since construction (None: not readable)."""

    def __init__(self, energy_file: Path | None = None, range_file: Path | None = None) -> None:
        self._file = energy_file or RAPL_ENERGY_FILE
        self._range = _read_int(range_file or RAPL_RANGE_FILE)
        self._start = _read_int(self._file)

    @property
    def available(self) -> bool:
        return self._start is not None

    def joules(self) -> float | None:
        now = _read_int(self._file)
        if now is None or self._start is None:
            return None
        delta = now - self._start
        if delta < 0 and self._range:  # the counter wrapped around
            delta += self._range
        return max(delta, 0) / 1e6


class NvmlCounter:
    """A GPU's total energy from NVML, in joules since construction (None: not available)."""

    def __init__(self, device_index: int) -> None:
        self._handle: Any = None
        self._start: int | None = None
        try:
            import pynvml  # type: ignore[import-not-found,unused-ignore]

            pynvml.nvmlInit()
            self._nvml = pynvml
            visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
            physical = visible[device_index] if device_index < len(visible) else ""
            if physical.startswith(("GPU-", "MIG-")):
                self._handle = pynvml.nvmlDeviceGetHandleByUUID(physical)
            else:  # torch's index counts the visible devices; NVML's counts them all
                index = int(physical) if physical.isdigit() else device_index
                self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._start = int(pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception:  # not installed, no driver, or a GPU without an energy counter
            self._handle = None

    @property
    def available(self) -> bool:
        return self._start is not None

    def joules(self) -> float | None:
        if self._handle is None or self._start is None:
            return None
        try:
            now = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception:
            return None
        return max(now - self._start, 0) / 1e3  # millijoules


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class CostMeter:
    """Measures one process's share of a trial's cost; see the module docstring.

    Args:
        device_kind: "cpu" or "cuda".
        device_index: The CUDA device of this process (for the memory peak and NVML).
        started_at: The trial's start (``time.time()``), e.g. taken before a DDP trial started
            its workers; default now.
        use_rapl: Whether RAPL may measure this process (not for several ranks sharing a
            package: each would count the whole package).
    """

    def __init__(
        self,
        device_kind: str = "cpu",
        device_index: int | None = None,
        started_at: float | None = None,
        use_rapl: bool = True,
    ) -> None:
        self.device_kind = device_kind
        self._device_index = device_index
        now = time.time()
        # Wall time from a monotonic clock, offset by how long ago the trial started.
        self._start = time.perf_counter() - max(0.0, now - started_at if started_at else 0.0)
        self._cpu_start = cpu_seconds()
        self._first: float | None = None
        counter: NvmlCounter | RaplCounter | None = None
        if device_kind == "cuda":
            import torch

            # This trial's peak, not an earlier trial's in a reused worker process.
            torch.cuda.reset_peak_memory_stats(device_index)
            counter = NvmlCounter(device_index or 0)
        elif use_rapl:
            counter = RaplCounter()
        self._energy = counter if counter is not None and counter.available else None

    def elapsed(self) -> float:
        """Seconds since the trial started."""
        return time.perf_counter() - self._start

    def sums(self) -> list[float]:
        """This process's summable values: 1 (a rank), seconds since the trial started, peak
        RSS, peak accelerator bytes, CPU seconds, GPUs, energy (J) and whether the energy is
        estimated (1.0/0.0)."""
        values = [0.0] * SUM_FIELDS
        values[_RANKS] = 1.0
        values[_WALL] = self.elapsed()
        values[_RSS] = float(peak_rss_bytes())
        values[_CPU] = cpu_seconds() - self._cpu_start
        if self.device_kind == "cuda":
            import torch

            values[_ACCEL] = float(torch.cuda.max_memory_allocated(self._device_index))
            values[_GPUS] = 1.0
        measured = self._energy.joules() if self._energy is not None else None
        if measured is None:
            values[_ENERGY] = estimate_joules(self.device_kind, values[_WALL], values[_CPU])
            values[_ESTIMATED] = 1.0
        else:
            values[_ENERGY] = measured
        return values

    def metrics(self, summed: Sequence[float]) -> dict[str, Any]:
        """The cost keys of a report from the (rank-summed) :meth:`sums` vector."""
        wall = summed[_WALL] / max(summed[_RANKS], 1.0)
        if self._first is None:
            self._first = wall
        gpus = summed[_GPUS]
        device_seconds = wall * gpus if self.device_kind == "cuda" else summed[_CPU]
        return {
            "wall_time_s": wall,
            "time_to_first_result_s": self._first,
            "peak_rss_bytes": summed[_RSS],
            "peak_accelerator_bytes": summed[_ACCEL],
            "device_seconds": device_seconds,
            "device_kind": self.device_kind,
            "energy_joules": summed[_ENERGY],
            "energy_estimated": 1.0 if summed[_ESTIMATED] > 0 else 0.0,
        }

    def report(self) -> dict[str, Any]:
        """The cost keys of a single-process trial (no ranks to sum over)."""
        return self.metrics(self.sums())


def estimate_joules(device_kind: str, wall_s: float, cpu_s: float) -> float:
    """Nominal energy of one process: GPU-seconds * 300 W, or CPU-seconds * 10 W per core."""
    if device_kind == "cuda":
        return wall_s * NOMINAL_WATTS_PER_GPU
    return cpu_s * NOMINAL_WATTS_PER_CPU_CORE


def parameter_counts(model: Any) -> dict[str, float]:
    """``parameter_count`` and ``trainable_parameter_count`` of a torch module."""
    params = list(model.parameters())
    return {
        "parameter_count": float(sum(p.numel() for p in params)),
        "trainable_parameter_count": float(sum(p.numel() for p in params if p.requires_grad)),
    }
