"""Database engine, sessions and migrations (SQLite embedded default, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs; create the folder of a SQLite file."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    return url


def make_engine(url: str) -> Engine:
    """An engine tuned per backend (SQLite: WAL and a busy timeout, so threads can share it)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    # No server-side prepared statements: psycopg would prepare a query after five runs and PostgreSQL
    # could then keep a generic plan made while the tables were nearly empty (a sequential scan of
    # transitions, an index scan on match_keys' key type alone), which a growing backfill pays for on
    # every batch. Unprepared statements are planned with their real values each time; they also
    # work behind PgBouncer in transaction mode.
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args={"prepare_threshold": None}
    )


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def is_current(engine: Engine) -> bool:
    """True when the schema has been migrated (used by readiness checks)."""
    return inspect(engine).has_table("alembic_version") and inspect(engine).has_table("people")


class Store:
    """Owns the engine and hands out sessions; one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def refresh_statistics(self, tables: tuple[str, ...]) -> bool:
        """Re-sample PostgreSQL's planner statistics of ``tables``; returns whether it did.

        A bulk load outgrows the statistics faster than autovacuum re-samples them (or never, where
        autovacuum is off), and plans made for a near-empty table then scan the whole table per
        query. SQLite plans with its indexes without statistics, so nothing is done there.
        """
        if self.engine.dialect.name != "postgresql":
            return False
        preparer = self.engine.dialect.identifier_preparer
        with self.engine.begin() as conn:
            conn.execute(text(f"ANALYZE {', '.join(preparer.quote(t) for t in tables)}"))
        return True

    def upgrade(self) -> None:
        """Migrate this store's database to the newest schema."""
        upgrade(self.url)

    def dispose(self) -> None:
        self.engine.dispose()
