"""``closedloop mappings lint|schema|preview``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from sync.cli.app import mappings_app


@mappings_app.command("lint")
def lint(paths: list[Path] = typer.Argument(..., help="Mapping files or directories")) -> None:
    """Check mappings; print every error as PATH:LINE:COL: message; exit 1 if any."""
    from sync.mapping import lint_paths

    errors = lint_paths(paths)
    for error in errors:
        typer.echo(str(error))
    if errors:
        typer.echo(f"{len(errors)} error(s)", err=True)
        raise typer.Exit(1)
    typer.echo("mappings OK", err=True)


@mappings_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of the mapping language (for editor completion)."""
    from sync.mapping.schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@mappings_app.command("preview")
def preview(
    record: Path = typer.Argument(..., help="A HubSpot contact, Marketo lead or Salesforce record as JSON"),
    source: str = typer.Option(..., "--from", help="hubspot, marketo or salesforce"),
    mapping_path: Path = typer.Option(Path("mappings"), "--mapping", help="Mapping file or directory"),
) -> None:
    """Show the standard stage a record implies and what would be written, without writing anything."""
    from sync.mapping import MappingError, load_mapping
    from sync.mapping.preview import MA_SOURCES, SOURCES
    from sync.mapping.preview import preview as run_preview

    if source not in SOURCES:
        raise typer.BadParameter(f"must be one of {', '.join(SOURCES)}", param_hint="--from")
    try:
        mapping = load_mapping(mapping_path)
    except MappingError as exc:
        for error in exc.errors:
            typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    try:
        data: Any = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        typer.echo(f"{record}: cannot read JSON: {exc}", err=True)
        raise typer.Exit(1) from None
    if isinstance(data, dict) and isinstance(data.get("properties"), dict) and source == "hubspot":
        data = data["properties"]
    if isinstance(data, dict) and isinstance(data.get("result"), list) and source == "marketo":
        data = data["result"][0] if data["result"] else None  # a Get Lead by Id response as saved
    # A Salesforce record's closed loop goes to the marketing tool the mapping is written for.
    ma = source if source in MA_SOURCES else _ma_of(mapping_path)
    if not isinstance(data, dict):
        typer.echo(f"{record}: expected a JSON object", err=True)
        raise typer.Exit(1)
    result = run_preview(mapping, source, data, ma=ma)  # type: ignore[arg-type]
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False, default=str))


def _ma_of(mapping_path: Path) -> str:
    """The marketing tool named by a mapping file's name (``marketo-salesforce.yaml``), else settings."""
    if mapping_path.name.startswith("marketo"):
        return "marketo"
    return os.environ.get("CLOSEDLOOP_MA", "hubspot")
