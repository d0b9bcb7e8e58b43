"""The operator-error handler on its own: known mistakes become a masked message, bugs keep their traceback."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from sync.cli.errors import OperatorError, explain, handle_operator_errors
from sync.connectors.errors import PermanentError, TransientError


def test_known_mistakes_are_explained_with_secrets_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSEDLOOP_REDIS_URL", "redis://cache:6379/0?password=redis-hunter2")
    import redis

    message = explain(redis.exceptions.ConnectionError("Connection refused"))
    assert message is not None and "redis-hunter2" not in message
    assert "redis://cache:6379/0?password=***" in message and "CLOSEDLOOP_REDIS_URL" in message
    network = explain(TransientError("hubspot", "network error: ConnectionError", category="network"))
    assert network is not None and "CLOSEDLOOP_HUBSPOT_BASE_URL" in network
    auth = explain(PermanentError("salesforce", "no Salesforce credentials configured", category="auth"))
    assert auth is not None and "CLOSEDLOOP_SALESFORCE_*" in auth
    leaked = explain(OperatorError("see postgresql://app:pg-hunter2@db/x"))
    assert leaked == "see postgresql://app:***@db/x"


def test_bugs_are_not_explained() -> None:
    assert explain(KeyError("x")) is None
    assert explain(ConnectionRefusedError(111, "Connection refused")) is None  # no path: not a file mistake


def test_the_decorator_turns_a_mistake_into_exit_1_and_leaves_bugs_alone() -> None:
    app = typer.Typer()

    @app.command()
    @handle_operator_errors
    def job(bug: bool = False) -> None:
        if bug:
            raise KeyError("a bug")
        raise OperatorError("the queue is full: empty it first")

    @app.command()
    def other() -> None:  # pragma: no cover - only makes ``job`` a subcommand
        pass

    result = CliRunner().invoke(app, ["job"])
    assert result.exit_code == 1 and result.stderr == "error: the queue is full: empty it first\n"
    result = CliRunner().invoke(app, ["job", "--bug"])
    assert isinstance(result.exception, KeyError)
