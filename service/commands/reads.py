"""Read commands: ``ls``, ``show``, ``trials``, ``best``, ``pareto``, ``watch`` (with --json)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer

from service.client import DEFAULT_URL
from service.commands.common import (
    Failure,
    JsonOpt,
    KeyOpt,
    StudyArg,
    UrlOpt,
    app,
    connect,
    emit,
    out,
)
from service.commands.views import event_line, studies_table, study_table, trial_table, trials_table
from service.schemas import StudyStatus, TrialsPublic, TrialState


@app.command("ls")
def list_studies(
    status: Annotated[StudyStatus | None, typer.Option(help="Only studies in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 50,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List studies, newest first."""
    with connect(url, api_key) as client:
        page = client.studies(status=status, limit=limit)
    emit(page, as_json, lambda p: studies_table(p.data, p.count))


@app.command()
def show(
    study_id: StudyArg, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None, as_json: JsonOpt = False
) -> None:
    """Show a study: status, trial counts, best value, Ray job and dashboard."""
    with connect(url, api_key) as client:
        study = client.study(study_id)
    emit(study, as_json, study_table)


@app.command()
def trials(
    study_id: StudyArg,
    state: Annotated[TrialState | None, typer.Option(help="Only trials in this state.")] = None,
    sort: Annotated[
        Literal["number", "value", "duration"], typer.Option(help="Sort key.")
    ] = "number",
    order: Annotated[Literal["asc", "desc"] | None, typer.Option(help="Sort order.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 50,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A table of a study's trials (best first with --sort value)."""
    with connect(url, api_key) as client:
        page = client.trials(study_id, state=state, sort=sort, order=order, limit=limit)
    _print_trials(page, as_json)


@app.command()
def best(
    study_id: StudyArg, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None, as_json: JsonOpt = False
) -> None:
    """The best trial (the Pareto front for several objectives)."""
    with connect(url, api_key) as client:
        found = client.best(study_id)
    if isinstance(found, TrialsPublic):
        _print_trials(found, as_json)
    else:
        emit(found, as_json, trial_table)


@app.command()
def pareto(
    study_id: StudyArg, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None, as_json: JsonOpt = False
) -> None:
    """The Pareto-optimal trials."""
    with connect(url, api_key) as client:
        _print_trials(client.pareto(study_id), as_json)


@app.command()
def watch(
    study_id: StudyArg,
    since: Annotated[int, typer.Option(min=0, help="Start after this event id.")] = 0,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Follow a study's event stream until it ends; exits 1 unless it SUCCEEDED."""
    final = None
    with connect(url, api_key) as client:
        for event in client.events(study_id, last_event_id=since):
            if as_json:
                typer.echo(json.dumps({"id": event.id, "event": event.kind, "data": event.data}))
            else:
                out.print(event_line(event), highlight=False)
            if event.kind == "status":
                final = event.data.get("status")
    if final is None:
        raise Failure(f"the event stream of study {study_id} ended without a final status")
    if final != "SUCCEEDED":
        raise typer.Exit(1)


def _print_trials(page: TrialsPublic, as_json: bool) -> None:
    emit(page, as_json, lambda p: trials_table(p.data, p.count))
