"""Lint: every broken mapping yields its message at the right 1-based line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.mapping import LintError, MappingError, lint_paths, lint_text, load_mapping

BASE = """\
version: 1
identity:
  ma_property: closedloop_id
  sfa_field: Closedloop_Id__c
  match_on: [email]
stages:
  - id: lead
    ma: {field: email, present: true}
  - id: mql
    ma: {field: hubspotscore, gte: 50}
  - id: sal
    sfa: {object: Lead, field: Status, eq: "Working - Contacted"}
  - id: lost
    detour: true
    sfa: {object: Opportunity, all: [{field: IsClosed, eq: true}, {field: IsWon, eq: false}]}
handover: {at: mql, create_as: Lead}
fields:
  - {ma: email, sfa: Email, sync: two_way, transform: [trim, lower]}
  - {ma: company, sfa: Company, sync: ma_to_sfa, sfa_objects: [Lead]}
closed_loop:
  - {from: stage, ma: closedloop_stage}
  - {from: Opportunity.Loss_Reason__c, ma: closedloop_loss_reason}
slas:
  - {id: first_touch, from: mql, to: sal, within: 24h, on_breach: [log, sfa_task]}
"""


def edit(changes: dict[int, str]) -> str:
    """BASE with whole lines (1-based) replaced; a replacement may span several lines."""
    lines = BASE.splitlines()
    for number, text in changes.items():
        if number > len(lines):
            lines.append(text)
        else:
            lines[number - 1] = text
    return "\n".join(lines) + "\n"


# (id, line replacements, expected line, col, message fragment, expected error count)
CASES: list[tuple[str, dict[int, str], int, int, str, int]] = [
    ("yaml-unclosed-flow", {10: "    ma: {field: hubspotscore, gte: 50"}, 11, 7, "YAML syntax error", 1),
    ("yaml-duplicate-key", {4: "  ma_property: other"}, 4, 3, "duplicate key", 1),
    (
        "unknown-top-key",
        {16: "handovr: {at: mql, create_as: Lead}"},
        16,
        1,
        "unknown key 'handovr' (did you mean 'handover'?)",
        2,
    ),
    (
        "missing-handover",
        {16: "handovr: {at: mql, create_as: Lead}"},
        1,
        1,
        "missing required key 'handover'",
        2,
    ),
    (
        "unknown-identity-key",
        {4: "  sfa_feild: Closedloop_Id__c"},
        4,
        3,
        "unknown key 'sfa_feild' (did you mean 'sfa_field'?)",
        2,
    ),
    ("version-missing", {1: "# no version"}, 2, 1, "missing required key 'version'", 1),
    ("version-unsupported", {1: "version: 2"}, 1, 10, "version 2 is not supported", 1),
    (
        "unknown-op",
        {10: "    ma: {field: hubspotscore, gtee: 50}"},
        10,
        31,
        "unknown condition key 'gtee' (did you mean 'gte'?)",
        1,
    ),
    ("bad-regex", {10: '    ma: {field: hubspotscore, matches: "[a"}'}, 10, 40, "bad regular expression", 1),
    (
        "in-needs-list",
        {12: "    sfa: {object: Lead, field: Status, in: Working}"},
        12,
        44,
        "'in' takes a non-empty list",
        1,
    ),
    ("eq-null", {10: "    ma: {field: hubspotscore, eq: null}"}, 10, 35, "use 'present: false'", 1),
    ("condition-no-op", {10: "    ma: {field: hubspotscore}"}, 10, 9, "has no operator", 1),
    ("combinator-mixed", {10: "    ma: {any: [{field: a, eq: 1}], field: b}"}, 10, 36, "cannot be mixed", 1),
    ("not-a-condition", {10: "    ma: [hubspotscore]"}, 10, 9, "a condition must be a mapping", 1),
    (
        "bad-object",
        {12: '    sfa: {object: Leed, field: Status, eq: "Working - Contacted"}'},
        12,
        19,
        "unknown object 'Leed'",
        1,
    ),
    (
        "sfa-without-object",
        {12: '    sfa: {field: Status, eq: "Working - Contacted"}'},
        12,
        10,
        "needs 'object: Lead|Contact|Opportunity'",
        1,
    ),
    (
        "object-in-ma",
        {8: "    ma: {object: Lead, field: email, present: true}"},
        8,
        10,
        "'object' is only allowed in sfa conditions",
        1,
    ),
    (
        "object-nested",
        {15: "    sfa: {object: Opportunity, all: [{object: Lead, field: IsClosed, eq: true}]}"},
        15,
        39,
        "'object' is only allowed at the top",
        1,
    ),
    (
        "present-not-bool",
        {8: "    ma: {field: email, present: yes please}"},
        8,
        33,
        "'present' takes true or false",
        1,
    ),
    ("detour-not-bool", {14: "    detour: maybe"}, 14, 13, "expected true or false", 1),
    ("stage-id-case", {7: "  - id: Lead"}, 7, 9, "lower_snake_case", 1),
    (
        "stage-needs-condition",
        {8: "    description: no condition"},
        7,
        5,
        "needs an 'ma' or 'sfa' condition",
        1,
    ),
    (
        "recycle-needs-detour",
        {10: "    recycle: true\n    ma: {field: hubspotscore, gte: 50}"},
        9,
        5,
        "'recycle: true' needs 'detour: true'",
        1,
    ),
    ("duplicate-stage", {13: "  - id: lead"}, 13, 9, "duplicate stage id 'lead'", 1),
    (
        "short-success-path",
        {7: "  - id: lead\n    detour: true", 9: "  - id: mql\n    detour: true"},
        6,
        1,
        "needs at least 2 stages, found 1",
        2,
    ),
    (
        "handover-unknown-stage",
        {16: "handover: {at: mqll, create_as: Lead}"},
        16,
        16,
        "unknown stage 'mqll' (did you mean 'mql'?)",
        1,
    ),
    ("handover-on-detour", {16: "handover: {at: lost, create_as: Lead}"}, 16, 16, "is a detour", 1),
    (
        "handover-create-as",
        {16: "handover: {at: mql, create_as: Account}"},
        16,
        32,
        "'Account' is not allowed; expected one of: Lead, Contact",
        1,
    ),
    (
        "sla-unknown-from",
        {24: "  - {id: first_touch, from: mqk, to: sal, within: 24h}"},
        24,
        29,
        "unknown stage 'mqk' (did you mean 'mql'?)",
        1,
    ),
    (
        "sla-unknown-to",
        {24: "  - {id: first_touch, from: mql, to: won, within: 24h}"},
        24,
        38,
        "unknown stage 'won'",
        1,
    ),
    (
        "sla-bad-within",
        {24: "  - {id: first_touch, from: mql, to: sal, within: 3 weeks}"},
        24,
        51,
        "bad duration",
        1,
    ),
    (
        "sla-bad-action",
        {24: "  - {id: first_touch, from: mql, to: sal, within: 24h, on_breach: [mail]}"},
        24,
        68,
        "'mail' is not allowed",
        1,
    ),
    (
        "sla-duplicate-id",
        {24: "  - {id: t, from: mql, to: sal, within: 24h}\n  - {id: t, from: sal, to: mql, within: 1d}"},
        25,
        10,
        "duplicate SLA id 't'",
        1,
    ),
    (
        "sync-typo",
        {19: "  - {ma: company, sfa: Company, sync: ma_to_sfaa}"},
        19,
        39,
        "(did you mean 'ma_to_sfa'?)",
        1,
    ),
    (
        "conflicting-direction",
        {19: "  - {ma: email, sfa: Email2__c, sync: ma_to_sfa}"},
        19,
        39,
        "'email' is mapped again with direction 'ma_to_sfa', conflicting with 'two_way' in fields[0]",
        1,
    ),
    (
        "two-writers",
        {19: "  - {ma: company, sfa: Email, sync: two_way}"},
        19,
        5,
        "'Lead.Email' is written by two mappings",
        1,
    ),
    (
        "unknown-transform",
        {18: "  - {ma: email, sfa: Email, sync: two_way, transform: [trim, lowr]}"},
        18,
        62,
        "unknown transform 'lowr' (did you mean 'lower'?)",
        1,
    ),
    (
        "bad-truncate",
        {18: "  - {ma: email, sfa: Email, sync: two_way, transform: [{truncate: -1}]}"},
        18,
        56,
        "'truncate' takes a positive whole number",
        1,
    ),
    (
        "sfa-objects",
        {19: "  - {ma: company, sfa: Company, sync: ma_to_sfa, sfa_objects: [Opportunity]}"},
        19,
        64,
        "'Opportunity' is not allowed",
        1,
    ),
    ("match-on-unmapped", {5: "  match_on: [mail]"}, 5, 14, "'mail' is not a marketing (ma) field mapped", 1),
    ("match-on-type", {5: "  match_on: email"}, 5, 13, "expected a list", 1),
    (
        "closed-loop-from",
        {21: "  - {from: stag, ma: closedloop_stage}"},
        21,
        12,
        "(did you mean 'stage'?)",
        1,
    ),
    (
        "closed-loop-object",
        {22: "  - {from: Opp.Loss_Reason__c, ma: closedloop_loss_reason}"},
        22,
        12,
        "unknown object 'Opp'",
        1,
    ),
    (
        "closed-loop-duplicate-target",
        {22: "  - {from: outcome, ma: closedloop_stage}"},
        22,
        25,
        "already written by closed_loop[0]",
        1,
    ),
    (
        "entered-at-ref",
        {10: "    ma: {field: hubspotscore, gte: 50}\n    entered_at: {sfa: Lead}"},
        11,
        23,
        "expected 'Object.Field'",
        1,
    ),
    ("calendar-country", {25: "calendar: {country: XX}"}, 25, 11, "no holiday calendar for country 'XX'", 1),
    (
        "label-shared-by-two-stages",
        {7: "  - id: lead\n    label: {ja: 商談化}", 9: "  - id: mql\n    label: {en: MQL, ja: 商談化}"},
        11,
        26,
        "'商談化' is already the label of stages[0]",
        1,
    ),
    ("label-unknown-language", {7: "  - id: lead\n    label: {fr: Prospect}"}, 8, 13, "unknown key 'fr'", 1),
    (
        "related-object-typo",
        {12: "    sfa: {object: Acount, field: Customer_Status__c, eq: Active}"},
        12,
        19,
        "unknown object 'Acount': use Lead, Contact, Opportunity, Account, Event or Task "
        "(did you mean 'Account'?)",
        1,
    ),
    (
        "related-entered-at-typo",
        {12: "    sfa: {object: Event, field: Type, eq: Kickoff}\n    entered_at: {sfa: Evnt.StartDateTime}"},
        13,
        23,
        "unknown object 'Evnt' in 'Evnt.StartDateTime'",
        1,
    ),
    (
        "related-reason-typo",
        {16: "    reason: Acount.Churn_Reason__c\nhandover: {at: mql, create_as: Lead}"},
        16,
        13,
        "(did you mean 'Account'?)",
        1,
    ),
    (
        "related-sla-field-typo",
        {25: "  - {id: sheet, kind: complete_at, stage: sal, fields: [Tsk.Subject]}"},
        25,
        57,
        "unknown object 'Tsk' in 'Tsk.Subject'",
        1,
    ),
    (
        "related-not-declared",
        {1: "version: 1\nsfa_related: [Account]", 12: "    sfa: {object: Event, field: Type, eq: Kickoff}"},
        13,
        19,
        "unknown object 'Event': use Lead, Contact, Opportunity or Account",
        1,
    ),
    (
        "related-is-a-sales-object",
        {1: "version: 1\nsfa_related: [Account, Lead]"},
        2,
        14,
        "'Lead' is one of sfa_objects",
        1,
    ),
    (
        "related-closed-loop-source",
        {22: "  - {from: Account.Name, ma: closedloop_account}"},
        22,
        12,
        "unknown object 'Account' in 'Account.Name': use Lead, Contact, Opportunity",
        1,
    ),
]


@pytest.mark.parametrize(
    ("changes", "line", "col", "fragment", "count"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_broken_mapping_reports_message_at_position(
    changes: dict[int, str], line: int, col: int, fragment: str, count: int
) -> None:
    _, errors = lint_text(edit(changes), "m.yaml")
    rendered = [str(e) for e in errors]
    assert any(e.line == line and e.col == col and fragment in e.message for e in errors), rendered
    assert len(errors) == count, rendered


def test_enough_cases() -> None:
    assert len(CASES) >= 25


def test_base_is_clean() -> None:
    model, errors = lint_text(BASE)
    assert errors == []
    assert model is not None and model.success_path() == ["lead", "mql", "sal"]


def test_all_errors_reported_together() -> None:
    text = edit(
        {
            1: "version: 3",
            10: "    ma: {field: hubspotscore, gtee: 50}",
            16: "handover: {at: nowhere, create_as: Lead}",
        }
    )
    _, errors = lint_text(text, "m.yaml")
    assert [(e.line, e.col) for e in errors] == [(1, 10), (10, 31), (16, 16)]


def test_lint_error_renders_path_line_col() -> None:
    err = LintError("mappings/default.yaml", 3, 7, "boom")
    assert str(err) == "mappings/default.yaml:3:7: boom"


def test_root_must_be_mapping() -> None:
    _, errors = lint_text("- a\n- b\n", "x.yaml")
    assert [(e.line, e.col) for e in errors] == [(1, 1)] and "YAML mapping" in errors[0].message


def test_empty_file() -> None:
    _, errors = lint_text("# nothing\n", "x.yaml")
    assert "empty" in errors[0].message


def test_shipped_default_is_clean() -> None:
    assert lint_paths([Path(__file__).parents[2] / "mappings"]) == []


def test_lint_paths_walks_directories_and_names_files(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(BASE)
    (tmp_path / "sub").mkdir()
    bad = tmp_path / "sub" / "bad.yml"
    bad.write_text(edit({1: "version: 9"}))
    (tmp_path / "notes.txt").write_text("version: 9")
    errors = lint_paths([tmp_path, tmp_path / "missing.yaml"])
    assert {(e.path, e.line) for e in errors} == {(str(bad), 1), (str(tmp_path / "missing.yaml"), 1)}


def test_load_mapping_raises_with_all_errors(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(edit({1: "version: 3", 16: "handover: {at: nowhere, create_as: Lead}"}))
    with pytest.raises(MappingError) as info:
        load_mapping(f)
    assert len(info.value.errors) == 2
    assert f"{f}:1:10:" in str(info.value)


def test_load_mapping_directory_resolution(tmp_path: Path) -> None:
    (tmp_path / "only.yaml").write_text(BASE)
    assert load_mapping(tmp_path).stage_ids() == ["lead", "mql", "sal", "lost"]
    (tmp_path / "other.yaml").write_text(BASE)
    with pytest.raises(MappingError, match="2 mapping files"):
        load_mapping(tmp_path)
    renamed = BASE.replace("id: sal", "id: accepted").replace("to: sal", "to: accepted")
    (tmp_path / "default.yaml").write_text(renamed)
    assert "accepted" in load_mapping(tmp_path).stage_ids()


def test_parse_mapping_data_runs_cross_reference_checks() -> None:
    from ruamel.yaml import YAML

    from sync.mapping import parse_mapping_data

    data = YAML(typ="safe").load(edit({16: "handover: {at: nowhere, create_as: Lead}"}))
    with pytest.raises(MappingError, match="unknown stage 'nowhere'"):
        parse_mapping_data(data)
    data["handover"]["at"] = "mql"
    assert parse_mapping_data(data).handover.at == "mql"
