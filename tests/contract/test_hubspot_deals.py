"""Contract tests: deals, deal pipelines, associations v4, property history and deal webhooks of the
HubSpot sandbox, through the real hubspot-api-client over real HTTP.

HubSpot references: CRM deals (https://developers.hubspot.com/docs/api/crm/deals), pipelines
(https://developers.hubspot.com/docs/api/crm/pipelines), associations v4
(https://developers.hubspot.com/docs/api/crm/associations), search
(https://developers.hubspot.com/docs/api/crm/search), webhooks
(https://developers.hubspot.com/docs/api/webhooks), default deal properties
(https://knowledge.hubspot.com/properties/hubspots-default-deal-properties).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hubspot.crm.associations.v4 import (
    AssociationSpec,
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicDefaultAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicAssociationMultiPost,
    PublicDefaultAssociationMultiPost,
    PublicFetchAssociationsBatchRequest,
    PublicObjectId,
)
from hubspot.crm.associations.v4.schema import PublicAssociationDefinitionCreateRequest
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.deals.exceptions import ApiException
from hubspot.crm.pipelines import PipelineInput, PipelineStageInput
from hubspot.crm.pipelines.exceptions import ApiException as PipelinesApiException
from hubspot.utils.signature import Signature

from sandboxes.common import SimClock
from sync.timeutil import parse_timestamp, to_epoch_ms
from tests.contract.hubspot_fixtures import HubSpotEnv, WebhookReceiver, start_hubspot

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "deal-webhook-secret"
SALES_STAGES = [
    ("appointmentscheduled", "Appointment Scheduled", "false", "0.2"),
    ("qualifiedtobuy", "Qualified To Buy", "false", "0.4"),
    ("presentationscheduled", "Presentation Scheduled", "false", "0.6"),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "false", "0.8"),
    ("contractsent", "Contract Sent", "false", "0.9"),
    ("closedwon", "Closed Won", "true", "1.0"),
    ("closedlost", "Closed Lost", "true", "0.0"),
]


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
        env.sandbox.stop_webhook_delivery()
        env.server.stop()


@pytest.fixture
def env(hubspot_factory: Callable[..., HubSpotEnv]) -> HubSpotEnv:
    return hubspot_factory()


def _body(exc: Exception) -> dict[str, Any]:
    return dict(json.loads(exc.body))  # type: ignore[attr-defined]


def _deal(env: HubSpotEnv, **props: str) -> str:
    created = env.client.crm.deals.basic_api.create(SimplePublicObjectInputForCreate(properties=props))
    return str(created.id)


def _contact(env: HubSpotEnv, email: str) -> str:
    return env.sandbox.seed_contact({"email": email})


# ----- deals: CRUD and derived properties ---------------------------------------------------------


def test_deal_crud_and_stage_derived_properties(env: HubSpotEnv) -> None:
    """Deals guide: create/read/update/archive; dealstage drives hs_is_closed, hs_is_closed_won,
    hs_deal_stage_probability and the hs_date_entered_<stage> / hs_v2_date_entered_<stage> dates
    (default deal properties article); one pipeline means ``pipeline`` defaults to "default"."""
    api = env.client.crm.deals.basic_api
    created = api.create(
        SimplePublicObjectInputForCreate(
            properties={"dealname": "Acme renewal", "dealstage": "qualifiedtobuy", "amount": "1200.50"}
        )
    )
    assert created.properties["hs_object_id"] == created.id
    got = api.get_by_id(created.id)
    assert set(got.properties) == {
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    }
    assert got.properties["pipeline"] == "default"
    assert got.properties["closedate"] is None
    flags = api.get_by_id(
        created.id,
        properties=[
            "hs_is_closed",
            "hs_is_closed_won",
            "hs_deal_stage_probability",
            "hs_v2_date_entered_qualifiedtobuy",
        ],
    ).properties
    assert (flags["hs_is_closed"], flags["hs_is_closed_won"], flags["hs_deal_stage_probability"]) == (
        "false",
        "false",
        "0.4",
    )
    assert parse_timestamp(flags["hs_v2_date_entered_qualifiedtobuy"]) == created.created_at

    env.sandbox.clock.advance(timedelta(days=3))
    won = api.update(
        created.id,
        SimplePublicObjectInput(properties={"dealstage": "closedwon", "closed_won_reason": "Price"}),
    )
    assert won.updated_at > created.updated_at
    stored = env.sandbox.get_deal(created.id) or {}
    assert stored["hs_is_closed"] == stored["hs_is_closed_won"] == "true"
    assert stored["hs_is_closed_lost"] == "false"
    assert stored["hs_closed_amount"] == "1200.50"
    assert stored["closed_won_reason"] == "Price"
    # An empty close date is set when the deal closes; leaving a stage stamps its exit date.
    assert parse_timestamp(stored["closedate"]) == won.updated_at
    assert parse_timestamp(stored["hs_date_exited_qualifiedtobuy"]) == won.updated_at
    assert parse_timestamp(stored["hs_v2_date_entered_closedwon"]) == won.updated_at
    assert parse_timestamp(stored["hs_lastmodifieddate"]) == won.updated_at

    api.archive(created.id)
    with pytest.raises(ApiException) as missing:
        api.get_by_id(created.id)
    assert missing.value.status == 404
    assert env.sandbox.get_deal(created.id) is None


@pytest.mark.parametrize(
    "prop",
    ["hs_is_closed", "hs_is_closed_won", "hs_deal_stage_probability", "hs_lastmodifieddate", "hs_object_id"],
)
def test_calculated_deal_properties_are_read_only(env: HubSpotEnv, prop: str) -> None:
    """Properties API: readOnlyValue properties are HubSpot's; writing one is a 400 VALIDATION_ERROR
    whose message lists the READ_ONLY_VALUE result, and nothing is created."""
    definition = env.client.crm.properties.core_api.get_by_name("deals", prop)
    assert definition.modification_metadata.read_only_value is True
    with pytest.raises(ApiException) as exc:
        _deal(env, dealname="x", dealstage="appointmentscheduled", **{prop: "1"})
    assert exc.value.status == 400
    body = _body(exc.value)
    assert body["category"] == "VALIDATION_ERROR"
    assert "READ_ONLY_VALUE" in body["message"]
    assert body["errors"][0]["context"]["propertyName"] == [prop]
    assert env.client.crm.deals.basic_api.get_page().results == []


def test_deal_stage_must_exist_in_the_deals_pipeline(env: HubSpotEnv) -> None:
    """Pipelines guide: a deal's stage belongs to its pipeline; unknown stages are INVALID_OPTION."""
    with pytest.raises(ApiException) as unknown:
        _deal(env, dealname="x", dealstage="negotiation")
    assert unknown.value.status == 400
    assert "INVALID_OPTION" in _body(unknown.value)["message"]
    renewals = env.client.crm.pipelines.pipelines_api.create(
        "deals",
        PipelineInput(
            label="Renewals",
            display_order=1,
            stages=[
                PipelineStageInput(label="Due", display_order=0, metadata={"probability": "0.5"}),
                PipelineStageInput(
                    label="Renewed", display_order=1, metadata={"probability": "1.0", "isClosed": "true"}
                ),
            ],
        ),
    )
    due = renewals.stages[0].id
    with pytest.raises(ApiException) as wrong_pipeline:
        _deal(env, dealname="x", dealstage=due)  # the default pipeline has no such stage
    assert "INVALID_OPTION" in _body(wrong_pipeline.value)["message"]
    deal = _deal(env, dealname="r", dealstage=due, pipeline=renewals.id)
    assert (env.sandbox.get_deal(deal) or {})["pipeline"] == renewals.id


def test_deal_batches_take_at_most_100_inputs(env: HubSpotEnv) -> None:
    """Deals guide, "Limits": batch create/read/update take up to 100 inputs; a partial read is 207."""
    batch = env.client.crm.deals.batch_api
    created = batch.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                SimplePublicObjectBatchInputForCreate(
                    properties={"dealname": f"d{i}", "dealstage": "appointmentscheduled", "amount": str(i)}
                )
                for i in range(100)
            ]
        )
    )
    ids = sorted((r.id for r in created.results), key=int)
    assert len(ids) == 100
    updated = batch.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(id=i, properties={"dealstage": "closedlost"}) for i in ids[:3]
            ]
        )
    )
    assert {r.properties["dealstage"] for r in updated.results} == {"closedlost"}
    read, status, _ = batch.read_with_http_info(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=ids[0]), SimplePublicObjectId(id="999")],
            properties=["hs_is_closed_lost", "dealstage"],
            properties_with_history=[],
        )
    )
    assert status == 207
    assert [r.properties["hs_is_closed_lost"] for r in read.results] == ["true"]
    assert read.errors[0].context == {"ids": ["999"]}
    with pytest.raises(ApiException) as too_many:
        batch.read(
            BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=i) for i in [*ids, "1"]],
                properties=[],
                properties_with_history=[],
            )
        )
    assert too_many.value.status == 400


def test_deal_search_by_hs_lastmodifieddate_is_the_change_feed(env: HubSpotEnv) -> None:
    """Search guide: deals search on hs_lastmodifieddate with ascending sort, up to 200 per page."""
    sandbox = env.sandbox
    ids = [_deal(env, dealname=f"s{i}", dealstage="appointmentscheduled") for i in range(5)]
    sandbox.clock.advance(timedelta(hours=1))
    watermark = sandbox.clock.now()
    for deal in (ids[3], ids[0]):
        sandbox.clock.advance(timedelta(minutes=1))
        sandbox.update_deal(deal, {"dealstage": "contractsent"})
    search = env.client.crm.deals.search_api.do_search
    request = {
        "filter_groups": [
            {
                "filters": [
                    {
                        "propertyName": "hs_lastmodifieddate",
                        "operator": "GTE",
                        "value": str(to_epoch_ms(watermark)),
                    }
                ]
            }
        ],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["dealstage", "hs_lastmodifieddate"],
        "limit": 200,
    }
    result = search(PublicObjectSearchRequest(**request))
    assert [r.id for r in result.results] == [ids[3], ids[0]]
    assert {r.properties["dealstage"] for r in result.results} == {"contractsent"}
    with pytest.raises(ApiException) as too_big:
        search(PublicObjectSearchRequest(**{**request, "limit": 201}))
    assert too_big.value.status == 400


def test_deal_and_contact_search_share_the_per_second_limit(
    hubspot_factory: Callable[..., HubSpotEnv],
) -> None:
    """Search guide, "Limits": the search endpoints are limited to 5 requests per second per account,
    whatever the object."""
    env = hubspot_factory(search_per_second=5)
    statuses = []
    for i in range(8):
        api = env.client.crm.deals.search_api if i % 2 else env.client.crm.contacts.search_api
        try:
            api.do_search(PublicObjectSearchRequest(limit=1))
            statuses.append(200)
        except Exception as exc:  # each API module has its own ApiException class
            statuses.append(getattr(exc, "status", 0))
            assert _body(exc)["policyName"] == "SECONDLY"
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]


# ----- pipelines ----------------------------------------------------------------------------------


def test_default_sales_pipeline_with_stage_metadata_as_strings(env: HubSpotEnv) -> None:
    """Pipelines guide: every account has the "Sales Pipeline" (id default); deal stages carry
    metadata isClosed and probability, returned as strings."""
    api = env.client.crm.pipelines.pipelines_api
    pipelines = api.get_all("deals").results
    assert [p.id for p in pipelines] == ["default"]
    default = api.get_by_id("deals", "default")
    assert default.label == "Sales Pipeline"
    got = [(s.id, s.label, s.metadata["isClosed"], s.metadata["probability"]) for s in default.stages]
    assert got == SALES_STAGES
    with pytest.raises(PipelinesApiException) as missing:
        api.get_by_id("deals", "nope")
    assert missing.value.status == 404


def test_created_pipeline_adds_stages_options_and_stage_dates(env: HubSpotEnv) -> None:
    """Pipelines guide, "Create a pipeline": deal stages need metadata.probability; the new stages
    become dealstage options and get their own date-entered properties."""
    api = env.client.crm.pipelines.pipelines_api
    with pytest.raises(PipelinesApiException) as no_probability:
        api.create(
            "deals",
            PipelineInput(
                label="Bad",
                display_order=2,
                stages=[PipelineStageInput(label="A", display_order=0, metadata={})],
            ),
        )
    assert no_probability.value.status == 400
    created = api.create(
        "deals",
        PipelineInput(
            label="Partners",
            display_order=1,
            stages=[
                PipelineStageInput(label="Referred", display_order=0, metadata={"probability": "0.1"}),
                PipelineStageInput(
                    label="Signed", display_order=1, metadata={"probability": "1.0", "isClosed": "true"}
                ),
                PipelineStageInput(
                    label="Dropped", display_order=2, metadata={"probability": "0.0", "isClosed": "true"}
                ),
            ],
        ),
    )
    assert [p.label for p in api.get_all("deals").results] == ["Sales Pipeline", "Partners"]
    referred, signed, dropped = (s.id for s in created.stages)
    core = env.client.crm.properties.core_api
    stage_options = {o.value for o in core.get_by_name("deals", "dealstage").options}
    assert {referred, signed, dropped, "closedwon"} <= stage_options
    assert core.get_by_name("deals", f"hs_v2_date_entered_{signed}").modification_metadata.read_only_value
    deal = _deal(env, dealname="p", pipeline=created.id, dealstage=referred)
    env.sandbox.update_deal(deal, {"dealstage": dropped})
    stored = env.sandbox.get_deal(deal) or {}
    assert (stored["hs_is_closed"], stored["hs_is_closed_won"], stored["hs_is_closed_lost"]) == (
        "true",
        "false",
        "true",
    )


# ----- associations v4 ----------------------------------------------------------------------------


def test_association_labels_between_contacts_and_deals(env: HubSpotEnv) -> None:
    """Associations v4 schema: the unlabeled contact→deal type is HUBSPOT_DEFINED 4 and deal→contact 3;
    a custom label is USER_DEFINED with its own type id in each direction."""
    definitions = env.client.crm.associations.v4.schema.definitions_api
    forward = definitions.get_all("contacts", "deals").results
    backward = definitions.get_all("deals", "contacts").results
    assert [(t.category, t.type_id, t.label) for t in forward] == [("HUBSPOT_DEFINED", 4, None)]
    assert [(t.category, t.type_id, t.label) for t in backward] == [("HUBSPOT_DEFINED", 3, None)]
    created = definitions.create(
        "contacts",
        "deals",
        PublicAssociationDefinitionCreateRequest(label="Decision maker", name="decision_maker"),
    ).results
    assert {t.category for t in created} == {"USER_DEFINED"}
    labels = {(t.category, t.label) for t in definitions.get_all("contacts", "deals").results}
    assert labels == {("HUBSPOT_DEFINED", None), ("USER_DEFINED", "Decision maker")}
    custom_back = [
        t for t in definitions.get_all("deals", "contacts").results if t.category == "USER_DEFINED"
    ]
    assert len(custom_back) == 1 and custom_back[0].type_id not in {3, 4}
    with pytest.raises(Exception) as duplicate:
        definitions.create(
            "contacts",
            "deals",
            PublicAssociationDefinitionCreateRequest(label="Again", name="decision_maker"),
        )
    assert getattr(duplicate.value, "status", None) == 409


def _label_type(env: HubSpotEnv, from_type: str, to_type: str, label: str) -> int:
    definitions = env.client.crm.associations.v4.schema.definitions_api
    return next(t.type_id for t in definitions.get_all(from_type, to_type).results if t.label == label)


def test_association_batch_create_read_and_record_page(env: HubSpotEnv) -> None:
    """Associations v4: batch create with a label also makes the default association and the inverse
    direction; batch read lists each record's associations with their types; an id without
    associations is a 207 error; the per-record endpoint pages them."""
    definitions = env.client.crm.associations.v4.schema.definitions_api
    definitions.create(
        "contacts", "deals", PublicAssociationDefinitionCreateRequest(label="Champion", name="champion")
    )
    champion = _label_type(env, "contacts", "deals", "Champion")
    champion_back = _label_type(env, "deals", "contacts", "Champion")
    ada, bob = _contact(env, "ada@x.io"), _contact(env, "bob@x.io")
    deal = _deal(env, dealname="Big", dealstage="appointmentscheduled")
    lonely = _deal(env, dealname="Lonely", dealstage="appointmentscheduled")
    batch = env.client.crm.associations.v4.batch_api
    created = batch.create(
        "contacts",
        "deals",
        BatchInputPublicAssociationMultiPost(
            inputs=[
                PublicAssociationMultiPost(
                    _from=PublicObjectId(id=ada),
                    to=PublicObjectId(id=deal),
                    types=[
                        AssociationSpec(association_category="USER_DEFINED", association_type_id=champion)
                    ],
                )
            ]
        ),
    )
    assert [(r.from_object_id, r.to_object_id, r.labels) for r in created.results] == [
        (ada, deal, ["Champion"])
    ]
    batch.create_default(
        "deals",
        "contacts",
        BatchInputPublicDefaultAssociationMultiPost(
            inputs=[
                PublicDefaultAssociationMultiPost(_from=PublicObjectId(id=deal), to=PublicObjectId(id=bob))
            ]
        ),
    )
    read, status, _ = batch.get_page_with_http_info(
        "deals",
        "contacts",
        BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[
                PublicFetchAssociationsBatchRequest(id=deal),
                PublicFetchAssociationsBatchRequest(id=lonely),
            ]
        ),
    )
    assert status == 207
    [row] = read.results
    assert row._from.id == deal
    types = {t.to_object_id: sorted((a.category, a.type_id) for a in t.association_types) for t in row.to}
    assert types == {
        ada: [("HUBSPOT_DEFINED", 3), ("USER_DEFINED", champion_back)],
        bob: [("HUBSPOT_DEFINED", 3)],
    }
    assert read.errors[0].category == "OBJECT_NOT_FOUND"
    page = env.client.crm.associations.v4.basic_api.get_page("contacts", ada, "deals")
    assert [(r.to_object_id, sorted(a.type_id for a in r.association_types)) for r in page.results] == [
        (deal, sorted([4, champion]))
    ]
    assert (env.sandbox.get_deal(deal) or {})["num_associated_contacts"] == "2"
    with pytest.raises(Exception) as bad_type:
        batch.create(
            "contacts",
            "deals",
            BatchInputPublicAssociationMultiPost(
                inputs=[
                    PublicAssociationMultiPost(
                        _from=PublicObjectId(id=ada),
                        to=PublicObjectId(id=deal),
                        types=[
                            AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=3)
                        ],
                    )
                ]
            ),
        )
    assert getattr(bad_type.value, "status", None) == 400  # 3 is deal→contact, not contact→deal


def test_deal_created_with_associations_in_the_request(env: HubSpotEnv) -> None:
    """Deals guide, "Create deals": ``associations`` in the create request link the new deal; an
    association to a missing record fails the request and creates nothing."""
    ada = _contact(env, "ada@x.io")
    spec = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]
    deal = env.client.crm.deals.basic_api.create(
        SimplePublicObjectInputForCreate(
            properties={"dealname": "With contact", "dealstage": "appointmentscheduled"},
            associations=[{"to": {"id": ada}, "types": spec}],
        )
    )
    assert env.sandbox.deal_contacts(deal.id) == [ada]
    with pytest.raises(ApiException) as missing:
        env.client.crm.deals.basic_api.create(
            SimplePublicObjectInputForCreate(
                properties={"dealname": "Orphan", "dealstage": "appointmentscheduled"},
                associations=[{"to": {"id": "424242"}, "types": spec}],
            )
        )
    assert missing.value.status == 400
    assert [r.id for r in env.client.crm.deals.basic_api.get_page().results] == [deal.id]


# ----- property history ---------------------------------------------------------------------------


def test_batch_read_with_history_for_contacts_and_deals(env: HubSpotEnv) -> None:
    """CRM objects guide, "propertiesWithHistory": each value with its timestamp, sourceType and
    sourceId, newest first; API writes are INTEGRATION, UI edits CRM_UI."""
    sandbox = env.sandbox
    contacts = env.client.crm.contacts
    cid = contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "h@x.io", "lifecyclestage": "lead"})
    ).id
    sandbox.clock.advance(timedelta(hours=2))
    sandbox.update_contact(cid, {"hs_lead_status": "IN_PROGRESS"})
    sandbox.clock.advance(timedelta(hours=2))
    contacts.basic_api.update(
        cid,
        SimplePublicObjectInput(
            properties={"lifecyclestage": "salesqualifiedlead", "hs_lead_status": "CONNECTED"}
        ),
    )
    from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId as ContactRead
    from hubspot.crm.contacts import SimplePublicObjectId as ContactId

    read = contacts.batch_api.read(
        ContactRead(
            inputs=[ContactId(id=cid)],
            properties=["email"],
            properties_with_history=["lifecyclestage", "hs_lead_status"],
        )
    )
    history = read.results[0].properties_with_history
    assert [(h.value, h.source_type) for h in history["lifecyclestage"]] == [
        ("salesqualifiedlead", "INTEGRATION"),
        ("lead", "INTEGRATION"),
    ]
    assert [(h.value, h.source_type) for h in history["hs_lead_status"]] == [
        ("CONNECTED", "INTEGRATION"),
        ("IN_PROGRESS", "CRM_UI"),
    ]
    ui_edit = history["hs_lead_status"][1].timestamp
    assert START + timedelta(hours=2) <= ui_edit < START + timedelta(hours=2, minutes=1)
    assert history["lifecyclestage"][0].timestamp - ui_edit >= timedelta(hours=2)

    deal = _deal(env, dealname="H", dealstage="appointmentscheduled")
    sandbox.clock.advance(timedelta(days=1))
    sandbox.update_deal(deal, {"dealstage": "contractsent"})
    sandbox.clock.advance(timedelta(days=1))
    env.client.crm.deals.basic_api.update(
        deal, SimplePublicObjectInput(properties={"dealstage": "closedlost"})
    )
    deal_read = env.client.crm.deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=deal)],
            properties=[],
            properties_with_history=["dealstage", "hs_is_closed"],
        )
    )
    stages = deal_read.results[0].properties_with_history["dealstage"]
    assert [(h.value, h.source_type) for h in stages] == [
        ("closedlost", "INTEGRATION"),
        ("contractsent", "CRM_UI"),
        ("appointmentscheduled", "INTEGRATION"),
    ]
    assert timedelta(days=1) <= stages[0].timestamp - stages[1].timestamp < timedelta(days=1, seconds=5)
    closed = deal_read.results[0].properties_with_history["hs_is_closed"]
    assert [(h.value, h.source_type) for h in closed] == [("true", "CALCULATED"), ("false", "CALCULATED")]


# ----- deal webhooks ------------------------------------------------------------------------------


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


def test_deal_webhooks_creation_property_and_association_changes(env: HubSpotEnv) -> None:
    """Webhooks guide: deal.creation, deal.propertyChange (subscribed properties only) and
    deal.associationChange (associationType, fromObjectId, toObjectId, associationRemoved), signed v3."""
    receiver = WebhookReceiver()
    try:
        sandbox = env.sandbox
        sandbox.configure_webhooks(receiver.url, SECRET, properties=[], deal_properties=["dealstage"])
        sandbox.start_webhook_delivery()
        ada = _contact(env, "ada@x.io")
        deal = _deal(env, dealname="Hooked", dealstage="appointmentscheduled", amount="10")
        env.client.crm.associations.v4.basic_api.create_default("deals", deal, "contacts", ada)
        sandbox.update_deal(deal, {"dealstage": "closedwon", "amount": "20"})
        env.client.crm.associations.v4.basic_api.archive("deals", deal, "contacts", ada)
        assert receiver.wait_for(lambda r: sum(e.get("associationRemoved") is True for e in r.events()) == 1)
        assert all(_valid_v3(p) for p in receiver.snapshot())
        events = [e for e in receiver.events() if e["subscriptionType"].startswith("deal.")]
        kinds = [(e["subscriptionType"], e.get("propertyName")) for e in events]
        assert ("deal.creation", None) in kinds
        assert kinds.count(("deal.propertyChange", "dealstage")) == 2  # set on create, then closedwon
        assert not any(e.get("propertyName") == "amount" for e in events)  # not subscribed
        created = next(e for e in events if e["subscriptionType"] == "deal.creation")
        assert created["objectId"] == int(deal) and created["changeSource"] == "INTEGRATION"
        moved = [e for e in events if e.get("propertyName") == "dealstage"][-1]
        assert (moved["propertyValue"], moved["changeSource"]) == ("closedwon", "CRM_UI")
        links = [e for e in events if e["subscriptionType"] == "deal.associationChange"]
        assert [
            (e["associationType"], e["fromObjectId"], e["toObjectId"], e["associationRemoved"]) for e in links
        ] == [
            ("DEAL_TO_CONTACT", int(deal), int(ada), False),
            ("DEAL_TO_CONTACT", int(deal), int(ada), True),
        ]
        assert "objectId" not in links[0]
    finally:
        receiver.stop()


def test_no_deal_events_without_a_deal_subscription(env: HubSpotEnv) -> None:
    """Webhooks guide: an app receives only the subscription types it subscribed to."""
    receiver = WebhookReceiver()
    try:
        env.sandbox.configure_webhooks(receiver.url, SECRET, properties=[])
        env.sandbox.start_webhook_delivery()
        _deal(env, dealname="Quiet", dealstage="appointmentscheduled")
        _contact(env, "marker@x.io")
        assert receiver.wait_for(
            lambda r: any(e["subscriptionType"] == "contact.creation" for e in r.events())
        )
        assert not any(e["subscriptionType"].startswith("deal.") for e in receiver.events())
    finally:
        receiver.stop()


def test_association_batch_read_takes_at_most_1000_ids(env: HubSpotEnv) -> None:
    """Associations changelog (https://developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api):
    batch read requests may not exceed 1,000 ids."""
    batch = env.client.crm.associations.v4.batch_api
    ids = [PublicFetchAssociationsBatchRequest(id=str(5_000_001 + i)) for i in range(1001)]
    with pytest.raises(Exception) as too_many:
        batch.get_page("deals", "contacts", BatchInputPublicFetchAssociationsBatchRequest(inputs=ids))
    assert getattr(too_many.value, "status", None) == 400
    assert _body(too_many.value)["category"] == "VALIDATION_ERROR"
    _, status, _ = batch.get_page_with_http_info(
        "deals", "contacts", BatchInputPublicFetchAssociationsBatchRequest(inputs=ids[:1000])
    )
    assert status == 207  # accepted; none of these deals exists, so each id is an error
