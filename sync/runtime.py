"""Wires settings into one process's store, mapping, connectors, engine, poller and inbox processor.

The mapping is hot-reloaded: a changed file that fails lint is reported with ``file:line:col`` and
the last good mapping stays in force.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import requests

from sync import metrics
from sync.config import Settings
from sync.connectors.contract import MarketingConnector, SalesConnector
from sync.connectors.errors import RetryPolicy
from sync.connectors.ratelimit import make_storage
from sync.connectors.registry import Edges, open_edges
from sync.engine import Engine
from sync.inbox_processor import InboxProcessor
from sync.logs import get_logger
from sync.mapping import Mapping, MappingError, load_mapping
from sync.poller import Poller
from sync.store.db import Store

log = get_logger(__name__)


class MappingHolder:
    """Keeps the last good mapping; reloads when the files change, refusing versions that fail lint."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp = self._current_stamp()
        self.mapping: Mapping = load_mapping(path)
        self.last_errors: list[str] = []

    def _current_stamp(self) -> tuple[tuple[str, float], ...]:
        files = sorted(self.path.glob("*.yaml")) if self.path.is_dir() else [self.path]
        return tuple((str(f), f.stat().st_mtime) for f in files if f.exists())

    def get(self) -> tuple[Mapping, bool]:
        """The mapping in force, and whether it changed since the previous call."""
        with self._lock:
            stamp = self._current_stamp()
            if stamp == self._stamp:
                return self.mapping, False
            self._stamp = stamp
            try:
                self.mapping = load_mapping(self.path)
            except MappingError as exc:
                self.last_errors = [str(e) for e in exc.errors]
                log.error("mapping_rejected_keeping_last_good", errors=self.last_errors[:20])
                metrics.errors_total.labels(category="mapping").inc()
                return self.mapping, False
            self.last_errors = []
            log.info("mapping_reloaded", path=str(self.path))
            return self.mapping, True


@dataclass
class Runtime:
    """Everything one Closedloop process needs, built once from settings."""

    settings: Settings
    store: Store
    mappings: MappingHolder
    edges: Edges
    retry_policy: RetryPolicy
    _engine: Engine | None = field(default=None, init=False)
    _poller: Poller | None = field(default=None, init=False)
    _connectors: tuple[MarketingConnector, SalesConnector] | None = field(default=None, init=False)

    @classmethod
    def from_settings(cls, settings: Settings, http_session: requests.Session | None = None) -> Runtime:
        """Build the runtime; raises with a clear message when settings are incomplete."""
        store = Store(settings.database_url)
        mappings = MappingHolder(settings.mappings)
        policy = RetryPolicy(
            max_attempts=settings.retry_max_attempts,
            base_seconds=settings.retry_base_seconds,
            max_seconds=settings.retry_max_seconds,
        )
        edges = open_edges(settings, policy, make_storage(settings.redis_url), http_session)
        return cls(settings, store, mappings, edges, policy)

    def _refresh(self) -> Mapping:
        mapping, changed = self.mappings.get()
        if changed or self._engine is None or self._poller is None or self._connectors is None:
            from sync.sla_hooks import SlaHooks

            hooks = SlaHooks(mapping)
            ma, sfa = self._connectors = self.edges.bind(self.settings, mapping)
            self._engine = Engine(self.store, mapping, ma, sfa, on_transition=hooks.on_transition)
            self._poller = Poller(self.store, ma, sfa, overlap=timedelta(seconds=self.settings.poll_overlap))
        return mapping

    @property
    def ma(self) -> MarketingConnector:
        """The marketing-role connector bound to the mapping in force."""
        self._refresh()
        assert self._connectors is not None
        return self._connectors[0]

    @property
    def sfa(self) -> SalesConnector:
        """The sales-role connector bound to the mapping in force."""
        self._refresh()
        assert self._connectors is not None
        return self._connectors[1]

    @property
    def engine(self) -> Engine:
        self._refresh()
        assert self._engine is not None
        return self._engine

    @property
    def poller(self) -> Poller:
        self._refresh()
        assert self._poller is not None
        return self._poller

    @property
    def inbox(self) -> InboxProcessor:
        return InboxProcessor(self.store, self.poller, self.engine)
