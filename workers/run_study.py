"""The study driver (the Ray job's entrypoint): ``python -m workers.run_study --study-id ID``.

Loads the spec from the database, tokenises the data once, and runs a Tune experiment whose
search algorithm is an Optuna sampler persisting every trial in the same database. A resumed
study (a later attempt) runs only the budget that is left: trials that finished (complete,
pruned, or failed for good) count; trials interrupted by a dead driver do not.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from search_spaces.pausing import checkpoints_kept
from search_spaces.protocol import ATTEMPT_ENV, DATABASE_URL_ENV, OUTCOME_PREFIX, RESULTS_DIR_ENV
from search_spaces.registry import SIMULATED_MODELS
from search_spaces.tunables import final_only_metrics
from workers.checkpoints import remove_study_checkpoints

log = logging.getLogger("workers.run_study")
NOT_SPENT = ("interrupted", "cancelled")  # error texts of trials whose budget is spent again


def run(study_id: str, database_url: str, results_dir: Path, attempt: int) -> tuple[bool, str]:
    """Run the study to its end; returns (succeeded, reason)."""
    import ray
    from ray import tune
    from ray.tune.stopper import CombinedStopper

    from search_spaces.algorithms import make_sampler
    from search_spaces.constraints import MetricConstraints
    from search_spaces.converters import search_space_for_optuna, to_grid, trial_hyperparameters
    from workers.artifacts import BestModelKeeper
    from workers.callbacks import FailureBudget, PlacementDeadline, StudyEvents
    from workers.events import EventWriter
    from workers.overhead import import_tensorboardx_without_torch
    from workers.resilient_storage import study_storage
    from workers.schedulers import make_scheduler
    from workers.search import RecordingOptunaSearch
    from workers.study_outcome import attempt_outcome
    from workers.study_source import load_study
    from workers.study_tracking import finish_trackers, make_trackers
    from workers.trainable import TrialContext, run_trial, trial_resources

    stored = load_study(database_url, study_id)
    spec = stored.spec
    storage = study_storage(database_url)  # waits out a database restart
    spent, failed_before = _spent_budget(storage, stored.optuna_study_name)
    remaining = spec.budget.n_trials - spent
    time_left = _time_left(spec.budget.time_budget_s, stored.started_at)
    artifacts = _artifacts_dir(spec, results_dir, study_id)
    if remaining <= 0 or (time_left is not None and time_left <= 0):
        _keep_best_model(storage, stored.optuna_study_name, study_id, artifacts, spec)
        if remaining <= 0:
            return True, f"study finished: {spent} trials finished (nothing left to run)"
        return True, f"study finished: time budget reached after {spent} trials"

    ray.init(log_to_driver=True)
    simulated = spec.task.model in SIMULATED_MODELS
    data_refs = (ray.put(None),) if simulated else _put_once(tokenise_once(spec))
    metrics = [o.metric for o in spec.goals]
    modes = ["max" if o.direction == "maximize" else "min" for o in spec.goals]
    constraints = MetricConstraints([(c.metric, c.max, c.min) for c in spec.constraints])
    sampler = make_sampler(
        spec.algorithm,
        spec.algorithm_settings,
        lambda: to_grid(spec),  # built by the grid algorithm only
        attempt,
        constraints if spec.constraints else None,
    )
    searcher = RecordingOptunaSearch(
        space=search_space_for_optuna(spec),
        metric=metrics if spec.is_multi_objective else metrics[0],
        mode=modes if spec.is_multi_objective else modes[0],
        sampler=sampler,
        storage=storage,
        study_name=stored.optuna_study_name,
        points_to_evaluate=spec.points_to_evaluate if attempt == 1 else None,
        default_epochs=int(trial_hyperparameters(spec, {})["epochs"]),
    )
    writer = EventWriter(database_url, study_id)
    events = StudyEvents(writer, searcher)
    failure_limit = spec.budget.max_failed_trials
    stopper = FailureBudget(events, failure_limit - failed_before if failure_limit else None)
    deadline = PlacementDeadline.from_env(events)
    context = TrialContext(
        spec,
        data_refs,
        str(results_dir / f"study-{study_id}"),
        str(artifacts) if artifacts is not None else None,
    )
    trackers = make_trackers(stored, attempt, storage, searcher, writer)
    # The keeper and the trackers after events: a failure is told Optuna first.
    callbacks: list[Any] = [events, *trackers]
    if artifacts is not None:
        callbacks.append(BestModelKeeper(storage, stored.optuna_study_name, artifacts))
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, context=context), trial_resources(spec)
    )
    import_tensorboardx_without_torch()  # before Tune's TensorBoard logger imports it
    if any(goal.metric in final_only_metrics() for goal in spec.goals):
        # Such a metric comes with the last epoch's report only; Tune would reject the others.
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=remaining,
            max_concurrent_trials=spec.budget.max_concurrent_trials,
            time_budget_s=time_left,
            scheduler=make_scheduler(spec, sink=searcher.record_exploit),
            # A trial's actor process serves the next trial (not after an error): saves a
            # process start and its imports per trial. All trials of a study need the same
            # resources; a trial's state lives in its function, not in the process.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"study-{study_id}-attempt-{attempt}",
            storage_path=str(results_dir),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            # Tune keeps each trial's newest ``keep`` (PBT: all) checkpoints
            # (workers/checkpoints.py) in the study's storage; a retried trial resumes from the
            # last one.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=checkpoints_kept(spec)),
            callbacks=callbacks,
            stop=CombinedStopper(stopper, deadline),
            verbose=1,
        ),
    )
    started = time.monotonic()
    grid = tuner.fit()
    searcher.finish_pending("stopped: the experiment ended before the trial finished")
    best_model = _keep_best_model(storage, stored.optuna_study_name, study_id, artifacts, spec)
    outcome = (
        (False, deadline.reason(spec))
        if deadline.missed
        else attempt_outcome(
            [grid[i] for i in range(len(grid))],
            spent,
            failed_before + events.failed if stopper.stop_all() else None,
            failure_limit,
            time_left is not None and time.monotonic() - started >= time_left - 1,
        )
    )
    finish_trackers(trackers, storage, stored, outcome, best_model)
    writer.close()
    if ":/" not in str(results_dir):  # the study has ended: its checkpoints are done with
        freed = remove_study_checkpoints(results_dir, study_id)
        log.info("removed the study's checkpoints: %d bytes", freed)
    return outcome


def _artifacts_dir(spec: Any, results_dir: Path, study_id: str) -> Path | None:
    """Where the study's trials save their models; None for the toy objective (no model) and
    for a results dir that is a URI (s3://…: trials save to local paths only)."""
    if spec.task.model in SIMULATED_MODELS or ":/" in str(results_dir):
        return None
    from workers.artifacts import study_artifacts_dir

    return study_artifacts_dir(results_dir, study_id)


def _keep_best_model(
    storage: Any, study_name: str, study_id: str, artifacts: Path | None, spec: Any
) -> Path | None:
    """Keep only the best trial's model, as ``best/`` (never fails the study); returns it."""
    if artifacts is None:
        return None
    from workers.artifacts import keep_best
    from workers.tasks import task_for

    task = {
        "task": spec.task.type,
        "model": spec.task.model,
        "auto_class": task_for(spec.task.type).auto_class,
    }
    try:
        kept = keep_best(storage, study_name, study_id, artifacts, task)
        log.info("best model: %s", kept or "none saved")
        return kept
    except Exception:
        log.warning("could not keep the best model", exc_info=True)
        return None


def _spent_budget(storage: Any, study_name: str) -> tuple[int, int]:
    """(trials that count against n_trials, of those the failed ones) from earlier attempts."""
    import optuna
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return 0, 0
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    spent = failed = 0
    for trial in study.get_trials(deepcopy=False, states=finished):
        if trial.state == TrialState.FAIL and trial.user_attrs.get("error") in NOT_SPENT:
            continue
        spent += 1
        failed += trial.state == TrialState.FAIL
    return spent, failed


def _time_left(budget_s: float | None, started_at: datetime | None) -> float | None:
    if budget_s is None:
        return None
    if started_at is None:
        return budget_s
    return budget_s - (datetime.now(UTC) - started_at).total_seconds()


def tokenise_once(spec: Any) -> tuple[Any, ...]:
    """Tokenise train and eval once per distinct tokenizer of the study's models (the search
    space may tune ``model``), at the longest sequence length any trial uses; the data of each
    model of ``spec.models()`` (one object for models that share a tokenizer)."""
    from search_spaces.params import CategoricalParam
    from workers.models import build_tokenizer, tokenizer_fingerprint
    from workers.tasks import task_for

    longest = spec.task.max_seq_length
    param = spec.search_space.get("max_seq_length")
    if param is not None:
        longest = int(max(param.choices) if isinstance(param, CategoricalParam) else param.high)
    longest = int(spec.task.hyperparameters.get("max_seq_length", longest))
    task = task_for(spec.task.type)
    text = task.load(
        spec.task.dataset, spec.task.max_train_samples, spec.task.max_eval_samples, seed=0
    )
    by_tokenizer: dict[str, Any] = {}  # fingerprint -> tokenised data
    for model in spec.models():
        tokenizer = build_tokenizer(model)
        key = tokenizer_fingerprint(tokenizer)
        if key not in by_tokenizer:
            by_tokenizer[key] = task.tokenize(text, tokenizer, longest)
        by_tokenizer[model] = by_tokenizer[key]
    return tuple(by_tokenizer[model] for model in spec.models())


def _put_once(datasets: tuple[Any, ...]) -> tuple[Any, ...]:
    """One object-store reference per distinct data object, in the same order."""
    import ray

    refs: dict[int, Any] = {}
    for data in datasets:
        if id(data) not in refs:
            refs[id(data)] = ray.put(data)
    return tuple(refs[id(data)] for data in datasets)


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints one ``hpo-outcome:`` line and exits non-zero when the study failed."""
    parser = argparse.ArgumentParser(prog="python -m workers.run_study")
    parser.add_argument("--study-id", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    database_url = os.environ.get(DATABASE_URL_ENV)
    if not database_url:
        print(f"{OUTCOME_PREFIX}study failed: {DATABASE_URL_ENV} is not set", flush=True)
        return 2
    results_dir = Path(os.environ.get(RESULTS_DIR_ENV, "~/ray_results")).expanduser()
    attempt = int(os.environ.get(ATTEMPT_ENV, "1"))
    try:
        ok, reason = run(args.study_id, database_url, results_dir, attempt)
    except ConnectionError:
        # Ray (or the database) is unreachable: an infrastructure failure, not the study's.
        # No outcome line, so the service treats it like a dead driver and resumes the study.
        traceback.print_exc()
        return 3
    except Exception as exc:
        traceback.print_exc()
        ok, reason = False, f"study failed: {type(exc).__name__}: {exc}"
    print(f"{OUTCOME_PREFIX}{reason}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    from workers.overhead import exit_now

    exit_now(main())
