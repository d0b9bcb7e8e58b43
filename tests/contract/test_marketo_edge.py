"""The Marketo edge (sync.connectors.marketo_client) against the Marketo sandbox over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandboxes.common import SimClock
from sync.connectors.errors import RetryPolicy
from sync.connectors.marketo_client import FieldSpec, MarketoEdge, make_marketo_client
from sync.connectors.ratelimit import WindowLimiter, make_storage
from tests.conftest import REDIS_TEST_URL
from tests.contract.marketo_fixtures import MarketoEnv, start_marketo

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FEED = ["New Lead", "Change Data Value", "Change Score", "Merge Leads"]


@pytest.fixture
def marketo_factory() -> Iterator[Callable[..., MarketoEnv]]:
    envs: list[MarketoEnv] = []

    def make(**kwargs: Any) -> MarketoEnv:
        kwargs.setdefault("clock", SimClock(start=START))
        env = start_marketo(**kwargs)
        env.sandbox.add_field("closedloopId", "Closedloop ID")
        env.sandbox.add_field("closedloopStage", "Closedloop Stage")
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.stop()


def _edge(env: MarketoEnv, policy: RetryPolicy | None = None, **kwargs: Any) -> MarketoEdge:
    client = make_marketo_client(env.url, env.sandbox.client_id, env.sandbox.client_secret, **kwargs)
    return MarketoEdge(client, policy or RetryPolicy(max_attempts=6, base_seconds=0.05, max_seconds=1.0))


def test_write_batches_feed_and_token_expiry_end_to_end(marketo_factory: Callable[..., MarketoEnv]) -> None:
    env = marketo_factory(window_limit=100_000)
    sandbox = env.sandbox
    edge = _edge(env)
    cursor = edge.paging_token(START - timedelta(minutes=1))

    records: list[dict[str, Any]] = [
        {"closedloopId": f"cl-{i}", "email": f"p{i}@example.com"} for i in range(599)
    ]
    records.append({"closedloopId": "cl-bad", "closedloopStagee": "typo"})
    sandbox.counter.reset()
    results = edge.upsert(records, "closedloopId")
    assert sandbox.counter.total("/rest/v1/leads.json", method="POST") == 2
    assert [r.status for r in results[:599]] == ["created"] * 599
    bad = results[599]
    assert bad.error is not None and (bad.error.key, bad.error.code) == ("cl-bad", "1006")

    sandbox.clock.advance(timedelta(hours=2))
    sandbox.expire_tokens()  # the client's own clock still trusts its token
    issued = sandbox.tokens.issued
    written_from = sandbox.clock.now().replace(microsecond=0)
    updates = edge.upsert([{"closedloopId": "cl-3", "closedloopStage": "MQL"}], "closedloopId")
    written_by = sandbox.clock.now()
    assert updates[0].status == "updated" and updates[0].lead_id == results[3].lead_id
    assert sandbox.tokens.issued == issued + 1
    sandbox.change_score(results[3].lead_id or 0, 20, "Demo request")
    sandbox.merge_leads(results[3].lead_id or 0, [results[4].lead_id or 0])

    batch = edge.activities_since(cursor, FEED)
    kinds = [a.type_name for a in batch.activities]
    assert kinds.count("New Lead") == 599
    (stage,) = [a for a in batch.activities if a.field == "closedloopStage"]
    assert (stage.lead_id, stage.new_value, stage.old_value) == (results[3].lead_id, "MQL", None)
    assert written_from <= stage.at <= written_by  # the sandbox time of the write (seconds)
    assert stage.at >= START + timedelta(hours=2)
    (score,) = [a for a in batch.activities if a.type_name == "Change Score"]
    assert score.field == "leadScore" and score.new_value == 20
    (merge,) = [a for a in batch.activities if a.type_name == "Merge Leads"]
    assert merge.attributes["Merge IDs"] == [results[4].lead_id]
    assert batch.calls == 3 and batch.more is False  # 602 activities, 300 per page

    sandbox.counter.reset()
    idle = edge.activities_since(batch.next_token, FEED)
    assert idle.activities == [] and idle.next_token == batch.next_token
    assert sandbox.counter.total("/rest/") == 1

    found = edge.leads_by("closedloopId", ["cl-3", "cl-4", "cl-nobody"], ["id", "closedloopStage"])
    assert found == [{"id": results[3].lead_id, "closedloopStage": "MQL"}]  # cl-4 was merged away
    assert edge.lead_by_id(results[3].lead_id or 0, ["id", "email"]) == {
        "id": results[3].lead_id,
        "email": "p3@example.com",
    }
    assert edge.lead_by_id(results[4].lead_id or 0, ["id"]) is None
    gone, after = edge.deleted_leads_since(cursor)
    assert gone == [] and after != cursor
    sandbox.delete_lead(results[5].lead_id or 0)
    deleted, later = edge.deleted_leads_since(after)
    assert deleted == [results[5].lead_id] and later != after
    assert edge.calls_today() == sandbox.limits.daily_used


def test_setup_finds_and_creates_the_fields_closedloop_writes(
    marketo_factory: Callable[..., MarketoEnv],
) -> None:
    env = marketo_factory(window_limit=100_000)
    edge = _edge(env)
    wanted = [
        FieldSpec("closedloopOutcome", "Closedloop Outcome"),
        FieldSpec("closedloopAmount", "Closedloop Amount", "currency"),
    ]
    existing = edge.lead_field_names()
    assert "closedloopId" in existing and not {s.name for s in wanted} & existing
    assert edge.create_fields(wanted) == {"closedloopOutcome": None, "closedloopAmount": None}
    again = edge.create_fields(wanted[:1])["closedloopOutcome"]
    assert again is not None and again.code == "1017" and again.category == "duplicate"
    writable = {f.name for f in edge.describe() if f.updateable}
    assert {"closedloopOutcome", "closedloopAmount"} <= writable
    (result,) = edge.upsert([{"closedloopId": "x", "closedloopAmount": "1200.5"}], "closedloopId")
    assert result.status == "created"
    assert env.sandbox.get_lead(result.lead_id or 0)["closedloopAmount"] == 1200.5  # type: ignore[index]


def test_shared_redis_window_keeps_the_edge_inside_marketos_window(
    marketo_factory: Callable[..., MarketoEnv],
) -> None:
    """With the window shared through Redis a little under Marketo's, no call is refused."""
    env = marketo_factory(window_limit=6, window_seconds=3.0)
    limiter = WindowLimiter(
        make_storage(REDIS_TEST_URL), 5, 3, 50_000, namespace=f"marketo-test-{uuid.uuid4().hex[:8]}"
    )
    edge = _edge(env, before_call=lambda _endpoint: limiter.acquire(timeout=30))
    for _ in range(12):
        edge._fields = None  # describe again: one REST call each
        edge.describe()
    assert env.sandbox.limits.rejected["606"] == 0
    assert env.sandbox.limits.daily_used == 12
    assert limiter.waits > 0


def test_rate_limit_refusals_are_waited_out_without_a_shared_window(
    marketo_factory: Callable[..., MarketoEnv],
) -> None:
    """Without a shared window the edge meets 606 in 200 bodies, waits and still gets every call done."""
    env = marketo_factory(window_limit=3, window_seconds=1.0)
    edge = _edge(env, RetryPolicy(max_attempts=10, base_seconds=0.2, max_seconds=1.2))
    for _ in range(6):
        edge._fields = None
        assert edge.describe()
    assert env.sandbox.limits.rejected["606"] > 0
    assert env.sandbox.limits.daily_used == 6


def test_marketo_starts_beside_the_other_sandboxes_only_when_asked(tmp_path: Any) -> None:
    from sandboxes.server import start_sandboxes

    plain = start_sandboxes(tmp_path / "plain")
    try:
        assert plain.marketo is None
        assert not [k for k in plain.env() if "MARKETO" in k]
        assert not [k for k in plain.info() if k.startswith("marketo")]
    finally:
        plain.stop()
    boxes = start_sandboxes(tmp_path / "with-marketo", marketo=True)
    try:
        env = boxes.env()
        assert boxes.marketo is not None and boxes.marketo.clock is boxes.clock
        client = make_marketo_client(
            env["CLOSEDLOOP_MARKETO_BASE_URL"],
            env["CLOSEDLOOP_MARKETO_CLIENT_ID"],
            env["CLOSEDLOOP_MARKETO_CLIENT_SECRET"],
        )
        assert any(f.name == "email" for f in MarketoEdge(client).describe())
        assert "marketo_client_secret" not in boxes.info()
    finally:
        boxes.stop()
