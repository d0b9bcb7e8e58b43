"""``closedloop config check`` and ``closedloop db upgrade``."""

from __future__ import annotations

import json

import typer

from sync.cli.app import config_app, db_app
from sync.config import Settings, check_settings, load_settings, mask_url


@config_app.command("check")
def config_check() -> None:
    """Validate every setting, report all problems at once, print the effective settings (secrets masked)."""
    settings, problems = check_settings()
    if settings is not None and settings.mappings.exists():
        from sync.mapping import MappingError, load_mapping

        try:  # the mapping the service would load, not every file of its folder
            load_mapping(settings.mappings)
        except MappingError as exc:
            problems += [f"CLOSEDLOOP_MAPPINGS: {error}" for error in exc.errors]
    if settings is not None:
        typer.echo(json.dumps(settings.masked(), indent=2, default=str))
    if problems:
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1)
    typer.echo("settings OK", err=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Alembic revision to upgrade to")) -> None:
    """Apply database migrations."""
    from sync.store.db import upgrade

    settings = load_settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {mask_url(settings.database_url)} upgraded to {revision}")
    _publish_stages(settings)


def _publish_stages(settings: Settings) -> None:
    """Keep the reporting schema's stage table in step with the mapping (a bad mapping only warns)."""
    from sync.mapping import MappingError, load_mapping
    from sync.reporting_schema import has_reporting_schema, publish_stages
    from sync.store.db import Store

    try:
        mapping = load_mapping(settings.mappings)
    except (MappingError, OSError) as exc:
        typer.echo(f"warning: reporting stages not published, the mapping did not load: {exc}", err=True)
        return
    store = Store(settings.database_url)
    try:
        if has_reporting_schema(store.engine):  # not when upgrading only to an older revision
            publish_stages(store, mapping)
    finally:
        store.dispose()
