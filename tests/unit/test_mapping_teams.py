"""Teams and NPS in the mapping: defaults, lookups and lint errors at their line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.mapping import lint_text, load_mapping
from sync.sla_hooks import sla_rules
from tests.unit.test_mapping_lint import BASE

ROOT = Path(__file__).parents[2] / "mappings"
TEAMS = """\
teams:
  - id: marketing
    label: {en: Marketing, ja: マーケティング}
    stages: [lead, mql]
  - id: inside_sales
    stages: [sal, lost]
    owner: Lead.OwnerId
nps: Contact.NPS__c
"""
TEAMS_LINE = len(BASE.splitlines()) + 1  # the line of "teams:"


def lint(extra: str) -> list[str]:
    _, errors = lint_text(BASE + extra, "m.yaml")
    return [str(e) for e in errors]


def test_declared_teams_give_each_sla_its_team_and_owner_field() -> None:
    model, errors = lint_text(BASE + TEAMS, "m.yaml")
    assert errors == [] and model is not None
    assert [t.id for t in model.teams()] == ["marketing", "inside_sales"]
    assert model.team_of("sal") == "inside_sales" and model.team_of("mql") == "marketing"
    assert str(model.teams()[1].owner) == "Lead.OwnerId" and str(model.nps) == "Contact.NPS__c"
    assert [r.team for r in sla_rules(model)] == ["inside_sales"]
    assert "OwnerId" in model.sfa_fields("Lead") and "NPS__c" in model.sfa_fields("Contact")


def test_default_teams_for_salesforce_objects_are_the_four_standard_ones() -> None:
    text = (ROOT / "default.yaml").read_text(encoding="utf-8")
    start = text.index("\nteams:\n")
    without = text[:start] + text[text.index("\n\n", start) :]  # the default mapping, teams left out
    mapping, errors = lint_text(without, "default.yaml")
    assert errors == [] and mapping is not None and mapping.declared_teams is None
    teams = {t.id: (t.stages, str(t.owner) if t.owner else None) for t in mapping.teams()}
    assert teams == {
        "marketing": (["lead", "mql", "recycled"], None),
        "inside_sales": (["sal", "sql", "disqualified"], "Lead.OwnerId"),
        "field_sales": (["opportunity", "won", "lost"], "Opportunity.OwnerId"),
        "customer_success": (["kickoff", "customer", "expansion", "churned"], "Account.OwnerId"),
    }
    assert teams == {
        t.id: (t.stages, str(t.owner) if t.owner else None)
        for t in load_mapping(ROOT / "default.yaml").teams()
    }


def test_default_teams_include_customer_success_and_account_owner() -> None:
    extra = """\
  - id: kickoff
    sfa: {object: Opportunity, field: Kickoff__c, eq: true}
  - id: churned
    detour: true
    sfa: {object: Opportunity, field: Churned__c, eq: true}
"""
    text = BASE.replace("handover:", extra + "handover:", 1)
    model, errors = lint_text(text, "m.yaml")
    assert errors == [] and model is not None
    cs = next(t for t in model.teams() if t.id == "customer_success")
    assert cs.stages == ["kickoff", "churned"] and str(cs.owner) == "Account.OwnerId"


def test_default_teams_for_declared_objects_split_at_the_handover() -> None:
    mapping = load_mapping(ROOT / "hubspot-only.yaml")
    teams = {t.id: t for t in mapping.teams()}
    assert list(teams) == ["marketing", "sales"]
    assert teams["marketing"].stages[:2] == ["lead", "mql"] and "sal" in teams["sales"].stages
    assert all(t.owner is None for t in teams.values())


@pytest.mark.parametrize(
    ("edit", "line", "col", "fragment"),
    [
        ("    stages: [sal, lost]", 6, 14, "unknown stage 'lots'"),
        ("    stages: [sal, lost]", 6, 19, "stage 'lead' already belongs to teams[0]"),
        ("    owner: Lead.OwnerId", 7, 12, "unknown object 'Leed'"),
        ("  - id: inside_sales", 5, 9, "duplicate team id 'marketing'"),
        ("nps: Contact.NPS__c", 8, 6, "unknown object 'Contct'"),
    ],
)
def test_team_mistakes_are_lint_errors_at_their_position(
    edit: str, line: int, col: int, fragment: str
) -> None:
    replacement = {
        "unknown stage 'lots'": "    stages: [lots, lost]",
        "stage 'lead' already belongs to teams[0]": "    stages: [sal, lead]",
        "unknown object 'Leed'": "    owner: Leed.OwnerId",
        "duplicate team id 'marketing'": "  - id: marketing",
        "unknown object 'Contct'": "nps: Contct.NPS__c",
    }[fragment]
    errors = lint(TEAMS.replace(edit, replacement))
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"m.yaml:{TEAMS_LINE + line - 1}:{col}: ") and fragment in errors[0]
