"""The start-up cuts: the study driver's imports, its exit, and the Ray Train settings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from workers.overhead import TRAIN_ENV_DEFAULTS, apply_train_env_defaults


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_tensorboard_logger_without_torch_then_torch_imports() -> None:
    done = _python(
        """
        import sys
        from workers.overhead import import_tensorboardx_without_torch
        import_tensorboardx_without_torch()
        from ray.tune.logger.tensorboardx import TBXLoggerCallback
        TBXLoggerCallback()
        print("tensorboardX" in sys.modules, "torch" in sys.modules)
        import torch
        print(torch.ones(2).sum().item())
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "2.0"]


def test_tiny_bert_data_is_tokenised_without_torch() -> None:
    done = _python(
        """
        import sys
        from search_spaces.spec import validate_spec
        from workers.run_study import tokenise_once
        spec = validate_spec({
            "name": "t",
            "task": {"model": "tiny-bert", "max_train_samples": 8, "max_eval_samples": 4},
            "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2}},
        })
        (data,) = tokenise_once(spec)
        print(len(data.train_ids), len(data.eval_ids), "torch" in sys.modules)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["8", "4", "False"]


def test_exit_now_runs_exit_handlers_and_keeps_the_code() -> None:
    done = _python(
        """
        import atexit
        from workers.overhead import exit_now
        atexit.register(lambda: print("handler ran"))
        print("outcome", end="")
        exit_now(3)
        """
    )
    assert done.returncode == 3
    assert done.stdout == "outcomehandler ran\n"


def test_train_env_defaults_leave_settings_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    name = next(iter(TRAIN_ENV_DEFAULTS))
    monkeypatch.setenv(name, "7")
    apply_train_env_defaults()
    assert os.environ[name] == "7"
    monkeypatch.delenv(name)
    apply_train_env_defaults()
    assert os.environ[name] == TRAIN_ENV_DEFAULTS[name]
