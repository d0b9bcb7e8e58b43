"""Contract tests: where the HubSpot sandbox must behave like a real portal (issue 18, items 11-13),
through the real hubspot-api-client over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hubspot.crm.contacts import (
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.crm.deals import PublicObjectSearchRequest as DealSearch
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealCreate

from sandboxes.common import SimClock
from sync.timeutil import parse_timestamp
from tests.contract.hubspot_fixtures import HubSpotEnv, start_hubspot

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DELAY = 0.4


@pytest.fixture
def hubspot_factory() -> Iterator[Callable[..., HubSpotEnv]]:
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
        env.server.stop()


def _body(exc: Exception) -> dict[str, Any]:
    return dict(json.loads(exc.body))  # type: ignore[attr-defined]


def _by_email(env: HubSpotEnv, email: str, properties: list[str] | None = None) -> list[Any]:
    found = env.client.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
            properties=properties or ["email"],
        )
    )
    return list(found.results)


# ----- item 11: search indexing delay -------------------------------------------------------------


def test_search_sees_new_and_changed_contacts_only_after_the_indexing_delay(
    hubspot_factory: Callable[..., HubSpotEnv],
) -> None:
    """HubSpot serves search from an index updated asynchronously: changes "take several seconds to
    propagate to the search indexing" ("Propagation Time", https://docs.locoia.com/connectors/connectors/hubspot;
    "The Search API is eventually consistent", https://blog.sequin.io/building-a-sync-on-hubspots-api/),
    while reads by ID are current (https://developers.hubspot.com/docs/api/crm/search)."""
    env = hubspot_factory(search_delay_seconds=DELAY)
    api = env.client.crm.contacts.basic_api
    created = api.create(
        SimplePublicObjectInputForCreate(properties={"email": "late@x.io", "jobtitle": "Old"})
    )
    assert api.get_by_id(created.id).id == created.id  # read by id: immediate
    assert _by_email(env, "late@x.io") == []  # search: not yet indexed
    time.sleep(DELAY + 0.1)
    [hit] = _by_email(env, "late@x.io", ["jobtitle"])
    assert hit.properties["jobtitle"] == "Old"

    api.update(created.id, SimplePublicObjectInput(properties={"jobtitle": "New"}))
    assert api.get_by_id(created.id, properties=["jobtitle"]).properties["jobtitle"] == "New"
    [stale] = _by_email(env, "late@x.io", ["jobtitle"])
    assert stale.properties["jobtitle"] == "Old"  # search still serves the indexed version
    time.sleep(DELAY + 0.1)
    [fresh] = _by_email(env, "late@x.io", ["jobtitle"])
    assert fresh.properties["jobtitle"] == "New"

    api.archive(created.id)
    assert len(_by_email(env, "late@x.io")) == 1  # a deletion reaches the index late too
    time.sleep(DELAY + 0.1)
    assert _by_email(env, "late@x.io") == []


def test_deal_search_has_the_same_indexing_delay(hubspot_factory: Callable[..., HubSpotEnv]) -> None:
    """The delay is the search index's, so it applies to every searchable object (search guide)."""
    env = hubspot_factory(search_delay_seconds=DELAY)
    env.client.crm.deals.basic_api.create(
        DealCreate(properties={"dealname": "Lag", "dealstage": "closedwon"})
    )
    request = DealSearch(
        filter_groups=[{"filters": [{"propertyName": "dealname", "operator": "EQ", "value": "Lag"}]}]
    )
    assert env.client.crm.deals.search_api.do_search(request).total == 0
    assert env.sandbox.search_lagging() == 1
    time.sleep(DELAY + 0.1)
    assert env.client.crm.deals.search_api.do_search(request).total == 1
    assert env.sandbox.search_lagging() == 0


def test_search_delay_is_configurable_and_off_by_default(hubspot_factory: Callable[..., HubSpotEnv]) -> None:
    """Off (0) by default so seeded data is searchable at once; ``set_search_delay`` turns it on with
    the index caught up to what exists."""
    env = hubspot_factory()
    env.sandbox.seed_contact({"email": "now@x.io"})
    assert len(_by_email(env, "now@x.io")) == 1
    env.sandbox.set_search_delay(DELAY)
    assert len(_by_email(env, "now@x.io")) == 1  # already indexed stays visible
    env.sandbox.seed_contact({"email": "later@x.io"})
    assert _by_email(env, "later@x.io") == []
    env.sandbox.settle_search()
    assert len(_by_email(env, "later@x.io")) == 1


# ----- item 12: hs_v2_date_entered / exited ------------------------------------------------------


def test_lifecycle_stage_dates_v2_and_legacy(hubspot_factory: Callable[..., HubSpotEnv]) -> None:
    """Default contact properties (https://knowledge.hubspot.com/properties/hubspots-default-contact-properties):
    "Date entered <stage>" (hs_v2_date_entered_<stage>) and "Date exited <stage>"
    (hs_v2_date_exited_<stage>) are calculated, read-only; the older hs_lifecyclestage_<stage>_date
    is filled too by default."""
    env = hubspot_factory()
    api = env.client.crm.contacts.basic_api
    cid = api.create(
        SimplePublicObjectInputForCreate(properties={"email": "v2@x.io", "lifecyclestage": "lead"})
    ).id
    env.sandbox.clock.advance(timedelta(days=2))
    moved = api.update(cid, SimplePublicObjectInput(properties={"lifecyclestage": "marketingqualifiedlead"}))
    stored = env.sandbox.get_contact(cid) or {}
    mql_at = parse_timestamp(stored["hs_v2_date_entered_marketingqualifiedlead"])
    assert mql_at == moved.updated_at
    assert parse_timestamp(stored["hs_lifecyclestage_marketingqualifiedlead_date"]) == mql_at
    assert parse_timestamp(stored["hs_v2_date_exited_lead"]) == mql_at
    assert parse_timestamp(stored["hs_v2_date_entered_lead"]) < mql_at - timedelta(days=1)
    definition = env.client.crm.properties.core_api.get_by_name("contacts", "hs_v2_date_entered_customer")
    assert definition.modification_metadata.read_only_value is True
    assert definition.calculated is True
    with pytest.raises(ApiException) as exc:
        api.update(
            cid, SimplePublicObjectInput(properties={"hs_v2_date_entered_customer": "2026-01-01T00:00:00Z"})
        )
    assert "READ_ONLY_VALUE" in _body(exc.value)["message"]


def test_portal_without_legacy_stage_dates(hubspot_factory: Callable[..., HubSpotEnv]) -> None:
    """Real portals may leave hs_lifecyclestage_<stage>_date empty; the sandbox can, too."""
    env = hubspot_factory(legacy_stage_dates=False)
    cid = env.sandbox.seed_contact({"email": "new@x.io", "lifecyclestage": "marketingqualifiedlead"})
    stored = env.sandbox.get_contact(cid) or {}
    assert "hs_v2_date_entered_marketingqualifiedlead" in stored
    assert not any(name.startswith("hs_lifecyclestage_") for name in stored)


# ----- item 13: hubspotscore is a read-only score ------------------------------------------------


def test_hubspotscore_is_a_read_only_calculation_score(hubspot_factory: Callable[..., HubSpotEnv]) -> None:
    """Properties API (https://developers.hubspot.com/docs/api/crm/properties): HubSpot Score is a
    number with fieldType calculation_score and modificationMetadata.readOnlyValue; a write through
    the API is rejected with HubSpot's property validation body (READ_ONLY_VALUE) and changes nothing."""
    env = hubspot_factory()
    definition = env.client.crm.properties.core_api.get_by_name("contacts", "hubspotscore")
    assert (definition.type, definition.field_type) == ("number", "calculation_score")
    assert definition.modification_metadata.read_only_value is True
    assert definition.calculated is True
    api = env.client.crm.contacts.basic_api
    with pytest.raises(ApiException) as on_create:
        api.create(SimplePublicObjectInputForCreate(properties={"email": "s@x.io", "hubspotscore": "80"}))
    body = _body(on_create.value)
    assert on_create.value.status == 400
    assert body["category"] == "VALIDATION_ERROR"
    assert json.loads(body["message"].split(": ", 1)[1])[0]["error"] == "READ_ONLY_VALUE"
    assert env.sandbox.contacts() == []
    cid = env.sandbox.seed_contact({"email": "s@x.io"})
    with pytest.raises(ApiException) as on_update:
        api.update(cid, SimplePublicObjectInput(properties={"hubspotscore": "80"}))
    assert on_update.value.status == 400
    assert "hubspotscore" not in (env.sandbox.get_contact(cid) or {})


def test_scores_arrive_as_hubspot_calculations(hubspot_factory: Callable[..., HubSpotEnv]) -> None:
    """Scores come from HubSpot's scoring, so their history says sourceType CALCULATED, whether set by
    ``set_score`` or seeded with the contact (the population's path)."""
    env = hubspot_factory()
    seeded = env.sandbox.seed_contact({"email": "p@x.io", "hubspotscore": "40", "jobtitle": "CTO"})
    env.sandbox.set_score(seeded, 65)
    got = env.client.crm.contacts.basic_api.get_by_id(
        seeded, properties=["hubspotscore"], properties_with_history=["hubspotscore", "jobtitle"]
    )
    assert got.properties["hubspotscore"] == "65"
    scores = got.properties_with_history["hubspotscore"]
    assert [(h.value, h.source_type) for h in scores] == [("65", "CALCULATED"), ("40", "CALCULATED")]
    assert got.properties_with_history["jobtitle"][0].source_type == "CRM_UI"
