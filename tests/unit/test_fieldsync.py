"""Field write decisions: direction rules, conflicts and echo suppression."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sync.fieldsync import MA, SFA, canonical, decide_fields, same, value_hash
from sync.mapping import FieldMap

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _decide(
    rule: str, ma: Any, sfa: Any, remembered: dict[tuple[str, str], str] | None = None, ma_newer: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    fm = FieldMap(ma="company", sfa="Company", sync=rule)  # type: ignore[arg-type]
    ma_rec, sfa_rec = {"company": ma}, {"Company": sfa}
    forward = {"Company": ma} if rule != "sfa_to_ma" else {}
    backward = {"company": sfa} if rule != "ma_to_sfa" else {}
    ma_time, sfa_time = (T0 + timedelta(hours=1), T0) if ma_newer else (T0, T0 + timedelta(hours=1))
    d = decide_fields([fm], "Lead", ma_rec, sfa_rec, forward, backward, remembered or {}, ma_time, sfa_time)
    return d.ma_writes, d.sfa_writes


@pytest.mark.parametrize(
    ("rule", "ma", "sfa", "expect_ma", "expect_sfa"),
    [
        ("ma_to_sfa", "Acme", "Old", {}, {"Company": "Acme"}),
        ("ma_to_sfa", "Acme", "Acme", {}, {}),
        ("sfa_to_ma", "Acme", "Old", {"company": "Old"}, {}),
        ("prefer_sfa_unless_blank", "Acme", "Old", {"company": "Old"}, {}),
        ("prefer_sfa_unless_blank", "Acme", None, {}, {"Company": "Acme"}),
        ("prefer_ma_unless_blank", "Acme", "Old", {}, {"Company": "Acme"}),
        ("prefer_ma_unless_blank", "", "Old", {"company": "Old"}, {}),
        ("none", "Acme", "Old", {}, {}),
    ],
)
def test_direction_rules(
    rule: str, ma: Any, sfa: Any, expect_ma: dict[str, Any], expect_sfa: dict[str, Any]
) -> None:
    assert _decide(rule, ma, sfa) == (expect_ma, expect_sfa)


def test_two_way_side_that_changed_wins_even_if_older() -> None:
    remembered = {(MA, "company"): value_hash("Same"), (SFA, "Company"): value_hash("Same")}
    # Salesforce changed since the last sync, HubSpot did not: Salesforce wins although HubSpot is newer.
    assert _decide("two_way", "Same", "New", remembered, ma_newer=True) == ({"company": "New"}, {})
    assert _decide("two_way", "New", "Same", remembered, ma_newer=False) == ({}, {"Company": "New"})


def test_two_way_both_changed_latest_wins() -> None:
    remembered = {(MA, "company"): value_hash("Base"), (SFA, "Company"): value_hash("Base")}
    assert _decide("two_way", "FromMA", "FromSFA", remembered, ma_newer=True) == ({}, {"Company": "FromMA"})
    assert _decide("two_way", "FromMA", "FromSFA", remembered, ma_newer=False) == ({"company": "FromSFA"}, {})


def test_two_way_first_sync_blank_never_beats_a_value() -> None:
    assert _decide("two_way", None, "Kept", ma_newer=True) == ({"company": "Kept"}, {})


def test_echo_of_our_own_write_is_not_synced_back() -> None:
    # We wrote "Acme" to Salesforce last time; both sides now hold it: nothing to do either way.
    remembered = {(MA, "company"): value_hash("Acme"), (SFA, "Company"): value_hash("Acme")}
    assert _decide("two_way", "Acme", "Acme", remembered) == ({}, {})


def test_canonical_forms() -> None:
    assert same("55", 55.0)
    assert same(None, "")
    assert same(True, "true")
    assert not same("0055", "55.5")
    assert canonical("  x ") == "x"
