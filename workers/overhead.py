"""Cuts of the fixed costs around trials: what a study driver and a trial start and stop pay.

Measured by ``bench/dispatch_overhead.py``; each cut names what it saves.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn

# Ray Train settings of a trial's TorchTrainer, unless set otherwise (they are read in the trial
# process and passed on to the Train controller and workers).
TRAIN_ENV_DEFAULTS = {
    # The controller polls its workers this often (Ray's default: 2 s): a trial's end, and each
    # epoch's result, reach Tune up to this much sooner.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
}


def apply_train_env_defaults() -> None:
    """Set ``TRAIN_ENV_DEFAULTS`` in this process where the environment does not set them."""
    for name, value in TRAIN_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)


def import_tensorboardx_without_torch() -> None:
    """Import tensorboardX, for Tune's TensorBoard logger, without importing torch.

    tensorboardX imports torch, when installed, only so that it can accept torch tensors; Tune
    logs plain numbers. A study driver that has not imported torch (its trials run elsewhere)
    so saves torch's import: seconds of CPU per study. Torch imports normally afterwards.
    """
    if "torch" in sys.modules or "tensorboardX" in sys.modules:
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        pass  # not installed: Tune logs without TensorBoard, as it would anyway
    finally:
        if sys.modules.get("torch", False) is None:
            del sys.modules["torch"]


def exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's teardown of every module and object.

    The exit handlers still run (Ray's disconnect, logging's flush); skipped is only the
    teardown, which takes seconds in a process that imported Ray, Tune, Optuna and pandas.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
