"""``hpo``: serve the API, validate and submit studies, follow them, query and plot them.

The commands live in ``service.commands``; this module adds ``serve``, ``validate`` and ``demo``
and is the console entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import httpx
import typer

from service.client import DEFAULT_URL, ApiError, Client
from service.commands import actions, keys, plots, reads, tenants, whatif  # noqa: F401
from service.commands.common import Failure, KeyOpt, UrlOpt, app, connect, out, read_text
from service.commands.progress import follow
from service.schemas import TrialsPublic


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    database_url: Annotated[
        str | None, typer.Option(help="sqlite:///… or postgresql+psycopg://…")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Existing cluster: http://HEAD:8265 or ray://HEAD:10001.")
    ] = None,
    log_format: Annotated[
        Literal["json", "text"] | None,
        typer.Option(help="Log lines as JSON objects (default) or text; env HPO_LOG_FORMAT."),
    ] = None,
) -> None:
    """Start the API (and a local Ray head unless --ray-address/RAY_ADDRESS is given)."""
    import uvicorn
    from pydantic import ValidationError

    from service.app import UnsafeConfiguration, create_app
    from service.observability.logs import configure_logging
    from service.settings import Settings

    overrides: dict[str, object] = {"host": host, "port": port}
    if database_url:
        overrides["database_url"] = database_url
    if ray_address:
        overrides["ray_address"] = ray_address
    if log_format:
        overrides["log_format"] = log_format
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        configure_logging(settings.log_format)
        service = create_app(settings)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = "HPO_" + "_".join(str(part) for part in problem["loc"]).upper()
        raise Failure(f"setting {field}: {problem['msg']}") from None
    except UnsafeConfiguration as exc:
        raise Failure(str(exc)) from None
    uvicorn.run(
        service,
        host=host,
        port=port,
        log_level="info",
        log_config=None,
        **settings.uvicorn_limits(),
    )


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Study spec (YAML or JSON).")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    offline: Annotated[
        bool, typer.Option(help="Check locally, without asking the server.")
    ] = False,
) -> None:
    """Check a study file: the server's own verdict when it is reachable (its data roots, file
    headers and your quotas; nothing is stored), else offline with the same rules."""
    from search_spaces.loader import SpecSyntaxError, parse_text
    from search_spaces.spec import SpecError, validate_spec

    text = read_text(file)
    yaml_syntax = file.suffix != ".json"
    if not offline:
        client = Client(url, api_key=api_key, timeout_s=30)
        try:
            verdict = client.validate(text, yaml_syntax=yaml_syntax)
        except ApiError as exc:
            raise Failure(f"{file}: {exc}") from None
        except httpx.HTTPError:
            out.print(f"(no service at {url}: checking offline, without its data roots)")
        else:
            out.print(
                f"{file}: valid on {url} ({verdict['task']}, {verdict['algorithm']}, "
                f"{verdict['n_trials']} trials)"
            )
            return
        finally:
            client.close()
    try:
        spec = validate_spec(parse_text(text, yaml_syntax=yaml_syntax), check_files=True)
    except (SpecSyntaxError, SpecError) as exc:
        raise Failure(f"{file}: {exc}") from None
    out.print(f"{file}: valid offline ({spec.task.type}, {spec.algorithm}, "
              f"{spec.budget.n_trials} trials)")  # fmt: skip


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port of the demo server.")] = 8000,
    spec: Annotated[Path | None, typer.Option(help="Study file.")] = None,
) -> None:
    """Start the service on its defaults, run the quickstart study end to end, show the best."""
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
        with connect(url) as client:
            _wait_healthy(client, server)
            study = client.submit(read_text(spec))
            out.print(f"submitted study {study.id}; Ray dashboard: {_dashboard(client, study.id)}")
            final = follow(client, study.id, out)
            if final.status != "SUCCEEDED":
                raise typer.Exit(1)
            found = client.best(study.id)
            trials = found.data if isinstance(found, TrialsPublic) else [found]
            for trial in trials:
                out.print(
                    f"[bold]best trial #{trial.number}[/]: value {trial.values or trial.value}"
                )
                out.print_json(json.dumps({"params": trial.params, "metrics": trial.metrics}))
            out.print(
                f"the trials are in ./hpo.db (Optuna study {final.optuna_study_name}); "
                f"next: hpo trials {study.id} --url {url}, or browse {url}/dashboard"
            )
    finally:
        server.terminate()
        server.wait(timeout=60)


def _dashboard(client: Client, study_id: str) -> str:
    for _ in range(120):
        found = client.study(study_id).dashboard_url
        if found:
            return found
        time.sleep(0.25)
    return "(not started yet)"


def _wait_healthy(client: Client, server: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise Failure("the server exited during start-up (see .hpo/demo-server.log)")
        try:
            if client.health().get("status") == "ok":
                return
        except (httpx.HTTPError, ApiError):
            pass
        time.sleep(0.25)
    raise Failure(f"the server did not become healthy within {timeout_s:.0f} s")


if __name__ == "__main__":
    app()
