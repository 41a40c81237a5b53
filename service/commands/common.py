"""What every ``hpo`` command shares: the Typer app, consoles, options and error handling."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import BaseModel
from rich.console import Console, RenderableType

from service.client import DEFAULT_URL, ApiError, Client

app = typer.Typer(
    help="Hyperparameter search for fine-tuning runs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

PIPE_WIDTH = 200


@app.callback()
def _output_width() -> None:
    """Tables written to a pipe or file keep their full width instead of 80 columns."""
    if not out.is_terminal:
        out.width = max(out.width, PIPE_WIDTH)


UrlOpt = Annotated[str, typer.Option("--url", envvar="HPO_URL", help="Service URL.")]
KeyOpt = Annotated[
    str | None, typer.Option("--api-key", envvar="HPO_API_KEY", help="API key (Bearer).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
StudyArg = Annotated[str, typer.Argument(help="Study id.")]


class Failure(typer.Exit):
    """Exit non-zero after printing one readable line on stderr."""

    def __init__(self, message: str, code: int = 1) -> None:
        err.print(f"error: {message}", markup=False, highlight=False)
        super().__init__(code)


@contextmanager
def connect(url: str = DEFAULT_URL, api_key: str | None = None) -> Iterator[Client]:
    """A client whose API and connection errors become one line and exit 1."""
    client = Client(url, api_key=api_key)
    try:
        yield client
    except ApiError as exc:
        raise Failure(str(exc)) from None
    except httpx.HTTPError as exc:
        raise Failure(f"cannot reach the service at {url}: {exc}") from None
    finally:
        client.close()


def print_json(value: BaseModel | list[Any] | dict[str, Any]) -> None:
    """Machine-readable output: plain JSON on stdout, no colours."""
    text = value.model_dump_json(indent=2) if isinstance(value, BaseModel) else None
    if text is None:
        import json

        text = json.dumps(
            [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
            if isinstance(value, list)
            else value,
            indent=2,
        )
    typer.echo(text)


def emit(value: BaseModel, as_json: bool, human: Callable[[Any], RenderableType | str]) -> None:
    """``value`` as JSON for scripts, or as ``human(value)`` (a table, a line) for people."""
    if as_json:
        print_json(value)
    else:
        out.print(human(value), highlight=False)


def read_text(file: Path) -> str:
    """A spec file's text, or one line saying why it cannot be read."""
    try:
        return file.read_text()
    except OSError as exc:
        raise Failure(f"cannot read {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise Failure(f"cannot read {file}: not UTF-8 text") from None
