"""What-if: replay a finished study's recorded epochs through another early-stopping scheduler.

The service gathers what the replay needs from its own tables (the trial events in the order
they happened, the completed trials' values, the study's best) and hands it to
``python -m workers.whatif`` in a child process: the scheduler logic is Ray Tune's, which the
service never imports. A retried trial's earlier attempts are dropped (its curve restarts).
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from search_spaces.spec import SpecError, StudySpec, validate_spec
from service.schemas import WhatIfPublic
from service.store import EventStore, StudyRecord, TrialQueries
from service.store.trial_filters import Cursor, TrialFilter

log = logging.getLogger(__name__)

REPLAY_TIMEOUT_S = 120.0
MAX_TRIAL_EPOCHS = 200_000  # recorded epochs a what-if replays at most
_PAGE = 1000


class NotReplayable(Exception):
    """The study's records cannot be replayed (the reason is the message): a 409."""


class ReplayFailed(RuntimeError):
    """The replay process failed or timed out."""


@dataclass(frozen=True)
class History:
    """A study's trial events as replay steps (see ``workers.whatif``)."""

    steps: list[list[Any]]
    epochs: int  # result steps kept
    longest: int  # the most epochs a trial reported


def history(events: EventStore, study_id: str, metric: str) -> History:
    """The study's trial events in event order, each epoch with the value of ``metric``."""
    steps: list[list[Any] | None] = []
    started: set[int] = set()
    attempt: dict[int, list[int]] = {}  # a trial's result steps since it (re)started
    last_id = 0
    while page := events.after(study_id, last_id, limit=_PAGE):
        last_id = page[-1].id
        for event in page:
            number = event.data.get("number")
            if not isinstance(number, int):
                continue
            if event.kind == "trial_started" and number not in started:
                started.add(number)
                steps.append(["add", number])
            elif event.kind == "trial_result" and isinstance(event.data.get("epoch"), int):
                metrics = event.data.get("metrics") or {}
                value = metrics.get(metric) if isinstance(metrics, dict) else None
                value = float(value) if isinstance(value, int | float) else None
                attempt.setdefault(number, []).append(len(steps))
                steps.append(["result", number, event.data["epoch"], value])
            elif event.kind == "trial_retried":
                for index in attempt.pop(number, []):
                    steps[index] = None
            elif event.kind in ("trial_completed", "trial_failed"):
                state = "failed" if event.kind == "trial_failed" else "complete"
                steps.append(["end", number, state])
        if sum(len(kept) for kept in attempt.values()) > MAX_TRIAL_EPOCHS:
            raise NotReplayable(f"more than {MAX_TRIAL_EPOCHS} trial-epochs to replay")
    kept = [step for step in steps if step is not None]
    results = [step for step in kept if step[0] == "result"]
    if not any(step[3] is not None for step in results):
        raise NotReplayable(f"the study has no per-epoch values of {metric}")
    longest = max(step[2] for step in results)
    if longest < 2:
        raise NotReplayable(
            f"its trials ran at most {longest} epoch: nothing to stop early (a what-if needs "
            "per-epoch values of at least two epochs)"
        )
    return History(kept, len(results), longest)


def run_replay(spec: StudySpec, steps: list[list[Any]]) -> dict[int, dict[str, Any]]:
    """Each replayed trial's ``epochs_run`` and ``stopped_at``, by number, from the worker."""
    payload = json.dumps({"spec": spec.model_dump(mode="json"), "steps": steps})
    command = [sys.executable, "-m", "workers.whatif"]
    try:
        done = subprocess.run(
            command, input=payload, capture_output=True, text=True, timeout=REPLAY_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise ReplayFailed(f"the replay took longer than {REPLAY_TIMEOUT_S:g} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        log.error("what-if replay failed (exit %s): %s", done.returncode, done.stderr[-4000:])
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ReplayFailed(f"the replay failed: {reason[:300]}")
    return {t["number"]: t for t in json.loads(lines[-1])["trials"]}


def what_if(
    study: StudyRecord, scheduler: dict[str, Any], events: EventStore, trials: TrialQueries
) -> WhatIfPublic:
    """Replay ``study`` under ``scheduler`` (the spec's schema). Raises ``NotReplayable``, or
    ``SpecError`` naming the setting that does not fit the study (as at submit)."""
    optuna_id = trials.study_id(study.optuna_study_name)
    if optuna_id is None or len(trials.directions(optuna_id)) != 1:
        raise NotReplayable("a what-if needs a study with one objective")
    spec: StudySpec | None = None
    misfit: SpecError | None = None
    try:
        spec = validate_spec({**study.spec, "scheduler": scheduler})  # the checks at submit
    except SpecError as exc:
        misfit = exc
    # A study that cannot be replayed at all is a 409 whatever the settings; then the settings.
    recorded = history(events, study.id, _metric(spec, study))
    if spec is None:
        assert misfit is not None
        raise misfit
    goal = spec.stopping_goal()
    replayed = run_replay(spec, recorded.steps)
    stopped = sorted(n for n, t in replayed.items() if t["stopped_at"] is not None)
    maximize = trials.directions(optuna_id) == ["MAXIMIZE"]
    kept = {n: v for n, v in _completed(trials, optuna_id).items() if n not in stopped}
    best = min(kept, key=lambda n: (-kept[n] if maximize else kept[n], n)) if kept else None
    study_best = trials.best(optuna_id)
    epochs_run = sum(t["epochs_run"] for t in replayed.values())
    return WhatIfPublic(
        study_id=study.id,
        scheduler=spec.scheduler.model_dump(mode="json"),
        metric=goal.metric,
        direction=str(goal.direction),
        trials=len(replayed),
        stopped_trials=stopped,
        epochs_run=epochs_run,
        epochs_study=recorded.epochs,
        compute_saved_fraction=round(1 - epochs_run / recorded.epochs, 6),
        best_kept=None if study_best is None else study_best.number not in stopped,
        best_trial=best,
        best_value=None if best is None else kept[best],
        study_best_trial=None if study_best is None else study_best.number,
        study_best_value=None if study_best is None else _finite(study_best.value),
    )


def _metric(spec: StudySpec | None, study: StudyRecord) -> str:
    """The metric the scheduler compares: the checked spec's, else the study's objective."""
    if spec is not None:
        return spec.stopping_goal().metric
    try:
        return validate_spec(study.spec).goals[0].metric
    except SpecError as exc:
        raise NotReplayable(f"its stored spec no longer validates: {exc}") from None


def _completed(trials: TrialQueries, optuna_id: int) -> dict[int, float]:
    """The first objective's value of every completed trial, by number (finite values only)."""
    found: dict[int, float] = {}
    cursor: Cursor | None = None
    while True:
        page = trials.page(
            optuna_id, where=TrialFilter(state="COMPLETE"), limit=_PAGE, cursor=cursor,
            with_total=False,
        )  # fmt: skip
        found.update((t.number, v) for t in page.trials if (v := _finite(t.value)) is not None)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
