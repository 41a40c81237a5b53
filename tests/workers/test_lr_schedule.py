"""The training loop's learning-rate schedule equals transformers' linear warm-up schedule."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from transformers import get_linear_schedule_with_warmup

from workers.lr_schedule import linear_schedule_with_warmup


def _rates(make: object, warmup: int, total: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = make(optimizer, warmup, total)  # type: ignore[operator]
    rates = []
    for _ in range(total + 3):  # past the end too: the rate stays 0
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize(("warmup", "total"), [(0, 10), (3, 10), (10, 10), (1, 1), (0, 1)])
def test_schedule_matches_transformers(warmup: int, total: int) -> None:
    ours = _rates(linear_schedule_with_warmup, warmup, total)
    theirs = _rates(get_linear_schedule_with_warmup, warmup, total)
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert ours[-1] == 0.0
    if warmup < total:
        assert max(ours) == pytest.approx(0.1)


def test_training_loop_import_leaves_peft_and_trainer_utils_out() -> None:
    """The import every DDP rank pays at start-up: the loop must not pull in peft (~2 s)."""
    code = (
        "import sys, workers.train_loop; "
        "print(sorted(m for m in ('peft', 'transformers.trainer_utils') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
