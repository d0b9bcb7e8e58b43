"""Conditions, projection, closed-loop values, preview and the JSON Schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from sync.mapping import Mapping, load_mapping, parse_mapping_text
from sync.mapping.conditions import ConditionSyntaxError, compile_condition
from sync.mapping.preview import preview
from sync.mapping.project import closed_loop_values, project
from sync.mapping.schema import json_schema
from sync.stages import PersonView


def sfa_view(ma: Any = None, lead: Any = None, contact: Any = None, opportunity: Any = None) -> PersonView:
    """A person's view with the sales side given per Salesforce object."""
    sfa = {"Lead": lead, "Contact": contact, "Opportunity": opportunity}
    return PersonView(ma=ma, sfa={obj: rec for obj, rec in sfa.items() if rec is not None})


DEFAULT = Path(__file__).parents[2] / "mappings" / "default.yaml"


@pytest.fixture(scope="module")
def default() -> Mapping:
    return load_mapping(DEFAULT)


# --- conditions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cond", "record", "expected"),
    [
        ({"field": "score", "gte": 50}, {"score": "55"}, True),  # HubSpot sends numbers as strings
        ({"field": "score", "gte": 50}, {"score": "49.5"}, False),
        ({"field": "score", "gte": 50}, {"score": ""}, False),
        ({"field": "score", "gte": 50}, {}, False),
        ({"field": "score", "lt": 10}, {"score": 9}, True),
        ({"field": "score", "gt": 10, "lte": 20}, {"score": "20"}, True),
        ({"field": "score", "gt": 10, "lte": 20}, {"score": "21"}, False),
        ({"field": "d", "gte": "2024-01-01"}, {"d": "2024-03-05"}, True),
        ({"field": "d", "gte": "2024-01-01"}, {"d": "2023-12-31"}, False),
        ({"field": "IsWon", "eq": True}, {"IsWon": True}, True),
        ({"field": "IsWon", "eq": True}, {"IsWon": "true"}, True),
        ({"field": "IsWon", "eq": True}, {"IsWon": "false"}, False),
        ({"field": "IsWon", "eq": False}, {"IsWon": None}, False),
        ({"field": "n", "eq": 3}, {"n": "3.0"}, True),
        ({"field": "s", "eq": "55"}, {"s": 55}, True),
        ({"field": "s", "ne": "x"}, {}, True),
        ({"field": "s", "ne": "x"}, {"s": "x"}, False),
        ({"field": "s", "in": ["a", 2, True]}, {"s": "a"}, True),
        ({"field": "s", "in": ["a", 2, True]}, {"s": "2"}, True),
        ({"field": "s", "in": ["a", 2, True]}, {"s": "true"}, True),
        ({"field": "s", "in": ["a", 2]}, {"s": "b"}, False),
        ({"field": "s", "not_in": ["a"]}, {"s": None}, True),
        ({"field": "s", "not_in": ["a"]}, {"s": "a"}, False),
        ({"field": "s", "present": True}, {"s": "  "}, False),
        ({"field": "s", "present": False}, {"s": "  "}, True),
        ({"field": "s", "present": True}, {"s": 0}, True),
        ({"field": "s", "contains": "web"}, {"s": "webinar;ebook"}, True),
        ({"field": "s", "contains": "b"}, {"s": ["a", "b"]}, True),
        ({"field": "s", "contains": "c"}, {"s": ["a", "b"]}, False),
        ({"field": "s", "matches": "^ACME\\b"}, {"s": "ACME Corp"}, True),
        ({"field": "s", "matches": "^ACME\\b"}, {"s": "ACMEX"}, False),
        ({"all": [{"field": "a", "eq": 1}, {"field": "b", "eq": 2}]}, {"a": 1, "b": 2}, True),
        (
            {"all": [{"field": "a", "eq": 1}, {"field": "b", "eq": 2}, {"field": "c", "eq": 3}]},
            {"a": 1, "b": 2},
            False,
        ),
        (
            {"any": [{"field": "a", "eq": 1}, {"field": "b", "eq": 2}, {"field": "c", "eq": 3}]},
            {"c": 3},
            True,
        ),
        ({"any": [{"field": "a", "eq": 1}]}, {"a": 2}, False),
        ({"not": {"field": "a", "eq": 1}}, {"a": 2}, True),
    ],
)
def test_condition_semantics(cond: dict[str, Any], record: dict[str, Any], expected: bool) -> None:
    assert compile_condition(cond, "ma")(record) is expected


def test_sfa_condition_carries_object_and_fields() -> None:
    c = compile_condition(
        {
            "object": "Opportunity",
            "all": [{"field": "IsClosed", "eq": True}, {"field": "IsWon", "eq": False}],
        },
        "sfa",
    )
    assert c.object == "Opportunity" and c.fields == {"IsClosed", "IsWon"}
    assert c({"IsClosed": True, "IsWon": False}) and not c(None)


def test_condition_errors_are_all_collected() -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        compile_condition({"any": [{"field": "a", "eqq": 1}, {"field": "b", "matches": "("}]}, "ma")
    paths = [p for p, _, _ in info.value.issues]
    assert paths == [("any", 0, "eqq"), ("any", 1, "matches")]


# --- projection --------------------------------------------------------------------------------


def test_project_hubspot_to_salesforce(default: Mapping) -> None:
    contact = {
        "email": "  Taro@EXAMPLE.com ",
        "firstname": "Ｔａｒｏ",
        "lastname": "",
        "company": "x" * 300,
        "hs_analytics_source": "PAID_SEARCH",
        "phone": None,
        "jobtitle": "CTO",
        "hubspotscore": "80",
    }
    out = project(default, "ma", contact, "Lead")
    assert out == {
        "Email": "taro@example.com",
        "FirstName": "Taro",
        "LastName": "[not provided]",
        "Company": "x" * 255,
        "LeadSource": "Paid Search",
        "Phone": None,
        "Title": "CTO",
    }


def test_project_value_map_fallback_and_object_filter(default: Mapping) -> None:
    out = project(default, "ma", {"hs_analytics_source": "SOMETHING_NEW", "company": "Acme"}, "Contact")
    assert out == {"LeadSource": "Other"}  # Company is mapped for Lead only


def test_project_salesforce_to_hubspot(default: Mapping) -> None:
    lead = {
        "Email": "A@B.CO",
        "FirstName": "Hanako",
        "LastName": "[not provided]",
        "Company": "Acme",
        "LeadSource": "Web",
        "Phone": " 03-1234 ",
        "Title": None,
    }
    out = project(default, "sfa", lead, "Lead")
    # Company and LeadSource flow MA -> SFA only; a placeholder default reads back as blank.
    assert out == {
        "email": "a@b.co",
        "firstname": "Hanako",
        "lastname": None,
        "phone": "03-1234",
        "jobtitle": None,
    }


def test_two_way_value_maps_are_reversed() -> None:
    m = parse_mapping_text(
        _mini(
            fields="""
  - {ma: tier, sfa: Tier__c, sync: two_way, values: {gold: G, silver: S, _other: X}}
  - {ma: region, sfa: Region__c, sync: two_way, values: {jp: Japan}, reverse_values: {Japan: jp, Nihon: jp}}
  - {ma: note, sfa: Note__c, sync: sfa_to_ma, values: {A: alpha}, default: none}
  - {ma: secret, sfa: Secret__c, sync: none}
"""
        )
    )
    assert project(m, "ma", {"tier": "gold", "region": "jp", "secret": "s"}) == {
        "Tier__c": "G",
        "Region__c": "Japan",
    }
    assert project(m, "sfa", {"Tier__c": "S", "Region__c": "Nihon", "Note__c": "A", "Secret__c": 1}) == {
        "tier": "silver",
        "region": "jp",
        "note": "alpha",
    }
    assert project(m, "sfa", {"Tier__c": "Z", "Note__c": " "}) == {"tier": "Z", "note": "none"}


# --- closed loop & preview -----------------------------------------------------------------------


def test_closed_loop_values_for_lost_deal(default: Mapping) -> None:
    view = sfa_view(
        ma={"email": "a@b.co"},
        lead={"Status": "Closed - Converted", "IsConverted": True},
        opportunity={
            "IsClosed": True,
            "IsWon": False,
            "Amount": "1200.456",
            "CloseDate": "2024-06-30",
            "Loss_Reason__c": "Price",
        },
    )
    assert closed_loop_values(default, view, "lost") == {
        "closedloop_stage": "lost",
        "closedloop_outcome": "lost",
        "closedloop_sfa_status": "Closed - Converted",
        "closedloop_amount": 1200.46,
        "closedloop_close_date": "2024-06-30",
        "closedloop_loss_reason": "Price",
    }


@pytest.mark.parametrize(
    ("stage", "outcome"),
    [
        ("won", "won"),
        ("sql", "open"),
        ("recycled", "open"),
        ("disqualified", "disqualified"),
        ("lost", "lost"),
        # the customer's life after the contract: the deal stays won, the stage says the rest
        ("kickoff", "won"),
        ("customer", "won"),
        ("expansion", "won"),
        ("churned", "won"),
    ],
)
def test_outcome_values(default: Mapping, stage: str, outcome: str) -> None:
    assert closed_loop_values(default, sfa_view(), stage) == {
        "closedloop_stage": stage,
        "closedloop_outcome": outcome,
    }


def test_closed_loop_without_stage_or_records(default: Mapping) -> None:
    assert closed_loop_values(default, sfa_view(ma={}), None) == {}


def test_preview_hubspot_contact(default: Mapping) -> None:
    got = preview(
        default,
        "hubspot",
        {
            "id": "51",
            "properties": {
                "email": "X@Y.COM",
                "hubspotscore": "72",
                "closedloop_id": "01HX",
                "lastname": "Sato",
            },
        },
    )
    assert got == {
        "stage": "mql",
        "target": "salesforce",
        "object": "Lead",
        "writes": {"Email": "x@y.com", "LastName": "Sato", "Closedloop_Id__c": "01HX"},
    }


def test_preview_salesforce_opportunity(default: Mapping) -> None:
    got = preview(
        default,
        "salesforce",
        {
            "attributes": {"type": "Opportunity"},
            "IsClosed": True,
            "IsWon": True,
            "Amount": 5000,
            "CloseDate": "2024-07-01",
        },
    )
    assert got["stage"] == "won" and got["target"] == "hubspot"
    assert got["writes"]["closedloop_outcome"] == "won" and got["writes"]["closedloop_amount"] == 5000


def test_preview_salesforce_lead_with_sobject_key(default: Mapping) -> None:
    got = preview(
        default,
        "salesforce",
        {
            "sobject": "Lead",
            "Status": "Closed - Not Converted",
            "Email": "q@r.st",
            "Closedloop_Id__c": "01HY",
        },
    )
    assert got["stage"] == "disqualified"
    assert got["writes"] == {
        "email": "q@r.st",
        "closedloop_id": "01HY",
        "closedloop_stage": "disqualified",
        "closedloop_outcome": "disqualified",
        "closedloop_sfa_status": "Closed - Not Converted",
    }


def test_preview_rejects_unknown_object(default: Mapping) -> None:
    with pytest.raises(ValueError, match="attributes"):
        preview(default, "salesforce", {"Name": "x"})


# --- model helpers & schema -------------------------------------------------------------------------


def test_mapping_helpers(default: Mapping) -> None:
    assert default.success_path() == [
        "lead", "mql", "sal", "sql", "opportunity", "won", "kickoff", "customer", "expansion"
    ]  # fmt: skip
    assert default.detours() == ["lost", "disqualified", "recycled", "churned"]
    assert default.won_stage() == "won"
    assert default.sfa_fields("Account") == {"Customer_Status__c", "OwnerId"}  # owner: customer success
    won = default.stage("won").sfa
    assert won is not None and won.object == "Opportunity"
    with pytest.raises(KeyError):
        default.stage("nope")
    assert {"IsClosed", "IsWon", "StageName", "Amount", "CloseDate", "Loss_Reason__c"} <= default.sfa_fields(
        "Opportunity"
    )
    assert {"hubspotscore", "lifecyclestage", "hs_lead_status", "closedloop_id"} <= default.ma_properties()
    first_touch, info_sheet, kickoff = default.slas
    assert first_touch.within is not None and first_touch.within.as_timedelta().total_seconds() == 86400
    assert kickoff.within is not None and kickoff.within.business
    assert info_sheet.kind == "complete_at" and info_sheet.stage == "sql"


def test_model_dump_round_trips(default: Mapping) -> None:
    data = default.model_dump(by_alias=True, exclude_none=True)
    again = Mapping.model_validate(data)
    assert again.model_dump(by_alias=True, exclude_none=True) == data


def test_json_schema_accepts_default_and_rejects_typos() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    data = YAML(typ="safe").load(DEFAULT.read_text())
    assert list(validator.iter_errors(data)) == []
    data["stages"][1]["ma"] = {"field": "hubspotscore", "gtee": 50}
    data["fields"][0]["sync"] = "twoway"
    assert len(list(validator.iter_errors(data))) == 2


def _mini(fields: str) -> str:
    return f"""version: 1
identity: {{ma_property: cid, sfa_field: Cid__c, match_on: []}}
stages:
  - {{id: a, ma: {{field: x, present: true}}}}
  - {{id: b, ma: {{field: y, present: true}}}}
handover: {{at: b}}
fields:{fields}"""
