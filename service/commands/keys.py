"""``hpo keys create|list|revoke``: API keys, managed on the database directly."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from service.commands.common import JsonOpt, app, out
from service.commands.database import DatabaseOpt, database

if TYPE_CHECKING:  # the store (SQLAlchemy) is imported when a keys command runs
    from service.auth.keys import ApiKey

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for.")],
    admin: Annotated[bool, typer.Option("--admin", help="See and manage every tenant.")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Create a key; it is printed once, alone on the last line, and stored only hashed."""
    from service.auth.keys import KeyStore

    with database(database_url) as engine:
        store = KeyStore(engine)
        new = store.create(tenant, admin=admin)
    role = "admin" if admin else "tenant"
    typer.echo(f"key {new.key.key_id} for tenant {tenant} ({role}); store it now, it is not kept:")
    typer.echo(new.secret)


@keys_app.command("list")
def list_keys(database_url: DatabaseOpt = None, as_json: JsonOpt = False) -> None:
    """Every key without its secret."""
    from service.auth.keys import KeyStore

    with database(database_url) as engine:
        store = KeyStore(engine)
        keys = store.list()
    if as_json:
        typer.echo(json.dumps([_public(k) for k in keys], indent=2))
        return
    table = Table(title=f"{len(keys)} keys", title_justify="left")
    for column in ("key id", "tenant", "admin", "created", "revoked"):
        table.add_column(column)
    for k in keys:
        table.add_row(
            k.key_id,
            k.tenant,
            "yes" if k.admin else "no",
            k.created_at.isoformat(timespec="seconds"),
            k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "-",
        )
    out.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (hpo_<key id>_…).")],
    database_url: DatabaseOpt = None,
) -> None:
    """Revoke a key: requests with it fail from now on."""
    from service.auth.keys import KeyStore

    with database(database_url) as engine:
        store = KeyStore(engine)
        key = store.revoke(key_id.removeprefix("hpo_").split("_")[0])
    typer.echo(f"key {key.key_id} of tenant {key.tenant} revoked")


def _public(key: ApiKey) -> dict[str, object]:
    return {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "admin": key.admin,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }
