"""Contract tests: the real hubspot-api-client against the HubSpot sandbox over real HTTP."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import urllib3
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    PublicMergeInput,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate, PropertyUpdate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.utils.signature import Signature

from sandboxes.common import SimClock
from sync.timeutil import parse_timestamp, to_epoch_ms
from tests.contract.hubspot_fixtures import HubSpotEnv, WebhookReceiver, hubspot_client, start_hubspot

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def hubspot_factory() -> Iterator[Callable[..., HubSpotEnv]]:
    """Start sandboxes with custom settings; all are stopped after the test."""
    envs: list[HubSpotEnv] = []

    def make(**kwargs: Any) -> HubSpotEnv:
        kwargs.setdefault("clock", SimClock(start=START))
        env = start_hubspot(**kwargs)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.sandbox.stop_webhook_delivery()
        env.server.stop()


@pytest.fixture
def hubspot_env(hubspot_factory: Callable[..., HubSpotEnv]) -> HubSpotEnv:
    """A sandbox with generous limits (rate-limit tests build their own)."""
    return hubspot_factory(search_per_second=10_000, window_limit=100_000)


@pytest.fixture
def hubspot_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


def _body(exc: ApiException) -> dict[str, Any]:
    return dict(json.loads(exc.body))


def _assert_error_shape(body: dict[str, Any]) -> None:
    assert body["status"] == "error"
    assert body["message"]
    assert body["correlationId"]
    assert body["category"]


def _create(env: HubSpotEnv, **props: str) -> str:
    created = env.client.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties=props))
    return str(created.id)


# ----- basic CRUD --------------------------------------------------------------------------------


def test_crud_round_trip_through_real_client(hubspot_env: HubSpotEnv) -> None:
    api = hubspot_env.client.crm.contacts.basic_api
    created = api.create(
        SimplePublicObjectInputForCreate(properties={"email": "Ada@Example.com", "firstname": "Ada"})
    )
    assert created.properties["hs_object_id"] == created.id
    assert created.properties["email"] == "ada@example.com"
    assert created.created_at == parse_timestamp(created.properties["createdate"])

    fetched = api.get_by_id(created.id, properties=["email", "firstname", "jobtitle"])
    assert fetched.properties["firstname"] == "Ada"
    assert fetched.properties["jobtitle"] is None
    assert {"createdate", "lastmodifieddate", "hs_object_id"} <= set(fetched.properties)

    hubspot_env.sandbox.clock.advance(timedelta(minutes=5))
    updated = api.update(created.id, SimplePublicObjectInput(properties={"jobtitle": "CTO", "firstname": ""}))
    assert updated.updated_at > created.updated_at
    stored = hubspot_env.sandbox.get_contact(created.id)
    assert stored is not None
    assert stored["jobtitle"] == "CTO"
    assert "firstname" not in stored  # "" clears a value
    assert parse_timestamp(stored["lastmodifieddate"]) == updated.updated_at

    api.archive(created.id)
    with pytest.raises(ApiException) as missing:
        api.get_by_id(created.id)
    assert missing.value.status == 404
    _assert_error_shape(_body(missing.value))
    archived = api.get_by_id(created.id, archived=True)
    assert archived.archived is True
    assert hubspot_env.sandbox.get_contact(created.id) is None


def test_get_by_unique_id_property(hubspot_env: HubSpotEnv) -> None:
    cid = hubspot_env.sandbox.seed_contact({"email": "grace@navy.mil"})
    got = hubspot_env.client.crm.contacts.basic_api.get_by_id("GRACE@navy.mil", id_property="email")
    assert got.id == cid
    with pytest.raises(ApiException) as bad:
        hubspot_env.client.crm.contacts.basic_api.get_by_id("Grace", id_property="firstname")
    assert bad.value.status == 400


def test_list_paging_visits_every_live_contact_once(hubspot_env: HubSpotEnv) -> None:
    ids = [hubspot_env.sandbox.seed_contact({"email": f"p{i}@list.io"}) for i in range(23)]
    hubspot_env.sandbox.delete_contact(ids[5])
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = hubspot_env.client.crm.contacts.basic_api.get_page(limit=10, after=after, properties=["email"])
        pages += 1
        seen += [r.id for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert pages == 3
    assert seen == [i for i in ids if i != ids[5]]


def test_missing_or_wrong_token_is_401_without_leaking_it(hubspot_env: HubSpotEnv) -> None:
    wrong = hubspot_client(hubspot_env.url, "not-the-token")
    with pytest.raises(ApiException) as exc:
        wrong.crm.contacts.basic_api.get_page()
    assert exc.value.status == 401
    body = _body(exc.value)
    _assert_error_shape(body)
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert "not-the-token" not in exc.value.body
    anonymous = requests.get(f"{hubspot_env.url}/crm/v3/objects/contacts", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.json()["category"] == "INVALID_AUTHENTICATION"


def test_unknown_and_invalid_property_values_are_rejected(hubspot_env: HubSpotEnv) -> None:
    with pytest.raises(ApiException) as unknown:
        _create(hubspot_env, email="x@y.io", closedloop_id="abc")
    assert unknown.value.status == 400
    body = _body(unknown.value)
    _assert_error_shape(body)
    assert body["category"] == "VALIDATION_ERROR"
    assert "PROPERTY_DOESNT_EXIST" in body["message"]
    assert body["errors"][0]["context"]["propertyName"] == ["closedloop_id"]
    with pytest.raises(ApiException) as bad_option:
        _create(hubspot_env, email="x@y.io", lifecyclestage="prospect")
    assert "INVALID_OPTION" in _body(bad_option.value)["message"]
    with pytest.raises(ApiException) as read_only:
        _create(hubspot_env, email="x@y.io", lastmodifieddate="1700000000000")
    assert read_only.value.status == 400
    assert hubspot_env.sandbox.contacts() == []


def test_duplicate_email_is_a_conflict(hubspot_env: HubSpotEnv) -> None:
    first = _create(hubspot_env, email="dup@x.io")
    with pytest.raises(ApiException) as exc:
        _create(hubspot_env, email="DUP@x.io")
    assert exc.value.status == 409
    body = _body(exc.value)
    assert body["category"] == "CONFLICT"
    assert first in body["message"]


def test_properties_with_history_newest_first_with_sources(hubspot_env: HubSpotEnv) -> None:
    cid = _create(hubspot_env, email="h@x.io", jobtitle="Engineer")
    hubspot_env.sandbox.clock.advance(timedelta(hours=1))
    hubspot_env.sandbox.update_contact(cid, {"jobtitle": "Manager"})
    hubspot_env.sandbox.clock.advance(timedelta(hours=1))
    hubspot_env.client.crm.contacts.basic_api.update(
        cid, SimplePublicObjectInput(properties={"jobtitle": "VP"})
    )
    got = hubspot_env.client.crm.contacts.basic_api.get_by_id(cid, properties_with_history=["jobtitle"])
    history = got.properties_with_history["jobtitle"]
    assert [h.value for h in history] == ["VP", "Manager", "Engineer"]
    assert [h.source_type for h in history] == ["INTEGRATION", "CRM_UI", "INTEGRATION"]
    assert history[0].timestamp > history[1].timestamp > history[2].timestamp


def test_lifecyclestage_moves_forward_only_through_the_api(hubspot_env: HubSpotEnv) -> None:
    api = hubspot_env.client.crm.contacts.basic_api
    cid = _create(hubspot_env, email="l@x.io", lifecyclestage="lead")
    hubspot_env.sandbox.clock.advance(timedelta(days=1))
    api.update(cid, SimplePublicObjectInput(properties={"lifecyclestage": "salesqualifiedlead"}))
    back = api.update(cid, SimplePublicObjectInput(properties={"lifecyclestage": "lead", "jobtitle": "CEO"}))
    assert back.properties["lifecyclestage"] == "salesqualifiedlead"  # ignored, not an error
    assert back.properties["jobtitle"] == "CEO"
    api.update(cid, SimplePublicObjectInput(properties={"lifecyclestage": ""}))
    api.update(cid, SimplePublicObjectInput(properties={"lifecyclestage": "lead"}))
    stored = hubspot_env.sandbox.get_contact(cid)
    assert stored is not None
    assert stored["lifecyclestage"] == "lead"
    entered = parse_timestamp(stored["hs_lifecyclestage_salesqualifiedlead_date"])
    assert entered is not None
    assert START + timedelta(days=1) <= entered < START + timedelta(days=1, minutes=1)
    hubspot_env.sandbox.update_contact(cid, {"lifecyclestage": "customer"})
    hubspot_env.sandbox.update_contact(cid, {"lifecyclestage": "subscriber"})  # a UI user may go back
    assert (hubspot_env.sandbox.get_contact(cid) or {})["lifecyclestage"] == "subscriber"


def test_merge_folds_secondary_into_primary(hubspot_env: HubSpotEnv) -> None:
    primary = _create(hubspot_env, email="m1@x.io")
    secondary = _create(hubspot_env, email="m2@x.io", jobtitle="CFO")
    merged = hubspot_env.client.crm.contacts.basic_api.merge(
        PublicMergeInput(primary_object_id=primary, object_id_to_merge=secondary)
    )
    assert merged.id == primary
    via_old_id = hubspot_env.client.crm.contacts.basic_api.get_by_id(secondary, properties=["jobtitle"])
    assert via_old_id.id == primary
    assert via_old_id.properties["jobtitle"] == "CFO"


# ----- batch ------------------------------------------------------------------------------------


def test_batch_create_read_update_archive(hubspot_env: HubSpotEnv) -> None:
    batch = hubspot_env.client.crm.contacts.batch_api
    created = batch.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                SimplePublicObjectBatchInputForCreate(properties={"email": f"b{i}@x.io"}) for i in range(3)
            ]
        )
    )
    assert created.status == "COMPLETE"
    assert created.started_at <= created.completed_at
    ids = sorted(r.id for r in created.results)
    assert len(ids) == 3

    read = batch.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id="b1@x.io")],
            properties=["email"],
            properties_with_history=["email"],
            id_property="email",
        )
    )
    assert [r.properties["email"] for r in read.results] == ["b1@x.io"]
    assert read.results[0].properties_with_history["email"][0].value == "b1@x.io"

    updated = batch.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(id=ids[0], properties={"jobtitle": "A"}),
                SimplePublicObjectBatchInput(id="b2@x.io", id_property="email", properties={"jobtitle": "B"}),
            ]
        )
    )
    assert sorted(r.properties["jobtitle"] for r in updated.results) == ["A", "B"]
    assert hubspot_env.sandbox.find_contacts("jobtitle", "B") == hubspot_env.sandbox.find_contacts(
        "email", "b2@x.io"
    )

    batch.archive(BatchInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=ids[0])]))
    assert hubspot_env.sandbox.get_contact(ids[0]) is None


def test_batch_partial_failures_are_207_with_errors(hubspot_env: HubSpotEnv) -> None:
    batch = hubspot_env.client.crm.contacts.batch_api
    real = hubspot_env.sandbox.seed_contact({"email": "real@x.io"})
    read = batch.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=real), SimplePublicObjectId(id="424242")],
            properties=["email"],
            properties_with_history=[],
        )
    )
    assert [r.id for r in read.results] == [real]
    assert read.num_errors == 1
    assert read.errors[0].category == "OBJECT_NOT_FOUND"
    assert read.errors[0].context == {"ids": ["424242"]}

    _, status, _ = batch.update_with_http_info(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(id=real, properties={"jobtitle": "Kept"}),
                SimplePublicObjectBatchInput(id="424243", properties={"jobtitle": "Lost"}),
            ]
        )
    )
    assert status == 207
    assert (hubspot_env.sandbox.get_contact(real) or {})["jobtitle"] == "Kept"


@pytest.mark.parametrize("operation", ["read", "create", "update", "upsert", "archive"])
def test_batch_of_101_inputs_is_rejected(hubspot_env: HubSpotEnv, operation: str) -> None:
    batch = hubspot_env.client.crm.contacts.batch_api
    calls: dict[str, Callable[[], Any]] = {
        "read": lambda: batch.read(
            BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=str(i)) for i in range(101)],
                properties=[],
                properties_with_history=[],
            )
        ),
        "create": lambda: batch.create(
            BatchInputSimplePublicObjectBatchInputForCreate(
                inputs=[
                    SimplePublicObjectBatchInputForCreate(properties={"email": f"{i}@x.io"})
                    for i in range(101)
                ]
            )
        ),
        "update": lambda: batch.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[SimplePublicObjectBatchInput(id=str(i), properties={}) for i in range(101)]
            )
        ),
        "upsert": lambda: batch.upsert(
            BatchInputSimplePublicObjectBatchInputUpsert(
                inputs=[
                    SimplePublicObjectBatchInputUpsert(id=f"{i}@x.io", id_property="email", properties={})
                    for i in range(101)
                ]
            )
        ),
        "archive": lambda: batch.archive(
            BatchInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=str(i)) for i in range(101)])
        ),
    }
    with pytest.raises(ApiException) as exc:
        calls[operation]()
    assert exc.value.status == 400
    body = _body(exc.value)
    _assert_error_shape(body)
    assert body["category"] == "VALIDATION_ERROR"
    assert hubspot_env.sandbox.contacts() == []


def _create_property(env: HubSpotEnv, name: str, unique: bool) -> None:
    env.client.crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name=name,
            label=name,
            type="string",
            field_type="text",
            group_name="contactinformation",
            has_unique_value=unique,
        ),
    )


def test_batch_upsert_on_unique_property(hubspot_env: HubSpotEnv) -> None:
    _create_property(hubspot_env, "closedloop_id", unique=True)
    existing = hubspot_env.sandbox.seed_contact({"email": "old@x.io", "closedloop_id": "L-1"})
    result = hubspot_env.client.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id="L-1", id_property="closedloop_id", properties={"jobtitle": "X"}
                ),
                SimplePublicObjectBatchInputUpsert(
                    id="L-2", id_property="closedloop_id", properties={"email": "new@x.io"}
                ),
            ]
        )
    )
    by_new = {r.new: r for r in result.results}
    assert by_new[False].id == existing
    assert (hubspot_env.sandbox.get_contact(existing) or {})["jobtitle"] == "X"
    assert hubspot_env.sandbox.find_contacts("closedloop_id", "L-2") == [by_new[True].id]
    assert (hubspot_env.sandbox.get_contact(by_new[True].id) or {})["email"] == "new@x.io"

    # Upserting again is idempotent: no new contact.
    hubspot_env.client.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[SimplePublicObjectBatchInputUpsert(id="L-2", id_property="closedloop_id", properties={})]
        )
    )
    assert len(hubspot_env.sandbox.contacts()) == 2


def test_upsert_on_non_unique_property_is_rejected(hubspot_env: HubSpotEnv) -> None:
    _create_property(hubspot_env, "closedloop_note", unique=False)
    with pytest.raises(ApiException) as exc:
        hubspot_env.client.crm.contacts.batch_api.upsert(
            BatchInputSimplePublicObjectBatchInputUpsert(
                inputs=[
                    SimplePublicObjectBatchInputUpsert(id="n", id_property="closedloop_note", properties={})
                ]
            )
        )
    assert exc.value.status == 400
    _assert_error_shape(_body(exc.value))


def test_unique_custom_property_values_conflict(hubspot_env: HubSpotEnv) -> None:
    _create_property(hubspot_env, "closedloop_id", unique=True)
    first = _create(hubspot_env, email="u1@x.io", closedloop_id="L-9")
    second = _create(hubspot_env, email="u2@x.io")
    with pytest.raises(ApiException) as exc:
        hubspot_env.client.crm.contacts.basic_api.update(
            second, SimplePublicObjectInput(properties={"closedloop_id": "L-9"})
        )
    assert exc.value.status == 409
    assert first in _body(exc.value)["message"]
    hubspot_env.sandbox.delete_contact(first)  # archiving frees the value
    hubspot_env.client.crm.contacts.basic_api.update(
        second, SimplePublicObjectInput(properties={"closedloop_id": "L-9"})
    )
    assert hubspot_env.sandbox.find_contacts("closedloop_id", "L-9") == [second]


# ----- properties -------------------------------------------------------------------------------


def test_default_properties_and_groups(hubspot_env: HubSpotEnv) -> None:
    core = hubspot_env.client.crm.properties.core_api
    names = {p.name for p in core.get_all("contacts").results}
    stages = [
        "subscriber",
        "lead",
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "opportunity",
        "customer",
        "evangelist",
        "other",
    ]
    expected = {
        "email",
        "firstname",
        "lastname",
        "company",
        "phone",
        "jobtitle",
        "lifecyclestage",
        "hs_lead_status",
        "hubspotscore",
        "hs_analytics_source",
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
    }
    assert expected | {f"hs_lifecyclestage_{s}_date" for s in stages} <= names
    assert not any(n.startswith("closedloop_") for n in names)
    lifecycle = core.get_by_name("contacts", "lifecyclestage")
    assert [o.value for o in lifecycle.options] == stages
    assert lifecycle.type == "enumeration"
    groups_api = hubspot_env.client.crm.properties.groups_api
    groups = {g.name for g in groups_api.get_all("contacts").results}
    assert "contactinformation" in groups
    assert groups_api.get_by_name("contacts", lifecycle.group_name).name == lifecycle.group_name


def test_property_create_get_patch_and_conflicts(hubspot_env: HubSpotEnv) -> None:
    props = hubspot_env.client.crm.properties
    props.groups_api.create("contacts", PropertyGroupCreate(name="closedloop", label="Closedloop"))
    created = props.core_api.create(
        "contacts",
        PropertyCreate(
            name="closedloop_stage",
            label="Closedloop stage",
            type="enumeration",
            field_type="select",
            group_name="closedloop",
            options=[{"label": "MQL", "value": "mql", "displayOrder": 0, "hidden": False}],
        ),
    )
    assert created.group_name == "closedloop"
    assert created.has_unique_value is False
    with pytest.raises(PropertiesApiException) as dup:
        _create_property(hubspot_env, "closedloop_stage", unique=False)
    assert dup.value.status == 409
    with pytest.raises(PropertiesApiException) as dup_group:
        props.groups_api.create("contacts", PropertyGroupCreate(name="closedloop", label="Again"))
    assert dup_group.value.status == 409
    with pytest.raises(PropertiesApiException) as bad_group:
        props.core_api.create(
            "contacts",
            PropertyCreate(
                name="closedloop_x", label="x", type="string", field_type="text", group_name="nope"
            ),
        )
    assert bad_group.value.status == 400
    patched = props.core_api.update("contacts", "closedloop_stage", PropertyUpdate(label="Funnel stage"))
    assert props.core_api.get_by_name("contacts", "closedloop_stage").label == patched.label == "Funnel stage"
    with pytest.raises(PropertiesApiException) as missing:
        props.core_api.get_by_name("contacts", "closedloop_nothing")
    assert missing.value.status == 404
    # The new property is writable, and its options are enforced.
    cid = _create(hubspot_env, email="p@x.io", closedloop_stage="mql")
    assert (hubspot_env.sandbox.get_contact(cid) or {})["closedloop_stage"] == "mql"
    with pytest.raises(ApiException):
        _create(hubspot_env, email="q@x.io", closedloop_stage="won")


# ----- search -----------------------------------------------------------------------------------

PEOPLE: list[dict[str, str]] = [
    {
        "email": "ada@acme.io",
        "firstname": "Ada",
        "hubspotscore": "10",
        "lifecyclestage": "lead",
        "jobtitle": "Software Engineer",
        "company": "Acme",
    },
    {
        "email": "bob@acme.io",
        "firstname": "Bob",
        "hubspotscore": "50",
        "lifecyclestage": "marketingqualifiedlead",
    },
    {
        "email": "cyd@other.org",
        "firstname": "Cyd",
        "hubspotscore": "75",
        "lifecyclestage": "lead",
        "jobtitle": "Head of Engineering",
        "company": "Other",
    },
    {"email": "dee@other.org", "firstname": "Dee", "hubspotscore": "20", "lifecyclestage": "customer"},
    {"email": "eve@acme.io", "firstname": "Eve", "lifecyclestage": "subscriber", "company": "Acme"},
]


def _num(p: dict[str, str]) -> float | None:
    return float(p["hubspotscore"]) if "hubspotscore" in p else None


SEARCH_CASES: list[tuple[str, list[dict[str, Any]], Callable[[dict[str, str]], bool]]] = [
    (
        "EQ",
        [{"propertyName": "firstname", "operator": "EQ", "value": "ada"}],
        lambda p: p["firstname"] == "Ada",
    ),
    (
        "NEQ",
        [{"propertyName": "lifecyclestage", "operator": "NEQ", "value": "lead"}],
        lambda p: p.get("lifecyclestage") != "lead",
    ),
    (
        "LT",
        [{"propertyName": "hubspotscore", "operator": "LT", "value": "50"}],
        lambda p: (n := _num(p)) is not None and n < 50,
    ),
    (
        "LTE",
        [{"propertyName": "hubspotscore", "operator": "LTE", "value": "50"}],
        lambda p: (n := _num(p)) is not None and n <= 50,
    ),
    (
        "GT",
        [{"propertyName": "hubspotscore", "operator": "GT", "value": "50"}],
        lambda p: (n := _num(p)) is not None and n > 50,
    ),
    (
        "GTE",
        [{"propertyName": "hubspotscore", "operator": "GTE", "value": "50"}],
        lambda p: (n := _num(p)) is not None and n >= 50,
    ),
    (
        "BETWEEN",
        [{"propertyName": "hubspotscore", "operator": "BETWEEN", "value": "15", "highValue": "60"}],
        lambda p: (n := _num(p)) is not None and 15 <= n <= 60,
    ),
    (
        "IN",
        [{"propertyName": "lifecyclestage", "operator": "IN", "values": ["lead", "customer"]}],
        lambda p: p.get("lifecyclestage") in {"lead", "customer"},
    ),
    (
        "NOT_IN",
        [{"propertyName": "lifecyclestage", "operator": "NOT_IN", "values": ["lead", "customer"]}],
        lambda p: p.get("lifecyclestage") not in {"lead", "customer"},
    ),
    ("HAS_PROPERTY", [{"propertyName": "company", "operator": "HAS_PROPERTY"}], lambda p: "company" in p),
    (
        "NOT_HAS_PROPERTY",
        [{"propertyName": "company", "operator": "NOT_HAS_PROPERTY"}],
        lambda p: "company" not in p,
    ),
    (
        "CONTAINS_TOKEN",
        [{"propertyName": "jobtitle", "operator": "CONTAINS_TOKEN", "value": "engineer"}],
        lambda p: "engineer" in p.get("jobtitle", "").lower().split(),
    ),
    (
        "CONTAINS_TOKEN wildcard",
        [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@acme.io"}],
        lambda p: p["email"].endswith("@acme.io"),
    ),
    (
        "AND",
        [
            {"propertyName": "company", "operator": "EQ", "value": "Acme"},
            {"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"},
        ],
        lambda p: p.get("company") == "Acme" and p.get("lifecyclestage") == "lead",
    ),
]


@pytest.mark.parametrize(("label", "filters", "predicate"), SEARCH_CASES, ids=[c[0] for c in SEARCH_CASES])
def test_search_operators(
    hubspot_env: HubSpotEnv,
    label: str,
    filters: list[dict[str, Any]],
    predicate: Callable[[dict[str, str]], bool],
) -> None:
    ids = [hubspot_env.sandbox.seed_contact(dict(p)) for p in PEOPLE]
    expected = sorted(i for i, p in zip(ids, PEOPLE, strict=True) if predicate(p))
    result = hubspot_env.client.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(filter_groups=[{"filters": filters}], properties=["email"], limit=100)
    )
    assert result.total == len(expected)
    assert sorted(r.id for r in result.results) == expected


def test_search_filter_groups_are_ored(hubspot_env: HubSpotEnv) -> None:
    ids = [hubspot_env.sandbox.seed_contact(dict(p)) for p in PEOPLE]
    result = hubspot_env.client.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[
                {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "Ada"}]},
                {"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}]},
            ],
        )
    )
    assert sorted(r.id for r in result.results) == sorted([ids[0], ids[3]])
    # Default properties when none are asked for.
    assert set(result.results[0].properties) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }


def test_search_lastmodifieddate_watermark_ascending(hubspot_env: HubSpotEnv) -> None:
    sandbox = hubspot_env.sandbox
    ids = [sandbox.seed_contact({"email": f"w{i}@x.io"}) for i in range(6)]
    sandbox.clock.advance(timedelta(hours=1))
    watermark = sandbox.clock.now()
    for cid in (ids[4], ids[1], ids[2]):
        sandbox.clock.advance(timedelta(minutes=1))
        sandbox.update_contact(cid, {"jobtitle": "changed"})
    result = hubspot_env.client.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[
                {
                    "filters": [
                        {
                            "propertyName": "lastmodifieddate",
                            "operator": "GTE",
                            "value": str(to_epoch_ms(watermark)),
                        }
                    ]
                }
            ],
            sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            properties=["lastmodifieddate"],
            limit=200,
        )
    )
    assert [r.id for r in result.results] == [ids[4], ids[1], ids[2]]


def test_search_paging_limits_and_10k_cap(hubspot_env: HubSpotEnv) -> None:
    sandbox = hubspot_env.sandbox
    total = 10_050
    for i in range(total):
        sandbox.seed_contact({"email": f"c{i}@bulk.io", "company": "Bulk"})
    search = hubspot_env.client.crm.contacts.search_api.do_search
    body = {"filterGroups": [{"filters": [{"propertyName": "company", "operator": "EQ", "value": "Bulk"}]}]}
    first = search(PublicObjectSearchRequest(**{"filter_groups": body["filterGroups"], "limit": 200}))
    assert first.total == total
    assert len(first.results) == 200
    second = search(
        PublicObjectSearchRequest(
            filter_groups=body["filterGroups"], limit=200, after=first.paging.next.after
        )
    )
    assert {r.id for r in first.results}.isdisjoint({r.id for r in second.results})
    near_end = search(PublicObjectSearchRequest(filter_groups=body["filterGroups"], limit=100, after="9900"))
    assert len(near_end.results) == 100
    with pytest.raises(ApiException) as too_far:
        search(
            PublicObjectSearchRequest(
                filter_groups=body["filterGroups"], limit=100, after=near_end.paging.next.after
            )
        )
    assert too_far.value.status == 400
    _assert_error_shape(_body(too_far.value))
    with pytest.raises(ApiException) as too_big:
        search(PublicObjectSearchRequest(filter_groups=body["filterGroups"], limit=201))
    assert too_big.value.status == 400


def test_search_has_its_own_per_second_limit(hubspot_factory: Callable[..., HubSpotEnv]) -> None:
    env = hubspot_factory(search_per_second=5)
    statuses = []
    for _ in range(8):
        try:
            env.client.crm.contacts.search_api.do_search(PublicObjectSearchRequest(limit=1))
            statuses.append(200)
        except ApiException as exc:
            statuses.append(exc.status)
            body = _body(exc)
            assert body["errorType"] == "RATE_LIMIT"
            assert body["policyName"] == "SECONDLY"
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]


# ----- rate limits and faults -------------------------------------------------------------------


def test_ten_secondly_limit_headers_and_429_body(hubspot_factory: Callable[..., HubSpotEnv]) -> None:
    env = hubspot_factory(window_limit=3, window_seconds=30)
    api = env.client.crm.contacts.basic_api
    remaining = []
    for _ in range(3):
        _, status, headers = api.get_page_with_http_info()
        assert status == 200
        assert headers["X-HubSpot-RateLimit-Max"] == "3"
        assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "30000"
        remaining.append(int(headers["X-HubSpot-RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]
    with pytest.raises(ApiException) as exc:
        api.get_page()
    assert exc.value.status == 429
    body = _body(exc.value)
    _assert_error_shape(body)
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert exc.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_daily_limit_resets_with_the_sandbox_day(hubspot_factory: Callable[..., HubSpotEnv]) -> None:
    env = hubspot_factory(daily_limit=2)
    api = env.client.crm.contacts.basic_api
    _, _, headers = api.get_page_with_http_info()
    assert headers["X-HubSpot-RateLimit-Daily"] == "2"
    assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == "1"
    api.get_page()
    with pytest.raises(ApiException) as exc:
        api.get_page()
    assert _body(exc.value)["policyName"] == "DAILY"
    env.sandbox.clock.advance(timedelta(days=1))
    assert api.get_page().results == []


def _set_faults(env: HubSpotEnv, **rule: Any) -> None:
    response = requests.put(f"{env.url}/__admin/faults", json={"rules": [rule], "seed": 7}, timeout=5)
    response.raise_for_status()


def test_injected_429_and_5xx_reach_the_client_in_hubspot_shape(hubspot_env: HubSpotEnv) -> None:
    _set_faults(hubspot_env, path_regex="/crm/v3/objects/contacts$", rate_429=1.0)
    with pytest.raises(ApiException) as limited:
        hubspot_env.client.crm.contacts.basic_api.get_page()
    assert limited.value.status == 429
    assert _body(limited.value)["errorType"] == "RATE_LIMIT"
    _set_faults(hubspot_env, path_regex="/crm/v3/objects/contacts$", rate_5xx=1.0)
    with pytest.raises(ApiException) as broken:
        hubspot_env.client.crm.contacts.basic_api.get_page()
    assert broken.value.status in {500, 502, 503}
    _assert_error_shape(_body(broken.value))
    # Other paths are untouched by the rule.
    assert hubspot_env.client.crm.properties.core_api.get_all("contacts").results
    counted = {(c["endpoint"], c["status"]) for c in hubspot_env.sandbox.counter.snapshot()}
    assert ("/crm/v3/objects/contacts", 429) in counted


def test_injected_drop_closes_the_socket(hubspot_env: HubSpotEnv) -> None:
    _set_faults(hubspot_env, path_regex="/crm/v3/objects/contacts$", rate_drop=1.0)
    with pytest.raises(urllib3.exceptions.HTTPError) as exc:
        hubspot_env.client.crm.contacts.basic_api.get_page()
    assert not isinstance(exc.value, ApiException)
    connection = http.client.HTTPConnection("127.0.0.1", hubspot_env.server.port, timeout=5)
    connection.request(
        "GET", "/crm/v3/objects/contacts", headers={"Authorization": f"Bearer {hubspot_env.sandbox.token}"}
    )
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        connection.getresponse()
    connection.close()
    assert hubspot_env.sandbox.counter.total("/crm/v3/objects/contacts") >= 2
    requests.put(f"{hubspot_env.url}/__admin/faults", json={"rules": []}, timeout=5).raise_for_status()
    assert hubspot_env.client.crm.contacts.basic_api.get_page().results == []


# ----- webhooks ---------------------------------------------------------------------------------

SECRET = "webhook-client-secret"


def _valid_v3(post: Any) -> bool:
    return bool(
        Signature.is_valid(
            signature=post.headers["X-HubSpot-Signature-v3"],
            client_secret=SECRET,
            request_body=post.body,
            http_uri=post.uri,
            http_method="POST",
            signature_version="v3",
            timestamp=post.headers["X-HubSpot-Request-Timestamp"],
        )
    )


def test_webhooks_are_signed_and_carry_hubspot_fields(
    hubspot_env: HubSpotEnv, hubspot_receiver: WebhookReceiver
) -> None:
    sandbox = hubspot_env.sandbox
    sandbox.configure_webhooks(hubspot_receiver.url, SECRET, properties=["lifecyclestage", "email"])
    sandbox.start_webhook_delivery()
    cid = _create(hubspot_env, email="hook@x.io", jobtitle="not subscribed")
    sandbox.update_contact(cid, {"lifecyclestage": "lead"})
    other = sandbox.seed_contact({"email": "other@x.io"})
    sandbox.merge_contacts(cid, other)
    hubspot_env.client.crm.contacts.basic_api.archive(cid)
    assert hubspot_receiver.wait_for(
        lambda r: any(e["subscriptionType"] == "contact.deletion" for e in r.events())
    )
    posts = hubspot_receiver.snapshot()
    assert all(_valid_v3(p) for p in posts)
    assert all(p.headers["X-HubSpot-Signature-Version"] == "v1" for p in posts)
    assert all(
        Signature.is_valid(p.headers["X-HubSpot-Signature"], SECRET, p.body, signature_version="v1")
        for p in posts
    )
    events = hubspot_receiver.events()
    mine = [e for e in events if e["objectId"] == int(cid)]
    kinds = [(e["subscriptionType"], e.get("propertyName")) for e in mine]
    assert ("contact.creation", None) in kinds
    assert ("contact.propertyChange", "email") in kinds
    assert ("contact.propertyChange", "lifecyclestage") in kinds
    assert ("contact.merge", None) in kinds
    assert ("contact.deletion", None) in kinds
    assert not any(e.get("propertyName") == "jobtitle" for e in events)
    by_kind = {(e["subscriptionType"], e.get("propertyName")): e for e in mine}
    created = by_kind[("contact.creation", None)]
    assert created["changeSource"] == "INTEGRATION"
    assert created["portalId"] == sandbox.portal_id and created["appId"] == sandbox.app_id
    assert created["attemptNumber"] == 0
    assert isinstance(created["occurredAt"], int) and created["occurredAt"] >= to_epoch_ms(START)
    ui_change = by_kind[("contact.propertyChange", "lifecyclestage")]
    assert ui_change["changeSource"] == "CRM_UI"
    assert ui_change["propertyValue"] == "lead"
    assert by_kind[("contact.merge", None)]["mergedObjectIds"] == [int(cid), int(other)]
    assert len({e["eventId"] for e in events}) == len(events)
    # A tampered body fails verification.
    assert not Signature.is_valid(
        signature=posts[0].headers["X-HubSpot-Signature-v3"],
        client_secret=SECRET,
        request_body=posts[0].body + " ",
        http_uri=posts[0].uri,
        signature_version="v3",
        timestamp=posts[0].headers["X-HubSpot-Request-Timestamp"],
    )


def test_webhooks_batch_at_most_100_events(
    hubspot_env: HubSpotEnv, hubspot_receiver: WebhookReceiver
) -> None:
    sandbox = hubspot_env.sandbox
    sandbox.configure_webhooks(hubspot_receiver.url, SECRET, properties=[])
    for i in range(250):
        sandbox.seed_contact({"email": f"bulk{i}@x.io"})
    sandbox.start_webhook_delivery()
    assert hubspot_receiver.wait_for(lambda r: len(r.events()) >= 250)
    posts = hubspot_receiver.snapshot()
    assert len(posts) >= 3
    assert max(len(p.events()) for p in posts) <= 100
    assert sorted(e["objectId"] for e in hubspot_receiver.events()) == sorted(
        int(c["id"]) for c in sandbox.contacts()
    )


def test_webhook_retries_with_backoff_and_attempt_numbers(
    hubspot_env: HubSpotEnv, hubspot_receiver: WebhookReceiver
) -> None:
    hubspot_receiver.statuses = [500, 503]
    sandbox = hubspot_env.sandbox
    sandbox.configure_webhooks(hubspot_receiver.url, SECRET, properties=[], retry_base_seconds=0.1)
    sandbox.start_webhook_delivery()
    sandbox.seed_contact({"email": "retry@x.io"})
    assert hubspot_receiver.wait_for(lambda r: any(p.status == 200 for p in r.snapshot()))
    posts = hubspot_receiver.snapshot()
    assert [p.status for p in posts] == [500, 503, 200]
    assert [p.events()[0]["attemptNumber"] for p in posts] == [0, 1, 2]
    assert len({p.events()[0]["eventId"] for p in posts}) == 1
    gaps = [b.at - a.at for a, b in zip(posts, posts[1:], strict=False)]
    assert gaps[0] >= 0.1
    assert gaps[1] >= 0.2
    assert all(_valid_v3(p) for p in posts)


def test_webhook_gives_up_after_max_attempts_and_survives_dead_receiver(hubspot_env: HubSpotEnv) -> None:
    receiver = WebhookReceiver()
    url = receiver.url
    receiver.stop()  # nothing listens any more: connection refused
    sandbox = hubspot_env.sandbox
    sandbox.configure_webhooks(url, SECRET, properties=[], max_attempts=3, retry_base_seconds=0.02)
    sandbox.start_webhook_delivery()
    sandbox.seed_contact({"email": "dead@x.io"})
    assert sandbox.webhooks.wait_idle(timeout=5)
    attempts = [d for d in sandbox.webhooks.deliveries]
    assert [d.attempt_numbers for d in attempts] == [[0], [1], [2]]
    assert all(d.status is None for d in attempts)
    assert [e["attemptNumber"] for e in sandbox.webhooks.dead_letters] == [2]
