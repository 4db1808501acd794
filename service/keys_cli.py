"""``optimlab keys create|list|revoke``: API keys, made on the configured database directly
(like ``optimlab migrate``), so that the first key needs no key."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from optimlab.service.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

app = typer.Typer(help="API keys: create (printed once), list, revoke.", no_args_is_help=True,
                  rich_markup_mode=None)


def _engine() -> Engine:
    from optimlab.service.db.connection import make_engine

    return make_engine(get_settings().database)


@app.command()
def create(name: Annotated[str, typer.Option("--name", metavar="NAME",
                                             help="What the key is for (a person, a CI).")],
           owner: Annotated[str | None, typer.Option(
               "--owner", metavar="OWNER",
               help="Who its jobs, sweeps and data sets belong to (default: NAME); keys of "
                    "one owner see the same things.")] = None,
           admin: Annotated[bool, typer.Option(
               "--admin", help="The key sees and may act on everyone's.")] = False) -> None:
    """Make a key and print it, once: only its hash is stored."""
    from optimlab.service.jobs import keys

    db = _engine()
    try:
        made = keys.create_key(db=db, name=name, owner=owner, admin=admin)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--name/--owner") from None
    finally:
        db.dispose()
    row = made.row
    typer.echo(made.key)
    typer.echo(f"key {row.id} ({row.name!r}, owner {row.owner!r}"
               f"{', admin' if row.admin else ''}): shown once, keep it; clients send it as "
               "Authorization: Bearer <key> (optimlab --key, OPTIMLAB_API_KEY)", err=True)


@app.command("list")
def list_keys() -> None:
    """Every key: id, name, owner, admin, created, last used, revoked (never the key)."""
    from optimlab.service.jobs import keys

    db = _engine()
    try:
        rows = keys.list_keys(db=db)
    finally:
        db.dispose()
    header = ("ID", "NAME", "OWNER", "ADMIN", "CREATED", "LAST USED", "REVOKED")
    table = [header] + [(str(r.id), r.name, r.owner, "yes" if r.admin else "no",
                         _when(r.created_at), _when(r.last_used_at), _when(r.revoked_at))
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                   .rstrip())


@app.command()
def revoke(key_id: Annotated[int, typer.Argument(metavar="ID", help="The key's id (keys list).")]
           ) -> None:
    """Revoke a key: requests with it answer 401 from now on."""
    from optimlab.service.jobs import keys

    db = _engine()
    try:
        keys.revoke_key(db=db, key_id=key_id)
    except keys.KeyNotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    typer.echo(f"key {key_id} revoked")


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")
