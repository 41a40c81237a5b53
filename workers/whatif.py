"""Replay a finished study's recorded epochs through the scheduler the service would run.

``python -m workers.whatif`` reads ``{"spec": …, "steps": […]}`` (JSON) on stdin and writes
``{"trials": […]}`` on stdout. ``spec`` is a stored study spec carrying the scheduler to try;
``steps`` is the study's history in event order: ``["add", number]`` when a trial started,
``["result", number, epoch, value]`` for each epoch (value: the scheduler's metric, or null),
``["end", number, "complete" | "failed"]`` when it ended. Each step is fed to the scheduler of
``workers.schedulers.make_scheduler`` (Ray Tune's own classes) as Tune's controller would:
``on_trial_add``, ``on_trial_result`` per epoch, then ``on_trial_complete`` (or
``on_trial_error``). A trial the scheduler stops skips its later epochs.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from search_spaces.spec import validate_spec
from workers.schedulers import make_scheduler

TIME_ATTR = "training_iteration"


@dataclass
class _Replayed:
    trial: Trial
    epochs_run: int = 0
    stopped_at: int | None = None
    live: bool = True
    last_result: dict[str, Any] = field(default_factory=dict)


class _Controller:
    """The part of Tune's controller the schedulers ask about: the live trials (all running:
    the recorded order is replayed, so the median rule never pauses one to let another run)."""

    def __init__(self) -> None:
        self.live: dict[int, Trial] = {}

    def get_live_trials(self) -> list[Trial]:
        return list(self.live.values())


def replay(spec_data: dict[str, Any], steps: list[list[Any]]) -> list[dict[str, Any]]:
    """Each replayed trial's number, epochs run and the epoch the scheduler stopped it after
    (null unless before its last recorded epoch)."""
    spec = validate_spec(spec_data)
    metric = spec.stopping_goal().metric
    scheduler = make_scheduler(spec)
    controller = _Controller()
    last = {step[1]: index for index, step in enumerate(steps) if step[0] == "result"}
    trials: dict[int, _Replayed] = {}

    def add(number: int) -> _Replayed:
        trial = Trial("whatif", stub=True, trial_id=str(number))
        trial.set_status(Trial.RUNNING)
        trials[number] = _Replayed(trial)
        controller.live[number] = trial
        scheduler.on_trial_add(controller, trial)  # type: ignore[arg-type]
        return trials[number]

    def end(number: int, failed: bool = False) -> None:
        state = trials[number]
        state.live = False
        controller.live.pop(number, None)
        if failed:
            scheduler.on_trial_error(controller, state.trial)  # type: ignore[arg-type]
        else:
            scheduler.on_trial_complete(controller, state.trial, state.last_result)  # type: ignore[arg-type]

    for index, step in enumerate(steps):
        kind, number = step[0], step[1]
        if number not in last:
            continue  # a trial without results (failed at once) is not replayed
        state = trials.get(number)
        if kind == "add":
            if state is None:
                add(number)
        elif kind == "result":
            state = state or add(number)
            if not state.live:
                continue
            result: dict[str, Any] = {TIME_ATTR: step[2]}
            if step[3] is not None:
                result[metric] = step[3]
            state.epochs_run += 1
            state.last_result = result
            decision = scheduler.on_trial_result(controller, state.trial, result)  # type: ignore[arg-type]
            if decision == TrialScheduler.STOP:
                if index != last[number]:
                    state.stopped_at = step[2]
                end(number)
        elif kind == "end" and state is not None and state.live:
            end(number, failed=step[2] == "failed")
    for number, state in trials.items():
        if state.live:
            end(number)
    return [
        {"number": n, "epochs_run": s.epochs_run, "stopped_at": s.stopped_at}
        for n, s in sorted(trials.items())
    ]


def main() -> None:
    """stdin → replay → stdout, as JSON."""
    payload = json.load(sys.stdin)
    found = replay(payload["spec"], payload["steps"])
    sys.stdout.write(json.dumps({"trials": found}) + "\n")


if __name__ == "__main__":
    main()
