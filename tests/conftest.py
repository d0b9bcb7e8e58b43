"""Shared fixtures: real SQLite and PostgreSQL stores, a real Redis. A missing service fails loudly."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import structlog

from sync.store.db import Store, upgrade

PG_ADMIN_URL = os.environ.get("CLOSEDLOOP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _redis_test_url() -> str:
    """The suite's own Redis database; each parallel test worker (gw0, gw1, ...) the next one up."""
    base = os.environ.get("CLOSEDLOOP_TEST_REDIS", "redis://127.0.0.1:6379/9")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return base
    root, _, db = base.rpartition("/")
    return f"{root}/{int(db) + int(worker[2:])}"


REDIS_TEST_URL = _redis_test_url()
FULL_PROFILE = os.environ.get("CLOSEDLOOP_TEST_PROFILE") == "full"


def _new_pg_database() -> tuple[str, str]:
    name = f"closedloop_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:  # pragma: no cover - environment failure
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN_URL} for integration tests: {exc}", pytrace=False)
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def _drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, dropped afterwards."""
    name, url = _new_pg_database()
    upgrade(url)
    try:
        yield url
    finally:
        _drop_pg_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh, migrated SQLite database file."""
    url = f"sqlite:///{tmp_path / 'closedloop.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same tests on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'closedloop.db'}"
        upgrade(url)
        s = Store(url)
        yield s
        s.dispose()
        return
    name, url = _new_pg_database()
    upgrade(url)
    s = Store(url)
    try:
        yield s
    finally:
        s.dispose()
        _drop_pg_database(name)


@pytest.fixture
def redis_url() -> str:
    """A real Redis database, emptied first."""
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as exc:  # pragma: no cover - environment failure
        pytest.fail(f"Redis is required at {REDIS_TEST_URL} for integration tests: {exc}", pytrace=False)
    return REDIS_TEST_URL


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Each test starts with structlog's defaults: a level set by an earlier test (e.g. ERROR for a CLI
    run) must not hide the warnings another test captures, whatever order the tests run in."""
    yield
    structlog.reset_defaults()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run in ``make test-full`` only; ``make test`` keeps within its time budget."""
    if FULL_PROFILE:
        return
    skip = pytest.mark.skip(reason="slow: runs in make test-full (CLOSEDLOOP_TEST_PROFILE=full)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
