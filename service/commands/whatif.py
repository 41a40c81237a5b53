"""``hpo whatif``: what an early-stopping scheduler would have done to a finished study."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from service.client import DEFAULT_URL
from service.commands.common import JsonOpt, KeyOpt, StudyArg, UrlOpt, app, connect, emit
from service.commands.views import number
from service.schemas import WhatIfPublic

RELEVANT = {
    "asha": ("grace_period", "reduction_factor", "max_epochs"),
    "hyperband": ("grace_period", "reduction_factor", "max_epochs"),
    "median": ("grace_period", "min_samples_required"),
}


@app.command()
def whatif(
    study_id: StudyArg,
    scheduler: Annotated[
        Literal["asha", "hyperband", "median", "none"], typer.Option(help="Scheduler type.")
    ] = "asha",
    grace_period: Annotated[int | None, typer.Option(help="Epochs before any stop.")] = None,
    reduction_factor: Annotated[
        float | None, typer.Option(help="ASHA/Hyperband: keep 1/this at each rung.")
    ] = None,
    min_samples_required: Annotated[
        int | None, typer.Option(help="Median rule: trials to compare with.")
    ] = None,
    max_epochs: Annotated[int | None, typer.Option(help="Epochs of the longest trial.")] = None,
    metric: Annotated[str | None, typer.Option(help="Compare on (default: objective).")] = None,
    direction: Annotated[
        Literal["maximize", "minimize"] | None, typer.Option(help="The metric's direction.")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay a finished study through a scheduler: the trials it would have stopped, the
    compute it would have saved, and whether the best trial survives."""
    given: dict[str, Any] = {
        "type": scheduler,
        "grace_period": grace_period,
        "reduction_factor": reduction_factor,
        "min_samples_required": min_samples_required,
        "max_epochs": max_epochs,
        "metric": metric,
        "direction": direction,
    }
    with connect(url, api_key) as client:
        found = client.whatif(study_id, {k: v for k, v in given.items() if v is not None})
    emit(found, as_json, what_if_text)


def what_if_text(w: WhatIfPublic) -> str:
    """The answer in a few lines."""
    shown = RELEVANT.get(w.scheduler.get("type", ""), ())
    settings = ", ".join(f"{k} {w.scheduler[k]}" for k in shown if w.scheduler.get(k) is not None)
    stopped = ", ".join(f"#{n}" for n in w.stopped_trials) or "none"
    if w.best_kept is None:
        kept = "the study has no completed trial"
    else:
        kept = "kept" if w.best_kept else "[red]stopped[/]"
        kept = f"the study's best trial #{w.study_best_trial} ({number(w.study_best_value)}) {kept}"
    best = "none" if w.best_trial is None else f"#{w.best_trial} ({number(w.best_value)})"
    return "\n".join(
        [
            f"what-if for study {w.study_id}: {w.scheduler.get('type')} ({settings or '-'}) "
            f"on {w.metric} ({w.direction})",
            f"stopped early: {len(w.stopped_trials)} of {w.trials} trials: {stopped}",
            f"trial-epochs: {w.epochs_run} of the study's {w.epochs_study} "
            f"({w.compute_saved_fraction:.1%} saved)",
            f"{kept}; best it would have found: {best}",
        ]
    )
