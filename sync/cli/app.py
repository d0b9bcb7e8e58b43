"""The root Typer app and its sub-apps; commands register themselves on import."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from sync.cli.errors import operator_errors


class OperatorGroup(TyperGroup):
    """The root command group: every command runs inside :func:`operator_errors`."""

    def invoke(self, ctx: Any) -> Any:
        with operator_errors():
            return super().invoke(ctx)


app = typer.Typer(
    name="closedloop",
    help="Closed-loop sync between a marketing tool and a sales CRM, with a standard funnel and SLAs.",
    cls=OperatorGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _warn_unknown_variables() -> None:
    """Closed-loop sync between a marketing tool and a sales CRM, with a standard funnel and SLAs."""
    from sync.config import unknown_variables

    for warning in unknown_variables():
        typer.echo(f"warning: {warning}", err=True)


config_app = typer.Typer(help="Settings: validate and show.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
mappings_app = typer.Typer(help="Mapping files: lint, schema, preview.", no_args_is_help=True)
sandbox_app = typer.Typer(
    help="HubSpot and Salesforce sandboxes for trying and testing.", no_args_is_help=True
)
funnel_app = typer.Typer(help="Funnel report and KPI planning.", no_args_is_help=True)
reporting_app = typer.Typer(help="The reporting schema for BI tools.", no_args_is_help=True)
errors_app = typer.Typer(help="Recorded sync errors.", invoke_without_command=True)

app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(mappings_app, name="mappings")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(funnel_app, name="funnel")
app.add_typer(errors_app, name="errors")
app.add_typer(reporting_app, name="reporting")
