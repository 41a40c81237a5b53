"""The measured cost of a trial (workers/cost.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from search_spaces.tunables import COST_KEYS, COST_STRING_KEYS
from workers import cost
from workers.cost import CostMeter, RaplCounter


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    total = 0
    while time.process_time() < end:
        total += sum(range(1000))


def test_peak_rss_is_positive_and_plausible() -> None:
    assert cost.peak_rss_bytes() > 10 * 2**20  # a Python process with torch's deps: > 10 MB


def test_cpu_seconds_grow_with_work() -> None:
    before = cost.cpu_seconds()
    _burn(0.2)
    assert cost.cpu_seconds() - before >= 0.15


def test_meter_reports_wall_first_result_and_cpu_seconds() -> None:
    meter = CostMeter("cpu", started_at=time.time() - 1.0, use_rapl=False)
    _burn(0.1)
    first = meter.report()
    _burn(0.2)
    last = meter.report()
    assert set(first) <= {*COST_KEYS, *COST_STRING_KEYS}
    assert first["device_kind"] == "cpu"
    assert first["time_to_first_result_s"] >= 1.0  # counted from the given trial start
    assert last["time_to_first_result_s"] == first["time_to_first_result_s"]
    assert last["wall_time_s"] > first["wall_time_s"] >= first["time_to_first_result_s"]
    assert last["device_seconds"] - first["device_seconds"] >= 0.15
    assert last["peak_rss_bytes"] > 10 * 2**20
    assert last["peak_accelerator_bytes"] == 0.0


def test_without_rapl_or_nvml_the_energy_is_an_estimate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cost, "RAPL_ENERGY_FILE", tmp_path / "missing")
    meter = CostMeter("cpu", use_rapl=True)
    assert meter._energy is None  # nothing readable
    _burn(0.1)
    report = meter.report()
    assert report["energy_estimated"] == 1.0
    assert report["energy_joules"] == pytest.approx(
        report["device_seconds"] * cost.NOMINAL_WATTS_PER_CPU_CORE, rel=0.2
    )
    assert report["energy_joules"] > 0
    assert not RaplCounter(tmp_path / "missing", tmp_path / "missing").available


def test_a_readable_rapl_counter_is_measured_and_survives_a_wrap(tmp_path: Path) -> None:
    energy, limit = tmp_path / "energy_uj", tmp_path / "max_energy_range_uj"
    limit.write_text("1000000000\n")
    energy.write_text("999000000\n")
    counter = RaplCounter(energy, limit)
    assert counter.available
    energy.write_text("1000000\n")  # wrapped: 1 J to the top, 1 J after it
    assert counter.joules() == pytest.approx(2.0)


def test_summed_ranks_add_memory_and_cpu_and_average_wall_time() -> None:
    meter = CostMeter("cpu", use_rapl=False)
    one = meter.sums()
    two = [a + b for a, b in zip(one, one, strict=True)]
    report = meter.metrics(two)
    assert report["peak_rss_bytes"] == 2 * one[2]
    assert report["device_seconds"] == pytest.approx(2 * one[4])
    assert report["wall_time_s"] == pytest.approx(one[1])


def test_parameter_counts() -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[0].requires_grad_(False)
    counts = cost.parameter_counts(model)
    assert counts == {"parameter_count": 23.0, "trainable_parameter_count": 8.0}
