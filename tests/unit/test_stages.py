"""The standard-stage engine: compute_stage, decide_transition (incl. property tests), entered_at."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.mapping import Mapping, load_mapping, parse_mapping_text
from sync.stages import PersonView, compute_stage, decide_transition, entered_at


def sfa_view(ma: Any = None, lead: Any = None, contact: Any = None, opportunity: Any = None) -> PersonView:
    """A person's view with the sales side given per Salesforce object."""
    sfa = {"Lead": lead, "Contact": contact, "Opportunity": opportunity}
    return PersonView(ma=ma, sfa={obj: rec for obj, rec in sfa.items() if rec is not None})


MAPPING = load_mapping(Path(__file__).parents[2] / "mappings" / "default.yaml")
PATH = MAPPING.success_path()
TERMINAL = ["lost", "disqualified", "churned"]
RECYCLE = ["recycled"]

OPEN_OPP = {"IsClosed": False, "IsWon": False, "StageName": "Proposal/Price Quote"}
WON_OPP = {"IsClosed": True, "IsWon": True, "StageName": "Closed Won"}
LOST_OPP = {"IsClosed": True, "IsWon": False, "StageName": "Closed Lost"}
CONVERTED = {"Status": "Closed - Converted", "IsConverted": True, "Email": "a@b.co"}


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        (sfa_view(), None),
        (sfa_view(ma={"email": ""}), None),
        (sfa_view(ma={"email": "a@b.co", "hubspotscore": "10"}), "lead"),
        (sfa_view(lead={"Email": "a@b.co", "Status": "Open - Not Contacted"}), "lead"),
        (sfa_view(ma={"email": "a@b.co", "hubspotscore": "50"}), "mql"),
        (sfa_view(ma={"email": "a@b.co", "lifecyclestage": "marketingqualifiedlead"}), "mql"),
        (
            sfa_view(ma={"hubspotscore": "90"}, lead={"Status": "Working - Contacted", "IsConverted": False}),
            "sal",
        ),
        (sfa_view(ma={"hubspotscore": "90"}, lead=CONVERTED), "sql"),
        (sfa_view(lead=CONVERTED, opportunity={**OPEN_OPP, "StageName": "Prospecting"}), "sql"),
        (sfa_view(lead=CONVERTED, opportunity=OPEN_OPP), "opportunity"),
        (sfa_view(lead=CONVERTED, opportunity=WON_OPP), "won"),
        # Terminal detours win on the same or a newer object.
        (sfa_view(lead=CONVERTED, opportunity=LOST_OPP), "lost"),
        (sfa_view(ma={"hubspotscore": "90"}, lead={"Status": "Closed - Not Converted"}), "disqualified"),
        # ...but not over newer evidence: a disqualified old lead, then a won opportunity.
        (sfa_view(lead={"Status": "Closed - Not Converted"}, opportunity=WON_OPP), "won"),
        # Recycling (a HubSpot lead status) beats HubSpot-only stages and follows a loss; not an active lead.
        (
            sfa_view(ma={"email": "a@b.co", "hubspotscore": "90", "hs_lead_status": "BAD_TIMING"}),
            "recycled",
        ),
        (sfa_view(ma={"hs_lead_status": "BAD_TIMING"}, lead=CONVERTED, opportunity=LOST_OPP), "recycled"),
        # handed back to marketing while the Lead is still open: recycled, not SAL
        (sfa_view(ma={"hs_lead_status": "BAD_TIMING"}, lead={"Status": "Working - Contacted"}), "recycled"),
    ],
)
def test_compute_stage(view: PersonView, expected: str | None) -> None:
    assert compute_stage(MAPPING, view) == expected


@pytest.mark.parametrize(
    ("current", "computed", "expected"),
    [
        (None, None, []),
        ("mql", "mql", []),
        ("mql", None, []),
        (None, "lead", ["lead"]),
        (None, "sql", ["lead", "mql", "sal", "sql"]),
        ("mql", "won", ["sal", "sql", "opportunity", "won"]),
        ("mql", "sal", ["sal"]),
        ("sql", "mql", []),  # never backward
        ("won", "opportunity", []),
        ("opportunity", "lost", ["lost"]),
        (None, "lost", ["lost"]),
        ("lost", "won", ["won"]),  # a later opportunity was won
        ("lost", "opportunity", []),  # not strictly after the detour's anchor
        ("lost", "sql", []),
        ("lost", "recycled", ["recycled"]),
        ("lost", "disqualified", []),  # anchored earlier
        ("disqualified", "lost", ["lost"]),  # anchored later
        ("disqualified", "sal", []),
        ("disqualified", "opportunity", ["sql", "opportunity"]),
        ("recycled", "mql", ["mql"]),  # re-entry to any success stage
        ("recycled", "lead", ["lead"]),
        ("recycled", "lost", ["lost"]),
        ("won", "recycled", ["recycled"]),
        ("retired_stage", "sal", ["lead", "mql", "sal"]),  # unknown current counts as a first sighting
    ],
)
def test_decide_transition(current: str | None, computed: str | None, expected: list[str]) -> None:
    assert decide_transition(MAPPING, current, computed) == expected


def test_decide_transition_rejects_unknown_target() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        decide_transition(MAPPING, "mql", "nope")


def test_entered_at() -> None:
    text = (Path(__file__).parents[2] / "mappings" / "default.yaml").read_text()
    text = text.replace(
        "    sfa: {object: Lead, field: IsConverted, eq: true}\n",
        "    sfa: {object: Lead, field: IsConverted, eq: true}\n    entered_at: {sfa: Lead.ConvertedDate}\n",
    ).replace(
        "    sfa: {object: Opportunity, field: IsWon, eq: true}\n",
        "    sfa: {object: Opportunity, field: IsWon, eq: true}\n    entered_at: {sfa: Opportunity.CloseDate}\n",
    )
    dated = parse_mapping_text(text, "dated.yaml")
    view = sfa_view(
        ma={"hs_lifecyclestage_marketingqualifiedlead_date": "1714521600000"},
        lead={"ConvertedDate": "2024-05-03"},
        opportunity={"CloseDate": "2024-06-30"},
    )
    assert entered_at(dated, "mql", view) == datetime(2024, 5, 1, tzinfo=UTC)
    assert entered_at(dated, "sql", view) == datetime(2024, 5, 3, tzinfo=UTC)
    assert entered_at(dated, "won", view) == datetime(2024, 6, 30, tzinfo=UTC)
    assert entered_at(MAPPING, "won", view) is None  # the default mapping observes the change instead
    assert entered_at(MAPPING, "sal", view) is None  # no entered_at in the mapping
    assert entered_at(MAPPING, "lead", sfa_view()) is None  # no HubSpot record
    # Real portals fill hs_v2_date_entered_<stage>; the default mapping reads it first.
    newer = sfa_view(ma={"hs_v2_date_entered_marketingqualifiedlead": "2024-05-02T09:30:00Z"})
    assert entered_at(MAPPING, "mql", newer) == datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
    both = sfa_view(
        ma={
            "hs_v2_date_entered_marketingqualifiedlead": "2024-05-02T09:30:00Z",
            "hs_lifecyclestage_marketingqualifiedlead_date": "1714521600000",
        }
    )
    assert entered_at(MAPPING, "mql", both) == datetime(2024, 5, 2, 9, 30, tzinfo=UTC)


# --- property tests ---------------------------------------------------------------------------------

stage_or_none = st.sampled_from([None, *MAPPING.stage_ids()])
sequences = st.lists(stage_or_none, max_size=30)


def _anchor(mapping: Mapping, detour: str) -> int:
    """Re-derived independently: first success stage whose lowest evidence tier reaches the detour's."""
    # Related objects (Account, Event, Task) all rank one above the outcome object.
    tiers = {None: 0, "Lead": 1, "Contact": 2, "Opportunity": 3, "Account": 4, "Event": 4, "Task": 4}

    def levels(sid: str) -> list[int]:
        s = mapping.stage(sid)
        return ([0] if s.ma else []) + ([tiers[s.sfa.object]] if s.sfa else [])

    need = max(levels(detour))
    return next(i for i, sid in enumerate(mapping.success_path()) if min(levels(sid)) >= need)


def _replay(computed_seq: list[str | None]) -> list[str]:
    current: str | None = None
    history: list[str] = []
    for computed in computed_seq:
        step = decide_transition(MAPPING, current, computed)
        history += step
        if step:
            current = step[-1]
    return history


@settings(max_examples=300, deadline=None)
@given(sequences)
def test_never_backward_on_success_path_except_via_detour(seq: list[Any]) -> None:
    last_success = -1
    for stage in _replay(seq):
        if stage in RECYCLE:
            last_success = -1
        elif stage in TERMINAL:
            # Only ``current`` is known to the engine, so leaving a terminal detour is judged
            # against the detour's anchor, not against the furthest stage ever reached.
            last_success = _anchor(MAPPING, stage)
        else:
            idx = PATH.index(stage)
            assert idx > last_success, (seq, stage)
            last_success = idx


@settings(max_examples=300, deadline=None)
@given(sequences)
def test_each_step_is_a_detour_or_a_contiguous_run_ending_at_computed(seq: list[Any]) -> None:
    current: str | None = None
    for computed in seq:
        step = decide_transition(MAPPING, current, computed)
        if step:
            assert step[-1] == computed
            if computed in PATH:
                idx = [PATH.index(s) for s in step]
                assert idx == list(range(idx[0], idx[-1] + 1))
                if current is None:
                    assert idx[0] == 0
            else:
                assert step == [computed]
            current = computed
        else:
            assert computed is None or computed == current or current is not None


@settings(max_examples=200, deadline=None)
@given(sequences)
def test_no_stage_entered_twice_in_a_row_and_terminal_exits_are_legal(seq: list[Any]) -> None:
    history = _replay(seq)
    for before, after in zip(history, history[1:], strict=False):
        assert before != after
        if before in TERMINAL:
            ok = (
                after in RECYCLE
                or (after in PATH and PATH.index(after) > _anchor(MAPPING, before))
                or (after in TERMINAL and _anchor(MAPPING, after) > _anchor(MAPPING, before))
            )
            assert ok, (before, after)


@settings(max_examples=200, deadline=None)
@given(sequences)
def test_replaying_the_final_state_is_idempotent(seq: list[Any]) -> None:
    history = _replay(seq)
    current = history[-1] if history else None
    assert decide_transition(MAPPING, current, current) == []
    if seq and seq[-1] is not None and seq[-1] == current:
        assert decide_transition(MAPPING, current, seq[-1]) == []
