"""``entered_at: {ma: ...}`` takes one HubSpot property or an ordered list of them (issue 18, item 12)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from sync.mapping import Mapping, lint_text, load_mapping, parse_mapping_text
from sync.mapping.schema import json_schema

DEFAULT = Path(__file__).parents[2] / "mappings" / "default.yaml"
V2 = "hs_v2_date_entered_marketingqualifiedlead"
LEGACY = "hs_lifecyclestage_marketingqualifiedlead_date"


def _with_mql_entered_at(value: str) -> str:
    text = DEFAULT.read_text(encoding="utf-8")
    start = text.index("    entered_at:\n      ma: [")
    end = text.index("\n", text.index("ma: [", start)) + 1
    return text[:start] + f"    entered_at: {value}\n" + text[end:]


def test_an_ordered_list_keeps_its_order_and_reads_as_its_first_property() -> None:
    mapping = parse_mapping_text(_with_mql_entered_at(f"{{ma: [{V2}, {LEGACY}]}}"))
    spec = mapping.stage("mql").entered_at
    assert spec is not None
    assert spec.ma_properties == (V2, LEGACY)
    assert spec.ma == V2  # one-property readers see the preferred one
    assert {V2, LEGACY} <= mapping.ma_properties()  # both are fetched from HubSpot
    dumped = mapping.model_dump(by_alias=True, mode="json")
    mql = next(s for s in dumped["stages"] if s["id"] == "mql")
    assert mql["entered_at"]["ma"] == [V2, LEGACY]
    again = Mapping.model_validate(mapping.model_dump(by_alias=True, exclude_none=True))
    again_spec = again.stage("mql").entered_at
    assert again_spec is not None and again_spec.ma_properties == (V2, LEGACY)


def test_a_single_property_still_works() -> None:
    mapping = parse_mapping_text(_with_mql_entered_at(f"{{ma: {V2}}}"))
    spec = mapping.stage("mql").entered_at
    assert spec is not None
    assert spec.ma_properties == (V2,)
    assert spec.ma == V2
    lead = mapping.stage("lead").entered_at
    assert lead is not None and lead.ma_properties == ("createdate",)


def test_the_default_mapping_lists_both_stage_date_properties() -> None:
    spec = load_mapping(DEFAULT).stage("mql").entered_at
    assert spec is not None
    assert set(spec.ma_properties) == {V2, LEGACY}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{ma: []}", "non-empty list"),
        (f"{{ma: [{V2}, {V2}]}}", "listed twice"),
        (f"{{ma: [{V2}, 3]}}", "non-empty string"),
        (f"{{ma: [{V2}], sfa: Lead.ConvertedDate}}", "exactly one"),
    ],
)
def test_bad_lists_are_lint_errors_at_their_line(value: str, message: str) -> None:
    text = _with_mql_entered_at(value)
    mapping, errors = lint_text(text, "m.yaml")
    assert mapping is None
    line = text.splitlines().index(f"    entered_at: {value}") + 1
    assert any(message in e.message and e.line == line for e in errors), errors


def test_json_schema_accepts_a_name_or_a_list() -> None:
    schema = json_schema()
    for value in (V2, [V2, LEGACY]):
        doc = load_mapping(DEFAULT).model_dump(by_alias=True, mode="json", exclude_none=True)
        next(s for s in doc["stages"] if s["id"] == "mql")["entered_at"] = {"ma": value}
        jsonschema.validate(doc, schema)
    doc["stages"][1]["entered_at"] = {"ma": []}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
