"""The service's database, opened directly by the admin commands (``hpo keys``, ``hpo tenants``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from service.commands.common import Failure

if TYPE_CHECKING:  # SQLAlchemy is imported when an admin command opens the database
    from sqlalchemy import Engine

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url", envvar="HPO_DATABASE_URL", help="The service database (default ./hpo.db)."
    ),
]


@contextmanager
def database(database_url: str | None) -> Iterator[Engine]:
    """An engine on the service's tables (created or upgraded if needed); database errors and
    refused operations become one line (the URL without its password) and exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from service.auth.keys import KeyProblem
    from service.db import make_engine, redact_url, upgrade_tables
    from service.settings import Settings

    url = database_url or Settings().database_url
    engine = make_engine(url)
    try:
        upgrade_tables(engine)
        yield engine
    except KeyProblem as exc:
        raise Failure(str(exc)) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise Failure(f"database {redact_url(url)}: {reason}") from None
    finally:
        engine.dispose()
