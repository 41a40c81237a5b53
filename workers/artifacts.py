"""The best trial's model: each fine-tuning trial saves its final model, the driver keeps the best.

Layout under ``<results_dir>/artifacts/<study_id>/``:

* ``trials/<optuna trial number>/``: a trial's final model and tokenizer
  (``save_pretrained``), written to a ``.tmp-*`` directory first and renamed into place, so a
  directory with a number for a name is always complete. A LoRA trial saves its adapters merged
  into the weights, and the adapter alone (``peft``) under ``adapter/``; a compressed trial
  adds its compressed model under ``compressed/`` (``workers.compression.load_compressed``);
* ``best/``: after the study, the best completed trial's directory, moved there, with
  ``hpo_trial.json`` ({study_id, trial_number, value, params, task, model, auto_class}).

While the study runs, :class:`BestModelKeeper` deletes the directories of finished trials that
are not the best; directories of trials still running are left alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback

from search_spaces.protocol import ARTIFACTS_DIR, BEST_DIR, TRIAL_INFO_FILE

if TYPE_CHECKING:
    import torch
    from ray.tune.experiment import Trial

log = logging.getLogger(__name__)

TRIALS_DIR = "trials"
# Metrics a saving trial adds to its last report (stored with its other metrics).
ARTIFACT_KEYS = ("eval_predictions_head", "checkpoint_bytes")


def study_artifacts_dir(results_dir: str | Path, study_id: str) -> Path:
    """``<results_dir>/artifacts/<study_id>``."""
    return Path(results_dir) / ARTIFACTS_DIR / study_id


def trial_model_dir(artifacts_dir: str | Path, trial_number: int) -> Path:
    """Where trial ``trial_number`` saves its model."""
    return Path(artifacts_dir) / TRIALS_DIR / str(int(trial_number))


def directory_bytes(path: Path) -> int:
    """Total size of the regular files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def save_model(
    model: torch.nn.Module,
    tokenizer: Any,
    target: Path,
    max_seq_length: int | None = None,
    extras: Callable[[Path], None] | None = None,
) -> int:
    """Save ``model`` and ``tokenizer`` (``save_pretrained``) to ``target`` atomically.

    Both are written to a temporary sibling directory that is then renamed to ``target`` (a
    directory already there, from an earlier attempt of the same trial, is replaced).
    ``max_seq_length`` becomes the saved tokenizer's ``model_max_length``, so
    ``tokenizer(text, truncation=True)`` truncates as the trial did. ``extras`` may write more
    into the directory before it is renamed (a LoRA adapter, a compressed variant).

    Returns:
        The size of the saved model and tokenizer in bytes (without the extras).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    try:
        unwrapped = getattr(model, "module", model)  # DDP wraps the model in .module
        unwrapped.save_pretrained(temporary)  # type: ignore[operator]
        tokenizer.save_pretrained(temporary)
        if max_seq_length is not None:
            _limit_tokenizer_length(temporary, max_seq_length)
        size = directory_bytes(temporary)
        if extras is not None:
            extras(temporary)
        if target.exists():
            shutil.rmtree(target)
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return size


def _limit_tokenizer_length(directory: Path, max_seq_length: int) -> None:
    path = directory / "tokenizer_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text())
    current = config.get("model_max_length")
    if not isinstance(current, int | float) or current > max_seq_length:
        config["model_max_length"] = int(max_seq_length)
        path.write_text(json.dumps(config, indent=2) + "\n")


def best_trial(storage: Any, study_name: str) -> Any | None:
    """The best COMPLETE trial of the Optuna study (the first of the Pareto front, by number,
    for several objectives), or None."""
    import optuna

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return None
    try:
        if len(study.directions) > 1:
            front = sorted(study.best_trials, key=lambda t: t.number)
            return front[0] if front else None
        return study.best_trial
    except ValueError:  # no completed trial
        return None


def _numbered_dirs(trials_dir: Path) -> dict[int, Path]:
    if not trials_dir.is_dir():
        return {}
    return {int(p.name): p for p in trials_dir.iterdir() if p.is_dir() and p.name.isdigit()}


def prune_trial_dirs(storage: Any, study_name: str, artifacts_dir: Path) -> int | None:
    """Delete the saved models of every finished trial except the best; returns its number.

    Trials still running (or waiting) keep their directories.
    """
    import optuna
    from optuna.trial import TrialState

    best = best_trial(storage, study_name)
    saved = _numbered_dirs(artifacts_dir / TRIALS_DIR)
    if not saved:
        return best.number if best is not None else None
    study = optuna.load_study(study_name=study_name, storage=storage)
    finished = {
        t.number
        for t in study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        )
    }
    for number, path in saved.items():
        if number in finished and (best is None or number != best.number):
            shutil.rmtree(path, ignore_errors=True)
    return best.number if best is not None else None


def keep_best(
    storage: Any,
    study_name: str,
    study_id: str,
    artifacts_dir: Path,
    task: dict[str, str] | None = None,
) -> Path | None:
    """After the study: prune, then move the best trial's model to ``best/`` with
    ``hpo_trial.json`` (``task``: its task, model and AutoModelFor... class, added there).
    Returns ``best/``, or None when the best trial saved no model."""
    best = best_trial(storage, study_name)
    prune_trial_dirs(storage, study_name, artifacts_dir)
    trials_dir = artifacts_dir / TRIALS_DIR
    for stale in trials_dir.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a trial killed while saving
    try:
        return _move_to_best(best, study_id, artifacts_dir, task or {})
    finally:
        if trials_dir.is_dir() and not any(trials_dir.iterdir()):
            trials_dir.rmdir()


def _move_to_best(
    best: Any | None, study_id: str, artifacts_dir: Path, task: dict[str, str]
) -> Path | None:
    best_dir = artifacts_dir / BEST_DIR
    if best is None:
        return None
    source = trial_model_dir(artifacts_dir, best.number)
    if source.is_dir():
        if best_dir.exists():
            old = artifacts_dir / f".old-{BEST_DIR}-{uuid.uuid4().hex[:8]}"
            os.replace(best_dir, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(source, best_dir)
    elif not _holds_trial(best_dir, best.number):
        log.warning("the best trial %d saved no model", best.number)
        shutil.rmtree(best_dir, ignore_errors=True)  # an earlier attempt's best, no more
        return None
    info = {
        "study_id": study_id,
        "trial_number": best.number,
        "value": best.value if best.values is not None and len(best.values) == 1 else best.values,
        "params": best.params,
        **task,
    }
    if "model" in best.params:  # the model was searched: the best trial's
        info["model"] = best.params["model"]
    (best_dir / TRIAL_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return best_dir


def _holds_trial(best_dir: Path, number: int) -> bool:
    try:
        info = json.loads((best_dir / TRIAL_INFO_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("trial_number") == number


class BestModelKeeper(Callback):
    """Tune callback: whenever a trial ends, delete the saved models of finished trials that
    are not the best (the searcher has told Optuna the trial's state by then)."""

    def __init__(self, storage: Any, study_name: str, artifacts_dir: Path) -> None:
        self._storage = storage
        self._study_name = study_name
        self._artifacts_dir = artifacts_dir

    def _prune(self) -> None:
        try:
            prune_trial_dirs(self._storage, self._study_name, self._artifacts_dir)
        except Exception:  # bookkeeping must never stop the study
            log.warning("could not prune the saved models", exc_info=True)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._prune()

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._prune()
