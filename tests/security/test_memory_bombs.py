"""Specs whose size is astronomically large: each is measured arithmetically and refused with a
422 naming the field and the limit, or (where it is legal) built and sampled in bounded memory,
within seconds. Validation and the driver's sampler run under a memory cap in a subprocess."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from search_spaces.limits import MAX_GRID_POINTS, MAX_RUNGS, MAX_STEPS_PER_PARAMETER
from tests.conftest import toy_spec
from tests.security.hostile_shapes import SEED_RANGE

FINE_STEP = {"type": "float", "low": 0.0, "high": 0.5, "step": 1e-308}
BIG_GRID = {
    "seed": {"type": "int", "low": 0, "high": 9_999},
    "batch_size": {"type": "int", "low": 1, "high": 4096},
    "lora_r": {"type": "int", "low": 1, "high": 1024},
    "lora_alpha": {"type": "int", "low": 1, "high": 4096},
}  # about 1.7 * 10**14 points


def _spec(**changes: Any) -> dict[str, Any]:
    spec = toy_spec("bomb", n_trials=2, epochs=4)
    for path, value in changes.items():
        target = spec
        keys = path.split("__")
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = copy.deepcopy(value)
    return spec


# (spec, the field the 422 names, words of its reason)
REFUSED = [
    (_spec(search_space={"weight_decay": FINE_STEP}), "search_space.weight_decay.step", "limit"),
    (
        _spec(algorithm="grid", search_space={"seed": SEED_RANGE}),
        "search_space",
        f"limit of {MAX_GRID_POINTS:,}",
    ),
    (_spec(algorithm="grid", search_space=BIG_GRID), "search_space", "about 10^14 points"),
    (
        _spec(scheduler={"type": "asha", "reduction_factor": 1.000001}, task__epochs=100),
        "scheduler.reduction_factor",
        f"limit of {MAX_RUNGS}",
    ),
    (
        _spec(scheduler={"type": "hyperband", "reduction_factor": 1 + 1e-15}, task__epochs=100),
        "scheduler.reduction_factor",
        "rungs",
    ),
    (
        _spec(scheduler={"type": "asha", "max_epochs": 10_000}),
        "scheduler.max_epochs",
        "beyond the epochs of the longest trial (4",
    ),
]


@pytest.mark.integration
@pytest.mark.parametrize(("spec", "field", "needle"), REFUSED)
def test_the_server_refuses_astronomical_specs_at_once(
    api: httpx.Client, spec: dict[str, Any], field: str, needle: str
) -> None:
    started = time.monotonic()
    response = api.post("/studies", json=spec)
    assert response.status_code == 422, response.text
    assert time.monotonic() - started < 2
    problem = response.json()["detail"][0]
    assert (problem["field"], needle in problem["reason"]) == (field, True), problem


# Run in a child process whose address space may grow by CAP_BYTES at most past its imports:
# validate each refused spec, then build and sample (as the driver does) the legal big space.
CAPPED = """
import json, resource, sys, time
from search_spaces.algorithms import make_sampler
from search_spaces.converters import search_space_for_optuna, to_grid
from search_spaces.spec import SpecError, validate_spec
import optuna

size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (size + CAP_BYTES, size + CAP_BYTES))
refused, legal = json.load(sys.stdin)
started = time.monotonic()
fields = []
for spec in refused:
    try:
        validate_spec(spec)
        fields.append(None)
    except SpecError as exc:
        fields.append(exc.problems[0].field)
spec = validate_spec(legal)
sampler = make_sampler(spec.algorithm, spec.algorithm_settings, lambda: to_grid(spec))
study = optuna.create_study(sampler=sampler)
for _ in range(5):
    study.ask(search_space_for_optuna(spec))
print(json.dumps({"fields": fields, "seconds": time.monotonic() - started}))
"""
CAP_BYTES = 256 * 1024**2


def test_validation_and_the_drivers_sampler_stay_within_a_memory_cap() -> None:
    # Every parameter discrete, over 2**31 values and 2**31 steps: legal for random sampling,
    # whose driver once built this grid anyway (2.8 GB before it was stopped).
    legal = _spec(
        search_space={
            "seed": SEED_RANGE,
            "weight_decay": {**FINE_STEP, "step": 0.5 / (MAX_STEPS_PER_PARAMETER - 1)},
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", CAPPED.replace("CAP_BYTES", str(CAP_BYTES))],
        input=json.dumps([[spec for spec, _, _ in REFUSED], legal]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["fields"] == [field for _, field, _ in REFUSED]
    assert result["seconds"] < 10
