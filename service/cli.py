"""``hpo``: serve the API, submit studies, follow them and read the best trial."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from service.client import ApiError, Client

app = typer.Typer(help="Hyperparameter search for fine-tuning runs.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

UrlOpt = Annotated[str, typer.Option("--url", envvar="HPO_URL", help="Service URL.")]
DEFAULT_URL = "http://127.0.0.1:8000"


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False)
    return typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    database_url: Annotated[
        str | None, typer.Option(help="sqlite:///… or postgresql+psycopg://…")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray dashboard address of an existing cluster.")
    ] = None,
) -> None:
    """Start the API (and a local Ray head unless --ray-address/RAY_ADDRESS is given)."""
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    overrides: dict[str, object] = {"host": host, "port": port}
    if database_url:
        overrides["database_url"] = database_url
    if ray_address:
        overrides["ray_address"] = ray_address
    settings = Settings(**overrides)  # type: ignore[arg-type]
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="Study spec (YAML or JSON).")]) -> None:
    """Check a study file offline with the server's rules."""
    from search_spaces.loader import SpecSyntaxError, parse_text
    from search_spaces.spec import SpecError, validate_spec

    try:
        spec = validate_spec(parse_text(_read(file), yaml_syntax=file.suffix != ".json"))
    except (SpecSyntaxError, SpecError) as exc:
        raise _fail(f"{file}: {exc}") from None
    out.print(f"{file}: valid ({spec.algorithm}, {spec.budget.n_trials} trials)")


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="Study spec (YAML or JSON).")],
    wait: Annotated[bool, typer.Option("--wait", help="Follow the study to its end.")] = False,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Submit a study; prints its id (with --wait, follows it and exits 1 if it fails)."""
    with _client(url) as client:
        study = client.submit(_read(file), yaml_syntax=file.suffix != ".json")
        out.print(study.id)
        if wait:
            final = _follow(client, study.id)
            if final != "SUCCEEDED":
                raise typer.Exit(1)


@app.command()
def status(study_id: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Show a study's status and trial counts."""
    with _client(url) as client:
        study = client.study(study_id)
    out.print_json(study.model_dump_json(exclude={"spec"}))


@app.command()
def best(study_id: str, url: UrlOpt = DEFAULT_URL) -> None:
    """Show the best trial of a study."""
    with _client(url) as client:
        trial = client.best(study_id)
    out.print_json(trial.model_dump_json())


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port of the demo server.")] = 8000,
    spec: Annotated[Path | None, typer.Option(help="Study file.")] = None,
) -> None:
    """Start the service on its defaults, run the quickstart study end to end, show the best."""
    import subprocess

    from search_spaces.loader import ready_spec_path

    spec = spec or ready_spec_path("quickstart")
    url = f"http://127.0.0.1:{port}"
    log_path = Path(".hpo") / "demo-server.log"
    log_path.parent.mkdir(exist_ok=True)
    out.print(f"starting the service on {url} (SQLite ./hpo.db, a local Ray; log: {log_path}) …")
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=os.environ.copy(),
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        with _client(url) as client:
            _wait_healthy(client, server)
            study = client.submit(_read(spec))
            out.print(f"submitted study {study.id}; Ray dashboard: {_dashboard(client, study.id)}")
            final = _follow(client, study.id)
            if final != "SUCCEEDED":
                raise typer.Exit(1)
            trial = client.best(study.id)
            out.print(f"[bold]best trial #{trial.number}[/]: value {trial.value}")
            out.print_json(json.dumps({"params": trial.params, "metrics": trial.metrics}))
            out.print(f"the trials are in ./hpo.db (Optuna study {_optuna_name(client, study.id)})")
    finally:
        server.terminate()
        server.wait(timeout=60)


def _dashboard(client: Client, study_id: str) -> str:
    for _ in range(30):
        found = client.study(study_id).dashboard_url
        if found:
            return found
        time.sleep(1)
    return "(not started yet)"


def _optuna_name(client: Client, study_id: str) -> str:
    return client.study(study_id).optuna_study_name


def _wait_healthy(client: Client, server: object, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if getattr(server, "poll")() is not None:  # noqa: B009
            raise _fail("the server exited during start-up (see .hpo/demo-server.log)")
        try:
            if client.health().get("status") == "ok":
                return
        except (httpx.HTTPError, ApiError):
            pass
        time.sleep(1)
    raise _fail(f"the server did not become healthy within {timeout_s:.0f} s")


def _follow(client: Client, study_id: str) -> str:
    last = ""
    while True:
        study = client.study(study_id)
        counts = study.trial_counts
        line = (
            f"{study.status}: {counts.get('COMPLETE', 0)} complete, "
            f"{counts.get('RUNNING', 0)} running, {counts.get('FAIL', 0)} failed; "
            f"best {study.best_value}"
        )
        if line != last:
            out.print(line, highlight=False)
            last = line
        if study.status in ("SUCCEEDED", "FAILED", "CANCELLED"):
            if study.status_reason:
                out.print(study.status_reason, highlight=False)
            return study.status
        time.sleep(2)


def _read(file: Path) -> str:
    try:
        return file.read_text()
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror}") from None


class _client:
    def __init__(self, url: str) -> None:
        self._client = Client(url)

    def __enter__(self) -> Client:
        return self._client

    def __exit__(self, exc_type: object, exc: BaseException | None, _tb: object) -> None:
        self._client.close()
        if isinstance(exc, ApiError):
            raise _fail(str(exc))
        if isinstance(exc, httpx.HTTPError):
            raise _fail(f"cannot reach the service: {exc}")


if __name__ == "__main__":
    app()
