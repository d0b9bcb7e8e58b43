"""Contract tests: HubSpotSales (the SFA role on a HubSpot portal) against the HubSpot sandbox over
real HTTP, through hubspot-api-client.

HubSpot references: search (https://developers.hubspot.com/docs/api/crm/search, sorting and the
``GTE`` filter on ``hs_lastmodifieddate``), batch read with ``idProperty`` and
``propertiesWithHistory`` (https://developers.hubspot.com/docs/api/crm/contacts), deal pipelines and
stage metadata ``isClosed``/``probability`` (https://developers.hubspot.com/docs/api/crm/pipelines),
associations v4 and their labels (https://developers.hubspot.com/docs/api/crm/associations),
webhooks (https://developers.hubspot.com/docs/api/webhooks, association changes carry
``fromObjectId``/``toObjectId``), rate limits
(https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details, 429 with a
``RATE_LIMIT`` body).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hubspot.crm.associations.v4.schema import PublicAssociationDefinitionCreateRequest
from hubspot.crm.pipelines import PipelineInput, PipelineStageInput
from limits import storage

from sandboxes.common import SimClock
from sync.connectors.contract import InboxItem, SalesConnector
from sync.connectors.errors import ConnectorError, RetryPolicy
from sync.connectors.hubspot import HubSpotConnector
from sync.connectors.hubspot_ma import HubSpotMarketing
from sync.connectors.hubspot_sfa import HubSpotSales
from sync.connectors.ratelimit import WindowLimiter
from sync.identity import RecordRef
from sync.mapping import Mapping
from sync.mapping.loader import load_mapping
from sync.timeutil import parse_timestamp
from tests.contract.hubspot_fixtures import HubSpotEnv, WebhookReceiver, start_hubspot

START = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
MAPPING = load_mapping("mappings/hubspot-only.yaml")
SECRET = "sales-webhook-secret"


@pytest.fixture
def factory() -> Iterator[Callable[..., HubSpotEnv]]:
    envs: list[HubSpotEnv] = []

    def make(**kwargs: Any) -> HubSpotEnv:
        kwargs.setdefault("clock", SimClock(start=START))
        kwargs.setdefault("search_per_second", 10_000)
        kwargs.setdefault("window_limit", 100_000)
        env = start_hubspot(**kwargs)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.sandbox.stop_webhook_delivery()
        env.server.stop()


@pytest.fixture
def env(factory: Callable[..., HubSpotEnv]) -> HubSpotEnv:
    return factory()


def _edge(env: HubSpotEnv, policy: RetryPolicy | None = None) -> HubSpotConnector:
    limiter = WindowLimiter(storage.MemoryStorage(), 100_000, 10, 10_000_000, "test-hubspot-sfa")
    return HubSpotConnector(env.url, env.sandbox.token, limiter, policy or RetryPolicy(base_seconds=0.01))


def _sales(env: HubSpotEnv, mapping: Mapping = MAPPING, same_portal: bool = True) -> HubSpotSales:
    edge = _edge(env)
    HubSpotMarketing(edge, mapping).provision(mapping, dry_run=False)  # closedloop_id and friends
    return HubSpotSales(edge, mapping, same_portal=same_portal)


def _deal(env: HubSpotEnv, contact: str, stage: str = "qualifiedtobuy", **props: str) -> str:
    return env.sandbox.seed_deal(
        {"dealname": "d", "pipeline": "default", "dealstage": stage, **props}, [contact]
    )


def test_is_a_sales_connector(env: HubSpotEnv) -> None:
    sales = _sales(env)
    assert isinstance(sales, SalesConnector)
    assert sales.profile.evidence_order == MAPPING.sfa_objects() == ("contact", "deal")


def test_poll_pages_resumes_and_an_idle_poll_costs_one_search_per_stream(env: HubSpotEnv) -> None:
    """Search pages of 200 sorted by modification time; the saved cursor resumes after the last change."""
    sales = _sales(env, same_portal=False)
    ids = [env.sandbox.seed_contact({"email": f"p{i}@x.io", "closedloop_id": f"P{i}"}) for i in range(250)]
    first = sales.poll({}, timedelta(0))
    assert sorted(c.common_id or "" for c in first.candidates) == sorted(f"P{i}" for i in range(250))
    assert {r.record_id for c in first.candidates for r in c.records} == set(ids)
    env.sandbox.clock.advance(timedelta(minutes=5))
    _deal(env, ids[7])
    second = sales.poll(first.cursors, timedelta(0))
    assert [c.common_id for c in second.candidates] == ["P7"]  # a new deal reaches its contact's person
    env.sandbox.counter.reset()
    idle = sales.poll(second.cursors, timedelta(0))
    assert idle.candidates == []
    assert env.sandbox.counter.total("/crm/v3/objects/contacts/search") == 1
    assert env.sandbox.counter.total("/crm/v3/objects/deals/search") == 1
    assert env.sandbox.counter.total() == 2


def test_one_portal_polls_only_deals(env: HubSpotEnv) -> None:
    """The marketing role already searches the portal's contacts; the sales role searches deals only."""
    sales = _sales(env)
    ada = env.sandbox.seed_contact({"email": "ada@x.io", "closedloop_id": "A"})
    first = sales.poll({}, timedelta(0))
    assert (first.candidates, set(first.cursors)) == ([], {"deals"})
    env.sandbox.clock.advance(timedelta(minutes=1))
    _deal(env, ada)
    env.sandbox.counter.reset()
    second = sales.poll(first.cursors, timedelta(0))
    assert [c.common_id for c in second.candidates] == ["A"]
    assert env.sandbox.counter.total("/crm/v3/objects/contacts/search") == 0
    env.sandbox.counter.reset()
    assert sales.poll(second.cursors, timedelta(0)).candidates == []
    assert env.sandbox.counter.total() == 1


def test_read_people_one_portal_counts_a_contact_only_once_sales_has_it(env: HubSpotEnv) -> None:
    sales = _sales(env)
    ada = env.sandbox.seed_contact({"email": "ada@x.io", "closedloop_id": "A"})
    bob = env.sandbox.seed_contact(
        {"email": "bob@x.io", "closedloop_id": "B", "hs_lead_status": "IN_PROGRESS"}
    )
    links = {"A": [RecordRef("ma", "contact", ada)], "B": [RecordRef("ma", "contact", bob)]}
    states = sales.read_people(["A", "B"], links)
    assert set(states) == {"B"}  # Ada is still marketing's
    assert states["B"].record("contact")["hs_object_id"] == bob  # type: ignore[index]
    assert sales.write_target(states["B"]) is None  # one record: no field sync between the roles
    _deal(env, ada)
    assert set(sales.read_people(["A"], {})) == {"A"}  # found by the common ID it carries; a deal: sales'
    other = HubSpotSales(_edge(env), MAPPING, same_portal=False)
    assert set(other.read_people(["A", "B"], {})) == {"A", "B"}
    target = other.write_target(other.read_people(["A"], {})["A"])
    assert target is not None and target.object == "contact"


def test_won_and_lost_come_from_stage_metadata_in_every_pipeline_never_names(env: HubSpotEnv) -> None:
    """Pipelines guide: stage metadata isClosed/probability; a stage labelled "Closed Won" that is open
    is not won, a stage "Signed" closed at 1.0 is."""
    renewals = env.client.crm.pipelines.pipelines_api.create(
        "deals",
        PipelineInput(
            label="Renewals",
            display_order=1,
            stages=[
                PipelineStageInput(label="Closed Won", display_order=0, metadata={"probability": "0.5"}),
                PipelineStageInput(
                    label="Signed", display_order=1, metadata={"probability": "1.0", "isClosed": "true"}
                ),
                PipelineStageInput(
                    label="Walked", display_order=2, metadata={"probability": "0.0", "isClosed": "true"}
                ),
            ],
        ),
    )
    misleading, signed, walked = (s.id for s in renewals.stages)
    sales = _sales(env)
    people = {}
    for name, stage in (("open", misleading), ("won", signed), ("lost", walked)):
        contact = env.sandbox.seed_contact({"email": f"{name}@x.io", "closedloop_id": name})
        env.sandbox.seed_deal({"dealname": name, "pipeline": renewals.id, "dealstage": stage}, [contact])
        people[name] = contact
    states = sales.read_people(list(people), {})
    flags = {
        cid: (s.record("deal")["closedloop_is_closed"], s.record("deal")["closedloop_is_won"])  # type: ignore[index]
        for cid, s in states.items()
    }
    assert flags == {"open": (False, False), "won": (True, True), "lost": (True, False)}
    from sync.stages import compute_stage

    stages = {cid: compute_stage(MAPPING, _view(s)) for cid, s in states.items()}
    assert stages == {"open": "opportunity", "won": "won", "lost": "lost"}


def _view(state: Any) -> Any:
    from sync.stages import PersonView

    return PersonView(ma=state.record("contact"), sfa=state.records)


def test_association_types_are_read_from_the_portals_labels(env: HubSpotEnv) -> None:
    """Associations v4: a custom label gets its own type ids; deals tied only by it still count, and
    the labels are read at run time (a label created after the first read is picked up)."""
    sales = _sales(env)
    ada = env.sandbox.seed_contact({"email": "ada@x.io", "closedloop_id": "A"})
    assert sales.read_people(["A"], {}) == {}  # reads the labels once
    label = env.client.crm.associations.v4.schema.definitions_api.create(
        "deals", "contacts", PublicAssociationDefinitionCreateRequest(label="Champion", name="champion")
    )
    type_id = next(t.type_id for t in label.results if t.label == "Champion")
    deal = env.sandbox.seed_deal({"dealname": "d", "pipeline": "default", "dealstage": "qualifiedtobuy"})
    env.sandbox.associate("deals", deal, "contacts", ada, [type_id])
    state = sales.read_people(["A"], {})["A"]
    assert [d["hs_object_id"] for d in state.outcomes] == [deal]
    assert type_id in sales.meta.type_ids("deals")


def test_handover_upsert_marks_the_same_contact_and_is_idempotent(env: HubSpotEnv) -> None:
    """One portal: the handover writes onto the contact carrying the common ID, never creates one."""
    sales = _sales(env)
    ada = env.sandbox.seed_contact({"email": "ada@x.io", "closedloop_id": "A"})
    rows = {"A": {"hs_lead_status": "NEW", "closedloop_id": "A"}}
    for _ in range(2):
        ids, errors = sales.upsert("contact", "closedloop_id", rows)
        assert (ids, errors) == ({"A": ada}, [])
    assert len(env.sandbox.contacts()) == 1
    assert (env.sandbox.get_contact(ada) or {})["hs_lead_status"] == "NEW"
    ids, errors = sales.upsert(
        "contact", "closedloop_id", {"Z": {"hs_lead_status": "NEW", "closedloop_id": "Z"}}
    )
    assert ids == {} and [(e.key, e.code) for e in errors] == [("Z", "NOT_FOUND")]
    assert len(env.sandbox.contacts()) == 1


def test_per_record_errors_leave_the_other_records_written(env: HubSpotEnv) -> None:
    """Batch update: an ID that does not exist (or was archived) is a per-input error of a 207
    multi-status (category OBJECT_NOT_FOUND, the id in its context); the other inputs are written."""
    sales = _sales(env)
    ada = env.sandbox.seed_contact({"email": "ada@x.io"})
    gone = env.sandbox.seed_contact({"email": "gone@x.io"})
    env.client.crm.contacts.basic_api.archive(gone)
    errors = sales.update(
        "contact", {ada: {"hs_lead_status": "CONNECTED"}, gone: {"hs_lead_status": "CONNECTED"}}
    )
    assert [e.key for e in errors] == [gone]
    assert (env.sandbox.get_contact(ada) or {})["hs_lead_status"] == "CONNECTED"
    deal = _deal(env, ada)
    assert (
        sales.update("deal", {deal: {"closed_lost_reason": "Budget"}, "999999": {"amount": "1"}})[0].key
        == "999999"
    )
    assert (env.sandbox.get_deal(deal) or {})["closed_lost_reason"] == "Budget"


def test_429_from_the_portal_is_waited_out(factory: Callable[..., HubSpotEnv]) -> None:
    """Rate limits: past the 10-second window HubSpot answers 429 RATE_LIMIT; the edge waits and retries."""
    env = factory(window_limit=4, window_seconds=1.0)
    HubSpotMarketing(_edge(env, RetryPolicy(max_attempts=10, base_seconds=0.3)), MAPPING).provision(
        MAPPING, False
    )
    sales = HubSpotSales(
        _edge(env, RetryPolicy(max_attempts=10, base_seconds=0.3)), MAPPING, same_portal=True
    )
    for i in range(3):
        contact = env.sandbox.seed_contact(
            {"email": f"p{i}@x.io", "closedloop_id": f"P{i}", "hs_lead_status": "NEW"}
        )
        _deal(env, contact)
    env.sandbox.counter.reset()
    states = sales.read_people([f"P{i}" for i in range(3)], {})
    assert set(states) == {"P0", "P1", "P2"} and all(len(s.outcomes) == 1 for s in states.values())
    assert any(row["status"] == 429 for row in env.sandbox.counter.snapshot())


def test_history_snapshots_carry_source_times(env: HubSpotEnv) -> None:
    """propertiesWithHistory of hs_lead_status and dealstage become snapshots at their timestamps."""
    sales = _sales(env)
    ada = env.sandbox.seed_contact({"email": "ada@x.io", "closedloop_id": "A"})
    env.sandbox.clock.advance(timedelta(hours=1))
    env.sandbox.update_contact(ada, {"hs_lead_status": "NEW"})
    handed = env.sandbox.clock.now()
    env.sandbox.clock.advance(timedelta(hours=2))
    env.sandbox.update_contact(ada, {"hs_lead_status": "IN_PROGRESS"})
    env.sandbox.clock.advance(timedelta(days=1))
    deal = _deal(env, ada)
    env.sandbox.clock.advance(timedelta(days=3))
    env.sandbox.update_deal(deal, {"dealstage": "closedwon", "amount": "900"})
    events = sales.history(sales.read_people(["A"], {}))["A"]
    contact = [(e.snapshot["hs_lead_status"], e.at) for e in events if e.object == "contact"]
    assert [v for v, _ in contact] == ["NEW", "IN_PROGRESS"]
    assert abs((contact[0][1] - handed).total_seconds()) < 1
    deals = [
        (e.snapshot["dealstage"], e.snapshot["closedloop_is_won"], e.at) for e in events if e.object == "deal"
    ]
    assert [(s, won) for s, won, _ in deals] == [("qualifiedtobuy", False), ("closedwon", True)]
    assert deals[1][2] - deals[0][2] >= timedelta(days=3)
    from sync.facts import Profiles
    from sync.replay import replay

    profiles = Profiles(HubSpotMarketing(_edge(env), MAPPING).profile, sales.profile)
    steps = replay(MAPPING, profiles, events, start="mql")
    assert [s.to_stage for s in steps] == ["sal", "sql", "opportunity", "won"]
    assert steps[-1].at == deals[1][2]


def test_scan_pages_and_resumes_and_newest_changes(env: HubSpotEnv) -> None:
    """The list API pages with ``after``; a scan resumes from the saved state without repeats."""
    sales = _sales(env)
    ids = [env.sandbox.seed_contact({"email": f"s{i}@x.io", "closedloop_id": f"S{i}"}) for i in range(25)]
    pages = sales.scan("contacts", {}, None, 10)
    first = next(pages)
    rest = list(sales.scan("contacts", first.state, None, 10))
    seen = [r.record_id for p in (first, *rest) for c in p.candidates for r in c.records]
    assert seen == ids and rest[-1].state["done"] is True
    deal = _deal(env, ids[3])
    deal_pages = list(sales.scan("deals", {}, None, 10))
    assert [c.common_id for p in deal_pages for c in p.candidates] == ["S3"]
    assert sales.scan_total("contacts") == 25 and sales.scan_total("deals") == 1
    newest = sales.newest_changes()
    assert newest["deals"] == parse_timestamp((env.sandbox.get_deal(deal) or {})["hs_lastmodifieddate"])


def test_webhooks_deal_events_are_interpreted_from_what_hubspot_sends(env: HubSpotEnv) -> None:
    """deal.creation / deal.propertyChange name the deal; deal.associationChange both ends."""
    receiver = WebhookReceiver()
    try:
        env.sandbox.configure_webhooks(receiver.url, SECRET, properties=[], deal_properties=["dealstage"])
        env.sandbox.start_webhook_delivery()
        sales = _sales(env)
        ada = env.sandbox.seed_contact({"email": "ada@x.io", "closedloop_id": "A"})
        deal = _deal(env, ada)
        env.sandbox.update_deal(deal, {"dealstage": "closedlost", "closed_lost_reason": "Price"})
        assert receiver.wait_for(
            lambda r: (
                any(e.get("propertyValue") == "closedlost" for e in r.events())
                and any(e["subscriptionType"] == "deal.associationChange" for e in r.events())
            )
        )
    finally:
        receiver.stop()
    from sync.web.hubspot_events import split_events

    deal_events = [e for e in receiver.events() if e["subscriptionType"].startswith("deal.")]
    good, bad = split_events(deal_events)
    assert bad == [] and len(good) == len(deal_events)
    meaning = sales.interpret([InboxItem(e.object_type, e.record_id, e.payload) for e in good])
    assert set(meaning.changed) == {RecordRef("sfa", "deal", deal), RecordRef("sfa", "contact", ada)}
    assert [c.common_id for c in sales.candidates(meaning.changed)] == ["A"]


def test_provision_reports_missing_properties_and_a_portal_without_a_won_stage(env: HubSpotEnv) -> None:
    data = MAPPING.model_dump(by_alias=True, exclude_none=True)
    data["closed_loop"].append({"from": "deal.custom_margin", "ma": "closedloop_margin"})
    from sync.mapping.loader import parse_mapping_data

    mapping = parse_mapping_data(data)
    sales = HubSpotSales(_edge(env), mapping, same_portal=True)
    dry = sales.provision(mapping, dry_run=True)
    assert dry.created == ["HubSpot: would create contact property closedloop_id"]
    assert any("deal property custom_margin" in line for line in dry.missing)
    assert dry.problems == []
    done = sales.provision(mapping, dry_run=False)
    assert done.created == ["HubSpot: created contact property closedloop_id"]
    assert sales.provision(mapping, dry_run=True).created == []


def test_follow_up_is_a_task_on_the_contact(env: HubSpotEnv) -> None:
    """Tasks guide: POST /crm/v3/objects/tasks with hs_timestamp (required), subject, body, status and
    type, associated with the contact by the HUBSPOT_DEFINED type listed for tasks to contacts."""
    sales = _sales(env)
    ada = env.sandbox.seed_contact({"email": "ada@x.io", "closedloop_id": "A"})
    sales.create_follow_up(ada, None, "SLA breached: first_touch", date(2026, 4, 9), "Call Ada today")
    [task] = [t for t in env.sandbox.tasks.records.values()]
    assert task.values["hs_task_subject"] == "SLA breached: first_touch"
    assert task.values["hs_task_body"] == "Call Ada today"
    assert (task.values["hs_task_status"], task.values["hs_task_type"]) == ("NOT_STARTED", "TODO")
    assert parse_timestamp(task.values["hs_timestamp"]) == datetime(2026, 4, 9, tzinfo=UTC)
    assert set(env.sandbox.live_associations("contacts", ada, "tasks")) == {task.id}
    with pytest.raises(ConnectorError) as refused:  # the contact is gone: HubSpot refuses the association
        sales.create_follow_up("999999", None, "x", date(2026, 4, 9), "y")
    assert refused.value.status == 400
    assert len(env.sandbox.tasks.records) == 1


def test_a_task_needs_its_due_date(env: HubSpotEnv) -> None:
    """Tasks guide: hs_timestamp is required; without it the create is a 400 VALIDATION_ERROR."""
    from hubspot.crm.objects.tasks import SimplePublicObjectInputForCreate
    from hubspot.crm.objects.tasks.exceptions import ApiException

    with pytest.raises(ApiException) as missing:
        env.client.crm.objects.tasks.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"hs_task_subject": "x"})
        )
    assert missing.value.status == 400 and "hs_timestamp" in str(missing.value.body)
    with pytest.raises(ApiException) as bad_status:
        env.client.crm.objects.tasks.basic_api.create(
            SimplePublicObjectInputForCreate(
                properties={"hs_timestamp": "2026-04-09T00:00:00Z", "hs_task_status": "SOMEDAY"}
            )
        )
    assert bad_status.value.status == 400 and "INVALID_OPTION" in str(bad_status.value.body)
    assert env.sandbox.tasks.records == {}


def test_owner_names_page_through_the_owners_api(env: HubSpotEnv) -> None:
    """GET /crm/v3/owners (https://developers.hubspot.com/docs/api-reference/crm-crm-owners-v3/guide):
    ``id`` is what records' ``hubspot_owner_id`` holds; names are ``firstName`` + ``lastName``; pages
    follow ``paging.next.after``."""
    ids = [env.sandbox.add_owner(f"Rep{n}", "Tanaka", f"rep{n}@example.com") for n in range(502)]
    sales = _sales(env)
    env.sandbox.counter.reset()

    names = sales.owner_names([ids[0], ids[501], "999"])

    assert names == {ids[0]: "Rep0 Tanaka", ids[501]: "Rep501 Tanaka"}
    assert env.sandbox.counter.total() == 2  # 500 per page: the last owner is on the second page
    first = _edge(env).owners_page(None, limit=2)
    assert [o["id"] for o in first[0]] == ids[:2] and first[1] == "2"
    assert {"id", "email", "firstName", "lastName", "userId", "archived"} <= set(first[0][0])


def test_owners_api_refuses_a_limit_over_500(env: HubSpotEnv) -> None:
    with pytest.raises(ConnectorError):
        _edge(env, RetryPolicy(max_attempts=1)).owners_page(None, limit=501)
