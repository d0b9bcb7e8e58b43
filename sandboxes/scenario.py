"""A whole closed loop on the sandboxes: seeded marketing population, scripted sales team, Closedloop.

Used by ``closedloop demo``, the end-to-end tests and the benchmarks. Simulated time moves in
steps; within a step every seeding and sales action happens at its own due time, then Closedloop
polls and syncs until both systems are quiet. A step never holds two sales actions of one person,
so every stage a person passes through is observed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sandboxes.common import SimClock
from sandboxes.ground_truth import GroundTruth
from sandboxes.marketo.people import MarketoPeople
from sandboxes.marketo.population import MarketoSeedTarget
from sandboxes.population import PopulationSeeder, advance_clock_to, generate_population
from sandboxes.sales_team import QUIET_ACTIONS, SalesTeam, ScriptedTeam, TeamRates
from sandboxes.sales_team_hubspot import HubSpotSalesTeam
from sandboxes.server import Sandboxes, start_sandboxes
from sync import operations
from sync.config import Settings
from sync.runtime import Runtime
from sync.setup import run_setup
from sync.store.db import upgrade

Progress = Callable[[str, dict[str, Any]], None]
DEFAULT_START = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
MAPPINGS = Path(__file__).parents[1] / "mappings"
# The default mapping of one HubSpot portal in both roles (CLOSEDLOOP_SFA=hubspot).
HUBSPOT_ONLY_MAPPING = MAPPINGS / "hubspot-only.yaml"


@dataclass
class ScenarioConfig:
    """What to simulate and where Closedloop keeps its state."""

    workdir: Path
    ma: Literal["hubspot", "marketo"] = "hubspot"  # the marketing tool (Salesforce is the sales CRM)
    people: int = 2000
    seed: int = 7
    locale: Literal["en", "ja", "mixed"] = "en"
    span_days: int = 30
    start: datetime = DEFAULT_START
    # The longest stretch of simulated time between two polls. A step never holds two sales actions
    # of one person (see _safe_horizon), so a longer one costs no observed stage; it cuts poll rounds,
    # which is where a run's wall time goes (133 steps of 12 h vs 36 of 48 h for a 60-person run).
    max_step: timedelta = timedelta(hours=48)
    database_url: str | None = None
    redis_url: str | None = None
    mappings: Path | None = None  # default: CLOSEDLOOP_MAPPINGS, else ./mappings
    embedded_worker: bool = True
    worker_concurrency: int = 4
    hubspot_window_limit: int = 190
    # Simulated time runs thousands of times faster than real time; a faster search allowance keeps
    # the per-simulated-day budget realistic. Contract tests check the real 5/s limit.
    hubspot_search_per_second: int = 5
    # HubSpot's search indexing lag in real seconds (0: none). Without jitter changes become
    # searchable in the order they were made, which a watermark without overlap survives.
    hubspot_search_delay_seconds: float = 0.0
    # Marketo's window is 100 calls per 20 s; like the search allowance above, simulated runs may
    # widen it (both the sandbox's and the one Closedloop keeps). Contract tests check the real one.
    marketo_window_limit: int = 100
    # Share of people whose sales rep makes two changes within one poll interval (see TeamRates).
    fast_rep_share: float = 0.15
    extra_settings: dict[str, Any] = field(default_factory=dict)
    # The sales side: Salesforce (Leads, Opportunities), or deals in the same HubSpot portal.
    sfa: Literal["salesforce", "hubspot"] = "salesforce"
    team_rates: TeamRates | None = None  # the scripted sales team's performance (None: its defaults)


@dataclass
class ScenarioStats:
    """Figures of one run."""

    steps: int = 0
    sync_rounds: int = 0
    tasks: int = 0
    wall_seconds: float = 0.0


class Scenario:
    """Starts the sandboxes and Closedloop, drives simulated time, and reports the ground truth."""

    def __init__(self, config: ScenarioConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.progress = progress or (lambda _event, _data: None)
        self.stats = ScenarioStats()
        self.clock = SimClock(start=config.start, speed=0.0)
        self.boxes: Sandboxes | None = None
        self.runtime: Runtime | None = None
        self.marketing: Any = None  # the marketing tool's people as HubSpot-shaped contacts
        self._dispatched = 0
        self._baseline = 0
        self._worker_ctx: Any = None
        self._saved_env: dict[str, str | None] = {}

    # -- lifecycle ---------------------------------------------------------------------------------

    def settings_env(self) -> dict[str, str]:
        """Environment variables that point a Closedloop process at this scenario."""
        assert self.boxes is not None
        env = dict(self.boxes.env())
        env["CLOSEDLOOP_DATABASE_URL"] = self.database_url
        if self.config.ma == "marketo":
            env["CLOSEDLOOP_MAPPINGS"] = str(self.config.mappings or MAPPINGS / "marketo-salesforce.yaml")
        else:
            env["CLOSEDLOOP_MAPPINGS"] = str(
                self.config.mappings
                or (HUBSPOT_ONLY_MAPPING if self.config.sfa == "hubspot" else None)
                or os.environ.get("CLOSEDLOOP_MAPPINGS")
                or Path("mappings").resolve()
            )
        env["CLOSEDLOOP_MA"] = self.config.ma
        env["CLOSEDLOOP_SFA"] = self.config.sfa
        env["CLOSEDLOOP_MARKETO_WINDOW_LIMIT"] = str(self.config.marketo_window_limit)
        env["CLOSEDLOOP_RETRY_BASE_SECONDS"] = "0.05"
        env["CLOSEDLOOP_RETRY_MAX_SECONDS"] = "1"
        env["CLOSEDLOOP_POLL_OVERLAP"] = "0"
        env["CLOSEDLOOP_HUBSPOT_WINDOW_LIMIT"] = str(self.config.hubspot_window_limit)
        env["CLOSEDLOOP_HUBSPOT_SEARCH_PER_SECOND"] = str(self.config.hubspot_search_per_second)
        if self.config.redis_url:
            env["CLOSEDLOOP_REDIS_URL"] = self.config.redis_url
        for key, value in self.config.extra_settings.items():
            env[f"CLOSEDLOOP_{key.upper()}"] = str(value)
        return env

    @property
    def database_url(self) -> str:
        return self.config.database_url or f"sqlite:///{self.config.workdir / 'closedloop.db'}"

    def start(self) -> None:
        """Start sandboxes, migrate the store, provision properties, seed the plan, start workers."""
        cfg = self.config
        cfg.workdir.mkdir(parents=True, exist_ok=True)
        self.boxes = start_sandboxes(
            cfg.workdir / "sandbox",
            clock=self.clock,
            hubspot_kwargs={
                "window_limit": cfg.hubspot_window_limit,
                "search_per_second": cfg.hubspot_search_per_second,
                "search_delay_seconds": cfg.hubspot_search_delay_seconds,
            },
            marketo=cfg.ma == "marketo",
            marketo_kwargs={"window_limit": cfg.marketo_window_limit},
        )
        env = self.settings_env()
        self._saved_env = {key: os.environ.get(key) for key in env}
        for key, value in env.items():
            os.environ[key] = value
        settings = Settings()
        upgrade(settings.database_url)
        self.runtime = Runtime.from_settings(settings)
        operations.configure(self.runtime)
        from workers.celery_app import configure

        celery_app = configure(settings)
        mapping, _ = self.runtime.mappings.get()
        run_setup(mapping, self.runtime.ma, self.runtime.sfa)
        self.contacts = contacts = generate_population(
            cfg.people, seed=cfg.seed, locale=cfg.locale, start=cfg.start, span_days=cfg.span_days
        )
        if self.boxes.marketo is not None:
            self.marketing = MarketoPeople(self.boxes.marketo)
            target: Any = MarketoSeedTarget(self.boxes.marketo)
        else:
            self.marketing = target = self.boxes.hubspot
        self.seeder = PopulationSeeder(target, contacts, self.clock)
        rates = self.config.team_rates or TeamRates(fast_share=cfg.fast_rep_share)
        self.team: ScriptedTeam = (
            HubSpotSalesTeam(self.boxes.hubspot, self.clock, seed=cfg.seed, rates=rates)
            if cfg.sfa == "hubspot"
            else SalesTeam(self.boxes.salesforce, self.marketing, self.clock, seed=cfg.seed, rates=rates)
        )
        if cfg.embedded_worker:
            from sync.embedded import embedded_worker

            self._worker_ctx = embedded_worker(celery_app, concurrency=cfg.worker_concurrency, beat=False)
            self._worker_ctx.__enter__()
        self.progress("started", {"people": cfg.people, **self.boxes.info()})

    def stop(self) -> None:
        """Stop workers and sandboxes."""
        if self._worker_ctx is not None:
            self._worker_ctx.__exit__(None, None, None)
            self._worker_ctx = None
        operations.configure(None)
        for key, value in self._saved_env.items():  # the next scenario starts clean
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}
        if self.runtime is not None:
            self.runtime.store.dispose()
        if self.boxes is not None:
            self.boxes.stop()

    # -- driving -----------------------------------------------------------------------------------

    def run(self, until_quiet: bool = True) -> ScenarioStats:
        """Drive simulated time until every seeding and sales action is done and the sync is quiet."""
        began = time.monotonic()
        while True:
            self.team.discover()  # plans of Leads created by the last sync count for the horizon
            next_seed, next_sale = self.seeder.next_due(), self.team.next_due()
            pending = [t for t in (next_seed, next_sale) if t is not None]
            if not pending:
                # Leads created in the last sync round may still add sales plans.
                self.sync_until_quiet()
                self.team.discover()
                if self.team.next_due() is None:
                    break
                continue
            step_end = min(min(pending), self.clock.now()) + self.config.max_step
            horizon = self._safe_horizon()
            if horizon is not None and horizon < step_end:
                step_end = max(horizon - timedelta(microseconds=1), min(pending))
            self._run_actions_until(step_end)
            self.stats.steps += 1
            self.sync_until_quiet()
            if self.stats.steps % 10 == 0:
                self.progress(
                    "step",
                    {
                        "now": self.clock.now().isoformat(),
                        "seeded": len(self.seeder.ids),
                        "leads": len(self.team.handed_over()),
                        "actions": len(self.team.executed),
                        "pending": self.team.pending() + self.seeder.pending(),
                    },
                )
        self.stats.wall_seconds = time.monotonic() - began
        return self.stats

    def _safe_horizon(self) -> datetime | None:
        """The earliest time a person would get a second sales action within one step."""
        done: dict[str, int] = {}
        for action in self.team.executed:
            done[action.lead_id] = done.get(action.lead_id, 0) + 1
        horizon: datetime | None = None
        for lead_id, plan in self.team.plans.items():
            # A fast rep's second change is meant to land in the same poll interval as the first;
            # a quiet action (an owner, a sheet, a survey answer) changes no stage.
            remaining = [
                a
                for a in plan[done.get(lead_id, 0) :]
                if not a.details.get("fast") and a.kind not in QUIET_ACTIONS
            ]
            if len(remaining) >= 2 and (horizon is None or remaining[1].due < horizon):
                horizon = remaining[1].due
        return horizon

    def _run_actions_until(self, step_end: datetime) -> None:
        while True:
            dues = [
                t for t in (self.seeder.next_due(), self.team.next_due()) if t is not None and t <= step_end
            ]
            if not dues:
                break
            due = min(dues)
            advance_clock_to(self.clock, due)
            self.seeder.run_due(due)
            self.team.run_due(due)
        advance_clock_to(self.clock, step_end)

    def sync_until_quiet(self, max_rounds: int = 10) -> None:
        """Poll both systems and sync what changed, until a round finds nothing."""
        for _ in range(max_rounds):
            self.stats.sync_rounds += 1
            found = operations.poll("ma") + operations.poll("sfa")
            # A person changed on both sides is synced once, in full batches (not once per system).
            ids = list(dict.fromkeys(cid for batch in found for cid in batch))
            if not ids:
                if not self._search_lagging():
                    return
                continue  # a change not searchable yet is not quiet: poll again once it is
            assert self.runtime is not None
            size = self.runtime.settings.batch_size
            self.dispatch([ids[i : i + size] for i in range(0, len(ids), size)])

    def _search_lagging(self, timeout: float = 30.0) -> bool:
        """Whether HubSpot's search index was behind; if so, wait until it has caught up."""
        assert self.boxes is not None
        hubspot = self.boxes.hubspot
        if not hubspot.search_lagging():
            return False
        deadline = time.monotonic() + timeout
        while hubspot.search_lagging() and time.monotonic() < deadline:
            time.sleep(0.02)
        return True

    def dispatch(self, batches: list[list[str]], timeout: float = 300.0) -> None:
        """Send sync tasks to the workers and wait until they have all finished."""
        from workers import progress
        from workers.tasks import sync_people

        redis_url = self.config.redis_url
        start_count = progress.done_count("sync_people", redis_url) if not self._dispatched else None
        if start_count is not None:
            self._baseline = start_count
        for batch in batches:
            sync_people.delay(batch)
        self._dispatched += len(batches)
        self.stats.tasks += len(batches)
        self._wait_until_done(redis_url, timeout)

    def _wait_until_done(self, redis_url: str | None, timeout: float, grace: float = 3.0) -> None:
        """Wait until every sent task has finished and the broker holds none, queued or unacknowledged.

        Counts alone are not enough with a real broker: a SIGKILLed worker's task is redelivered
        (counted twice if it had finished), a task that failed to count while Redis was down never
        counts. So the broker being empty decides; the count only ends the wait early, and an empty
        broker that stays empty for ``grace`` seconds ends it too. Redis outages are waited out.
        """
        import redis

        from workers import progress

        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"sync tasks did not finish within {timeout}s")
            try:
                counted = progress.done_count("sync_people", redis_url) - self._baseline >= self._dispatched
                quiet = _broker_empty(redis_url)
            except redis.exceptions.RedisError:  # the broker is restarting: wait it out
                quiet_since = None
                time.sleep(0.2)
                continue
            if not redis_url and counted:
                return
            if quiet:
                quiet_since = quiet_since or time.monotonic()
                if counted or time.monotonic() - quiet_since >= grace:
                    return
            else:
                quiet_since = None
            time.sleep(0.02)

    def ground_truth(self) -> GroundTruth:
        """What really happened, built from the population and the sales team only."""
        return GroundTruth.build(
            self.contacts,
            self.seeder.ids,
            self.team.executed,
            self.team.handed_over(),
            mql_times=self.seeder.mql_times(),
            created_times=self.seeder.created_times(),
        )


def _broker_empty(redis_url: str | None) -> bool:
    """True when the Redis broker holds no queued and no unacknowledged (in-flight) message."""
    if not redis_url:
        return True
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        if client.hlen("unacked"):
            return False
        return not any(client.llen(key) for key in client.scan_iter(match="celery*", _type="list"))
    finally:
        client.close()
