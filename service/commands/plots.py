"""``hpo plots ID DIR``: Optuna's own plots of a study as PNG (matplotlib) and HTML (plotly).

The trials come over the API, so this works from any machine that reaches the service; they
are loaded into an in-memory Optuna study with the spec's distributions (``service.optuna_plots``,
imported when the command runs: other commands start without Optuna and matplotlib).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from service.client import DEFAULT_URL
from service.commands.common import Failure, JsonOpt, KeyOpt, StudyArg, UrlOpt, app, connect, out


@app.command()
def plots(
    study_id: StudyArg,
    directory: Annotated[Path, typer.Argument(help="Directory to write the plots into.")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write optimisation history, parallel coordinates and parameter importance (PNG + HTML);
    for a PBT / PB2 study also the population tree (PNG)."""
    with connect(url, api_key) as client:
        study = client.study(study_id)
        trials = client.all_trials(study_id)
    from service.optuna_plots import optuna_study, write_plots

    loaded = optuna_study(study, trials)
    if not any(t.state.name == "COMPLETE" for t in loaded.trials):
        raise Failure(f"study {study_id} has no completed trial to plot yet")
    directory.mkdir(parents=True, exist_ok=True)
    written, skipped = write_plots(loaded, study, directory, trials)
    if as_json:
        typer.echo(json.dumps({"files": [str(p) for p in written], "skipped": skipped}))
        return
    for path in written:
        out.print(str(path), highlight=False)
    for name, reason in skipped.items():
        out.print(f"{name}: skipped ({reason})", highlight=False)
