"""OptunaSearch that also stores each trial's metrics, error text and Tune id in Optuna."""

from __future__ import annotations

import logging
import math
from typing import Any

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from search_spaces.tasks import known_metrics
from search_spaces.tunables import (
    COST_KEYS,
    COST_STRING_KEYS,
    DDP_KEYS,
    DEPLOY_KEYS,
    NODE_KEYS,
    REPORT_KEYS,
    RESUME_FROM_KEY,
    RESUME_KEYS,
    RESUME_STRING_KEYS,
    RUN_KEYS,
    RUN_STRING_KEYS,
    TRIAL_NUMBER_KEY,
)

# Numbers and strings of a report that are stored with the trial (eval metrics: every registered
# task's, the compressed model's primary metric included).
_EVAL_KEYS = tuple(known_metrics())
_NUMBER_KEYS = (
    *_EVAL_KEYS, *REPORT_KEYS, *COST_KEYS, *RUN_KEYS, *DDP_KEYS, *DEPLOY_KEYS, *RESUME_KEYS,
)  # fmt: skip
_STRING_KEYS = (*NODE_KEYS, *COST_STRING_KEYS, *RUN_STRING_KEYS, *RESUME_STRING_KEYS)

log = logging.getLogger(__name__)


class RecordingOptunaSearch(OptunaSearch):
    """``OptunaSearch`` plus bookkeeping users want from SQL.

    Every result's metrics land in the trial's ``metrics`` user attribute (Optuna itself keeps
    only the objective per step), its measured cost (``COST_KEYS`` floats and
    ``COST_STRING_KEYS`` strings), how it ran (``RUN_KEYS``, ``DDP_KEYS``, ``RUN_STRING_KEYS``),
    what its model costs to serve (``DEPLOY_KEYS``), how it resumed from a checkpoint
    (``RESUME_KEYS``, ``RESUME_STRING_KEYS``), where it ran (``NODE_KEYS``, strings)
    and, from the last report of a trial that saved its model, ``eval_predictions_head``
    (string) and ``checkpoint_bytes`` (int). A trial that fails for good is told FAIL only once
    its error text is known (``record_failure``, called by the driver's callback right after),
    so the text is stored with the trial as the ``error`` user attribute.
    """

    metric_keys = (*_EVAL_KEYS, *REPORT_KEYS)

    def __init__(self, *args: Any, default_epochs: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._default_epochs = default_epochs
        self._expected_epochs: dict[str, int] = {}
        self._reported_steps: dict[str, int] = {}  # the last step told Optuna, per trial
        self._states: dict[str, str] = {}  # the state each finished trial was told with
        # Per-epoch values of the interrupted trial a re-run resumes, until it reports.
        self._carried: dict[str, dict[int, float]] = {}
        # Epochs each trial trained itself: a run counts its own (``epochs_trained``) and
        # restarts counting when the scheduler pauses the trial and resumes it from a
        # checkpoint; the epochs of its runs before are added.
        self._runs: dict[str, _RunCount] = {}
        self._last_results: dict[str, dict[str, Any]] = {}  # each trial's newest report

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """Ask Optuna for a configuration; link the Tune trial and the Optuna trial both ways."""
        config = super().suggest(trial_id)
        trial = self._ot_trials.get(trial_id)
        if config is not None and trial is not None:
            trial.set_user_attr("ray_trial_id", trial_id)
            self._expected_epochs[trial_id] = int(config.get("epochs", self._default_epochs))
            config = {**config, TRIAL_NUMBER_KEY: trial.number}
            resume = self._interrupted_checkpoint(trial_id, trial.user_attrs.get("requeued_from"))
            if resume is not None:
                config[RESUME_FROM_KEY] = resume
        return config

    def _interrupted_checkpoint(self, trial_id: str, number: Any) -> str | None:
        """The last checkpoint of trial ``number`` of an earlier attempt (interrupted; this one
        re-runs its configuration), keeping its per-epoch values to carry over; None if none."""
        if not isinstance(number, int) or self._ot_study is None:
            return None
        storage = self._ot_study._storage
        try:
            old_id = storage.get_trial_id_from_study_id_trial_number(
                self._ot_study._study_id, number
            )
            old = storage.get_trial(old_id)
        except Exception:
            log.warning("could not read interrupted trial %s", number, exc_info=True)
            return None
        path = old.user_attrs.get("checkpoint_path")
        if not isinstance(path, str):
            return None
        self._carried[trial_id] = dict(old.intermediate_values)
        return path

    def record_checkpoint(self, trial_id: str, path: str) -> None:
        """Store where the trial's newest checkpoint is (a later attempt resumes from it)."""
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._completed_trials:
            return
        try:
            trial.set_user_attr("checkpoint_path", path)
        except Exception:
            log.warning("could not store the checkpoint of trial %s", trial_id, exc_info=True)

    def record_exploit(
        self, trial_id: str, source_id: str, epoch: int, config: dict[str, Any]
    ) -> None:
        """Append a population scheduler's exploit step to the trial's ``lineage`` user
        attribute: ``{epoch, from_trial, params}`` (the source's Optuna number, the epoch of
        the checkpoint copied, the trial's hyperparameters from then on)."""
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._completed_trials:
            return
        bookkeeping = (TRIAL_NUMBER_KEY, RESUME_FROM_KEY)
        entry = {
            "epoch": epoch,
            "from_trial": self.trial_number(source_id),
            "params": {k: v for k, v in config.items() if k not in bookkeeping},
        }
        if "epochs" in config:  # the source's length comes with its weights
            self._expected_epochs[trial_id] = int(config["epochs"])
        self._runs.setdefault(trial_id, _RunCount()).paused = True
        try:
            lineage = list(trial.user_attrs.get("lineage", []))
            trial.set_user_attr("lineage", [*lineage, entry])
        except Exception:
            log.warning("could not record the lineage of trial %s", trial_id, exc_info=True)

    def mark_paused(self, trial_id: str, paused: bool) -> None:
        """Store whether a running trial is paused by its scheduler (the ``paused`` user
        attribute; the service shows such a RUNNING trial as PAUSED)."""
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._completed_trials:
            return
        if paused:
            self._runs.setdefault(trial_id, _RunCount()).paused = True
        try:
            trial.set_user_attr("paused", paused)
        except Exception:
            log.warning("could not mark trial %s paused=%s", trial_id, paused, exc_info=True)

    def on_pause(self, trial_id: str) -> None:
        """Tune's BOHB scheduler calls this when it pauses a trial: nothing to do, as
        ``StudyEvents`` marks the trials every scheduler pauses (``mark_paused``)."""

    def on_unpause(self, trial_id: str) -> None:
        """Tune's BOHB scheduler resuming a trial (see ``on_pause``)."""

    def trial_number(self, trial_id: str) -> int | None:
        """The Optuna trial number of a Tune trial."""
        trial = self._ot_trials.get(trial_id)
        return trial.number if trial is not None else None

    def trial_state(self, trial_id: str) -> str | None:
        """The Optuna state a finished Tune trial was told with (COMPLETE, PRUNED or FAIL), or
        None while it runs."""
        return self._states.get(trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Record the epoch's objective (as an intermediate value) and all metrics.

        An objective measured once at the end (``FINAL_ONLY_METRICS``) has no intermediate
        values; its epochs' metrics are stored all the same."""
        self._carry_over(trial_id, result)
        self._last_results[trial_id] = result
        if not isinstance(self.metric, str) or self.metric in result:
            super().on_trial_result(trial_id, result)
            self._reported_steps[trial_id] = int(result.get("training_iteration", 0))
        self._record(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Record the final metrics, then tell Optuna (failures wait for their error text)."""
        if error and trial_id in self._ot_trials and trial_id not in self._completed_trials:
            return  # told in record_failure
        # A scheduler stopping a paused trial (synchronous Hyperband's lower half) gives no
        # result: the trial ends where its last report left it.
        result = result or self._last_results.get(trial_id)
        if result and trial_id not in self._completed_trials:
            self._record(trial_id, result)
            if self._stopped_early(trial_id, result):
                self._tell_pruned(trial_id, result)
                return
            if not error:
                self._report_last_step(trial_id, result)
        if trial_id not in self._completed_trials:
            self._states[trial_id] = "FAIL" if error else "COMPLETE"
        super().on_trial_complete(trial_id, result=result, error=error)

    def _carry_over(self, trial_id: str, result: dict[str, Any]) -> None:
        """On a resumed re-run's first report: the interrupted trial's values of the epochs its
        checkpoint holds, so the curve covers every epoch once."""
        carried = self._carried.pop(trial_id, None)
        trial = self._ot_trials.get(trial_id)
        if not carried or trial is None or "resumed_from_epoch" not in result:
            return
        for step, value in sorted(carried.items()):
            if step <= int(result["resumed_from_epoch"]):
                try:
                    trial.report(value, step)
                except Exception:
                    log.warning("could not carry over step %s of %s", step, trial_id, exc_info=True)
                self._reported_steps[trial_id] = step

    def _report_last_step(self, trial_id: str, result: dict[str, Any]) -> None:
        """Record the final epoch's objective as an intermediate value when Tune withheld it
        from ``on_trial_result`` (a scheduler stopping a trial at its last epoch, e.g. ASHA at
        ``max_t``), so a complete trial's curve has every epoch."""
        step = int(result.get("training_iteration", 0))
        if not isinstance(self.metric, str) or self.metric not in result or step < 1:
            return
        if self._reported_steps.get(trial_id, 0) >= step:
            return
        try:
            self._ot_trials[trial_id].report(float(result[self.metric]), step)
        except Exception:
            log.warning("could not record the last step of trial %s", trial_id, exc_info=True)

    def _stopped_early(self, trial_id: str, result: dict[str, Any]) -> bool:
        """A trial that ended cleanly before its last epoch was stopped by the scheduler (or
        the time budget): Optuna calls that PRUNED."""
        done = int(result.get("training_iteration", 0))
        return 0 < done < self._expected_epochs.get(trial_id, 0)

    def _tell_pruned(self, trial_id: str, result: dict[str, Any]) -> None:
        trial = self._ot_trials[trial_id]
        assert self._ot_study is not None
        try:
            # Tune withholds the result that made the scheduler stop the trial from
            # on_trial_result; record it, so the pruned trial's curve ends where it stopped.
            step = int(result["training_iteration"])
            if isinstance(self.metric, str) and self.metric in result:
                trial.report(float(result[self.metric]), step)
            self._ot_study.tell(trial, state=TrialState.PRUNED)
            self._states[trial_id] = "PRUNED"
        except Exception:
            log.warning("could not mark trial %s pruned", trial_id, exc_info=True)
        self._completed_trials.add(trial_id)

    def record_failure(self, trial_id: str, error_text: str) -> None:
        """Store the error text with the trial and tell Optuna it failed."""
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._completed_trials:
            return
        self._states[trial_id] = "FAIL"
        try:
            trial.set_user_attr("error", error_text[-4000:])
        except Exception:
            log.warning("could not store the error of trial %s", trial_id, exc_info=True)
        super().on_trial_complete(trial_id, result=None, error=True)

    def finish_pending(self, reason: str) -> None:
        """Tell Optuna FAIL for every trial Tune left unfinished (e.g. the experiment stopped)."""
        for trial_id in list(self._ot_trials):
            if trial_id not in self._completed_trials:
                self.record_failure(trial_id, reason)

    def _record(self, trial_id: str, result: dict[str, Any]) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is None:
            return
        metrics = {
            key: float(result[key])
            for key in _NUMBER_KEYS
            if isinstance(result.get(key), int | float) and math.isfinite(float(result[key]))
        }
        if "epochs_trained" in metrics:
            runs = self._runs.setdefault(trial_id, _RunCount())
            metrics["epochs_trained"] = runs.count(metrics["epochs_trained"], result)
        location = {key: str(result[key]) for key in _STRING_KEYS if result.get(key)}
        artifact: dict[str, Any] = {}
        if isinstance(result.get("eval_predictions_head"), str):
            artifact["eval_predictions_head"] = result["eval_predictions_head"]
        if isinstance(result.get("checkpoint_bytes"), int | float):
            artifact["checkpoint_bytes"] = int(result["checkpoint_bytes"])
        try:
            trial.set_user_attr("metrics", {**metrics, **location, **artifact})
        except Exception:  # a finished trial is immutable; never let bookkeeping kill the study
            log.warning("could not store metrics of trial %s", trial_id, exc_info=True)


class _RunCount:
    """Epochs a trial trained itself across the runs a pausing scheduler split it into."""

    def __init__(self) -> None:
        self.paused = False  # paused (or exploited) since its current run started
        self.before = 0.0  # epochs trained by its earlier runs
        self.last = 0.0  # ``epochs_trained`` of its current run's newest report
        self.stamp: tuple[Any, ...] | None = None  # that report's, to see it again as such

    def count(self, run_epochs: float, result: dict[str, Any]) -> float:
        """The trial's epochs so far, given a report of its current run."""
        stamp = (result.get("timestamp"), result.get("training_iteration"), run_epochs)
        if stamp != self.stamp:
            if self.paused and run_epochs <= self.last:  # a new run, after a pause
                self.before += self.last
                self.paused = False
            self.last, self.stamp = run_epochs, stamp
        return self.before + run_epochs
