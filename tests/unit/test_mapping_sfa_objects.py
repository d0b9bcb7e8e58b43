"""A mapping may declare its own sales-side objects (``sfa_objects``), e.g. HubSpot's contact and deal."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.mapping import lint_text, load_mapping
from sync.mapping.preview import preview
from sync.mapping.schema import json_schema
from sync.stages import PersonView, compute_stage, decide_transition, tiers

HUBSPOT_ONLY = Path(__file__).parents[2] / "mappings" / "hubspot-only.yaml"

DOC = """\
version: 1
sfa_objects: [contact, deal]
identity: {ma_property: closedloop_id, sfa_field: closedloop_id, match_on: [email]}
stages:
  - id: lead
    ma: {field: email, present: true}
  - id: sal
    sfa: {object: contact, field: hs_lead_status, eq: IN_PROGRESS}
  - id: won
    sfa: {object: deal, field: closedloop_is_won, eq: true}
    entered_at: {sfa: deal.closedloop_stage_entered_at}
  - id: lost
    detour: true
    sfa: {object: deal, all: [{field: closedloop_is_closed, eq: true}, {field: closedloop_is_won, eq: false}]}
    reason: deal.closed_lost_reason
handover: {at: lead, create_as: contact}
fields:
  - {ma: email, sfa: email, sync: none}
closed_loop:
  - {from: deal.amount, ma: closedloop_amount}
"""


def _errors(text: str) -> list[str]:
    return [e.message for e in lint_text(text, "m.yaml")[1]]


def test_declared_objects_name_conditions_refs_and_evidence_order() -> None:
    mapping, errors = lint_text(DOC)
    assert errors == [] and mapping is not None
    assert mapping.sfa_objects() == ("contact", "deal")
    assert mapping.person_objects() == ("contact",)
    assert mapping.handover.create_as == "contact"
    assert mapping.fields[0].sfa_objects == ["contact"]  # the default follows the declared person objects
    assert tiers(mapping) == {None: 0, "contact": 1, "deal": 2}
    assert mapping.sfa_fields("deal") == {
        "closedloop_is_won",
        "closedloop_stage_entered_at",
        "closedloop_is_closed",
        "closed_lost_reason",
        "amount",
    }
    won = PersonView(
        sfa={
            "contact": {"hs_lead_status": "IN_PROGRESS"},
            "deal": {"closedloop_is_won": True, "closedloop_is_closed": True},
        }
    )
    assert compute_stage(mapping, won) == "won"
    assert decide_transition(mapping, "sal", "won") == ["won"]


def test_default_objects_are_salesforces() -> None:
    mapping = load_mapping(Path(__file__).parents[2] / "mappings" / "default.yaml")
    assert mapping.sfa_objects() == ("Lead", "Contact", "Opportunity")
    assert "sfa_objects" not in mapping.model_dump(by_alias=True, exclude_none=True)


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        (
            "object: deal, field: closedloop_is_won",
            "object: Opportunity, field: IsWon",
            "use contact or deal",
        ),
        ("reason: deal.closed_lost_reason", "reason: Opportunity.Loss_Reason__c", "use contact, deal"),
        ("create_as: contact", "create_as: deal", "expected one of: contact"),
        ("sfa_objects: [contact, deal]", "sfa_objects: [deal]", "at least two distinct"),
        ("sfa_objects: [contact, deal]", "sfa_objects: [deal, deal]", "at least two distinct"),
        ("sfa_objects: [contact, deal]", "sfa_objects: [contact, 1x]", "at least two distinct"),
    ],
)
def test_objects_outside_the_declaration_are_lint_errors(old: str, new: str, fragment: str) -> None:
    assert old in DOC
    errors = _errors(DOC.replace(old, new))
    assert any(fragment in e for e in errors), errors


def test_schema_declares_sfa_objects_and_accepts_any_object_name() -> None:
    schema = json_schema()
    [array] = [alt for alt in schema["properties"]["sfa_objects"]["anyOf"] if alt.get("type") == "array"]
    assert (array["minItems"], array["uniqueItems"]) == (2, True)
    assert schema["$defs"]["SfaFieldRef"]["pattern"].startswith("^")


def test_hubspot_only_mapping_lints_and_previews_a_contact_and_a_deal() -> None:
    mapping = load_mapping(HUBSPOT_ONLY)
    mql = {"email": "ada@example.com", "hubspotscore": "80"}
    assert preview(mapping, "hubspot", {"properties": mql}) == {
        "stage": "mql",
        "writes": {"hs_lead_status": "NEW"},  # the handover marks the same contact; nothing is created
        "target": "hubspot",
        "object": "contact",
    }
    worked = preview(mapping, "hubspot", mql | {"hs_lead_status": "IN_PROGRESS"})
    assert (worked["stage"], worked["writes"]["closedloop_stage"]) == ("sal", "sal")
    deal = {
        "dealstage": "x",
        "hs_object_id": "7",
        "closedloop_is_closed": "true",
        "closedloop_is_won": "true",
        "amount": "500",
    }
    won = preview(mapping, "hubspot", deal)
    assert (won["stage"], won["object"], won["writes"]["closedloop_outcome"]) == ("won", "deal", "won")
