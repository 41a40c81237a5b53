"""Commands that change things: ``submit``, ``cancel``, ``rm``, ``export``."""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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
    print_json,
    read_text,
)
from service.commands.progress import follow

SpecArg = Annotated[Path, typer.Argument(help="Study spec (YAML or JSON).")]


@app.command()
def submit(
    file: SpecArg,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the study to its end.")] = False,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a study and print its id; with --wait, show live progress and exit 1 unless it
    SUCCEEDED."""
    text = read_text(file)
    with connect(url, api_key) as client:
        study = client.submit(text, yaml_syntax=file.suffix != ".json")
        if not as_json:
            out.print(study.id, highlight=False)
        if wait:
            study = follow(client, study.id, Console(quiet=True) if as_json else out)
        if as_json:
            print_json(study)
    if wait and study.status != "SUCCEEDED":
        raise typer.Exit(1)


@app.command()
def cancel(
    study_id: StudyArg, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None, as_json: JsonOpt = False
) -> None:
    """Stop a queued or running study (its running trials end as failed)."""
    with connect(url, api_key) as client:
        study = client.cancel(study_id)
    emit(study, as_json, lambda s: f"{s.id}: {s.status}")


@app.command("rm")
def remove(study_id: StudyArg, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """Delete a finished study with its trials and events."""
    with connect(url, api_key) as client:
        client.delete(study_id)
    out.print(f"{study_id}: deleted", highlight=False)


@app.command()
def export(
    study_id: StudyArg,
    directory: Annotated[Path, typer.Argument(help="New (or empty) directory to write.")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Write the best trial's model to DIR (loadable with from_pretrained(DIR))."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise Failure(f"{directory} exists and is not an empty directory")
    with tempfile.TemporaryFile() as archive:
        with connect(url, api_key) as client:
            client.download_artifact(study_id, archive)
        archive.seek(0)
        directory.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(fileobj=archive, mode="r:gz") as tar:
                tar.extractall(directory, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise Failure(f"cannot unpack the model archive: {exc}") from None
    out.print(f"best model of {study_id} written to {directory}", highlight=False)
