"""``hpo tenants set|list``: per-tenant quotas, on the database directly."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from service.commands.common import Failure, JsonOpt, app, out
from service.commands.database import DatabaseOpt, database

if TYPE_CHECKING:  # the store (SQLAlchemy) is imported when a tenants command runs
    from service.auth.quotas import Quota

tenants_app = typer.Typer(help="Per-tenant quotas.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")


@tenants_app.command("set")
def set_quota(
    tenant: Annotated[str, typer.Argument(help="Tenant name.")],
    max_running_studies: Annotated[int | None, typer.Option(min=1)] = None,
    max_trials_per_study: Annotated[int | None, typer.Option(min=1)] = None,
    max_gpus_per_trial: Annotated[float | None, typer.Option(min=0)] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Set a tenant's own limits (the ones not given fall back to the service defaults)."""
    from service.auth.keys import TENANT_PATTERN
    from service.auth.quotas import Quota, QuotaStore

    if not TENANT_PATTERN.match(tenant):
        raise Failure(f"tenant {tenant!r}: use 1-63 lowercase letters, digits, '-' or '_'")
    quota = Quota(max_running_studies, max_trials_per_study, max_gpus_per_trial)
    with database(database_url) as engine:
        QuotaStore(engine).set(tenant, quota)
    typer.echo(f"tenant {tenant}: {_describe(quota)}")


@tenants_app.command("list")
def list_quotas(database_url: DatabaseOpt = None, as_json: JsonOpt = False) -> None:
    """Tenants with their own limits (without the service defaults)."""
    from service.auth.quotas import QuotaStore

    with database(database_url) as engine:
        quotas = QuotaStore(engine).all()
    if as_json:
        typer.echo(json.dumps({t: asdict(q) for t, q in quotas.items()}, indent=2))
        return
    table = Table(title=f"{len(quotas)} tenants with their own limits", title_justify="left")
    for column in ("tenant", "max running studies", "max trials per study", "max GPUs per trial"):
        table.add_column(column)
    for tenant, q in quotas.items():
        table.add_row(tenant, *(_limit(v) for v in asdict(q).values()))
    out.print(table)


def _describe(quota: Quota) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {_limit(v)}" for k, v in asdict(quota).items())


def _limit(value: object) -> str:
    return "default" if value is None else str(value)
