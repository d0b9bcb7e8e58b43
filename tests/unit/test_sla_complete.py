"""Completeness SLAs: on entering a stage the named fields are filled; a breach names the blank ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from sqlalchemy import select
from structlog.testing import capture_logs

from sync.funnel.notify import message
from sync.funnel.sla_stats import summarise_slas
from sync.mapping import lint_text, parse_mapping_data
from sync.sla_hooks import SlaHooks
from sync.stages import PersonView
from sync.store.db import Store
from sync.store.models import SlaTimer

DEFAULT_MAPPING = Path(__file__).parents[2] / "mappings" / "default.yaml"
T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)
SHEET = ["Opportunity.Budget__c", "Opportunity.NextStep", "Contact.Title"]


def mapping_data(**sla: Any) -> dict[str, Any]:
    """The default mapping with this test's information-sheet SLA in place of its own."""
    data: dict[str, Any] = YAML(typ="safe").load(DEFAULT_MAPPING.read_text(encoding="utf-8"))
    data["slas"] = [entry for entry in data["slas"] if entry["id"] != "info_sheet"]
    data["slas"].append({"id": "info_sheet", "kind": "complete_at", "stage": "sql", **sla})
    return data


def hooks() -> SlaHooks:
    return SlaHooks(parse_mapping_data(mapping_data(fields=SHEET, on_breach=["log", "sfa_task"])))


class Sink:
    def __init__(self) -> None:
        self.tasks: list[tuple[str, str]] = []

    def create_sfa_task(self, common_id: str, sla_id: str, due_at: datetime) -> None:
        self.tasks.append((common_id, sla_id))

    def set_ma_property(self, common_id: str, sla_id: str, breached_at: datetime) -> None:
        raise AssertionError("not configured")


def view(opportunity: dict[str, Any] | None, contact: dict[str, Any]) -> PersonView:
    records = {"Contact": contact} | ({"Opportunity": opportunity} if opportunity is not None else {})
    return PersonView(ma={"email": "a@example.com"}, sfa=records)


def sheet_timers(store: Store) -> dict[str, SlaTimer]:
    with store.session() as session:
        rows = session.scalars(select(SlaTimer).where(SlaTimer.sla_id == "info_sheet")).all()
        session.expunge_all()
    return {t.common_id: t for t in rows}


def test_entry_with_blank_fields_is_a_breach_naming_them_and_feedback_is_applied_once(store: Store) -> None:
    h, sink = hooks(), Sink()
    people = {
        "full": view({"Budget__c": 0, "NextStep": "Demo on Friday"}, {"Title": "CTO"}),
        "blanks": view({"Budget__c": None, "NextStep": "  "}, {"Title": "CTO"}),
        "no_opportunity": view(None, {"Title": ""}),
    }
    with store.session() as session:
        for cid, records in people.items():
            h.on_transition(session, cid, "sql", T0, records)
            h.on_transition(session, cid, "sql", T0, records)  # seen twice: still one check
            h.on_transition(session, cid, "won", T0 + timedelta(days=3), records)  # settles nothing
    timers = sheet_timers(store)
    assert {cid: t.status for cid, t in timers.items()} == {
        "full": "met",
        "blanks": "breached",
        "no_opportunity": "breached",
    }
    assert timers["blanks"].feedback == {"missing_fields": ["Opportunity.Budget__c", "Opportunity.NextStep"]}
    assert timers["no_opportunity"].feedback == {"missing_fields": SHEET}
    assert timers["blanks"].breached_at == T0

    with capture_logs() as logs, store.session() as session:
        found = h.detect(session, T0 + timedelta(days=4), sink)
        again = h.detect(session, T0 + timedelta(days=5), sink)
    assert sorted((b.common_id, b.missing) for b in found) == [
        ("blanks", ("Opportunity.Budget__c", "Opportunity.NextStep")),
        ("no_opportunity", tuple(SHEET)),
    ]
    assert again == [] and sorted(sink.tasks) == [("blanks", "info_sheet"), ("no_opportunity", "info_sheet")]
    logged = {e["common_id"]: e["missing_fields"] for e in logs if e["event"] == "sla_breached"}
    assert logged == {"blanks": ["Opportunity.Budget__c", "Opportunity.NextStep"], "no_opportunity": SHEET}

    rule = next(r for r in h.rules if r.id == "info_sheet")
    text = message(rule, sheet_timers(store)["blanks"])["text"]
    assert text.endswith("missing Opportunity.Budget__c, Opportunity.NextStep.")
    with store.session() as session:
        [summary] = [
            s
            for s in summarise_slas(session, h.rules, T0, T0 + timedelta(days=1), T0 + timedelta(days=9))
            if s.sla_id == "info_sheet"
        ]
    assert (summary.started, summary.met, summary.breached, summary.open_breaches) == (3, 1, 2, 0)
    assert summary.allowance == "on entry" and summary.compliance_rate == 1 / 3


def test_without_the_records_no_check_is_made(store: Store) -> None:
    with store.session() as session:
        hooks().on_transition(session, "p", "sql", T0)  # what the engine passes today
    assert sheet_timers(store) == {}


def test_the_fields_are_read_from_salesforce() -> None:
    mapping = parse_mapping_data(mapping_data(fields=SHEET))
    assert {"Budget__c", "NextStep"} <= mapping.sfa_fields("Opportunity")
    assert "Title" in mapping.sfa_fields("Contact")


def entry_line(**sla: Any) -> str:
    entry = ", ".join(f"{k}: {v}" for k, v in {"id": "info_sheet", "kind": "complete_at", **sla}.items())
    return f"  - {{{entry}}}"


def base_text() -> str:
    """The default mapping up to its SLAs, then only its time SLAs, so a test's entry comes last."""
    text = DEFAULT_MAPPING.read_text(encoding="utf-8")
    head = text[: text.index("\nslas:\n")]
    return (
        head
        + "\nslas:\n"
        + "\n".join(
            line
            for line in text.splitlines()
            if line.startswith("  - {id: first_touch") or line.startswith("  - {id: kickoff")
        )
    )


def lint(**sla: Any) -> list[str]:
    text = base_text() + "\n" + entry_line(**sla) + "\n"
    model, errors = lint_text(text, "m.yaml")
    assert (model is None) == bool(errors)
    return [str(e) for e in errors]


def col(token: str, **sla: Any) -> int:
    """1-based column of ``token``'s last occurrence in the SLA's line."""
    return entry_line(**sla).rindex(token) + 1


def test_lint_reports_each_mistake_at_its_position() -> None:
    row = len(base_text().splitlines()) + 1
    at = f"m.yaml:{row}"
    sheet = "[Opportunity.Budget__c]"
    assert lint(stage="sql", fields=sheet) == []
    typo = {"stage": "sqll", "fields": sheet}
    assert lint(**typo) == [
        f"{at}:{col('sqll', **typo)}: slas[2].stage: unknown stage 'sqll' (did you mean 'sql'?)"
    ]
    assert lint(stage="sql") == [f"{at}:5: slas[2]: SLA 'info_sheet' (complete_at) needs 'fields'"]
    assert lint(stage="sql", fields=sheet, within="2d") == [
        f"{at}:5: slas[2]: SLA 'info_sheet' (complete_at) does not take 'within'"
    ]
    [bad_object] = lint(stage="sql", fields="[Opportunty.Budget__c]")
    assert bad_object.startswith(f"{at}:") and "unknown object 'Opportunty'" in bad_object
    twice = {"stage": "sql", "fields": "[Contact.Title, Contact.Title]"}
    assert lint(**twice) == [
        f"{at}:{col('Contact.Title', **twice)}: slas[2].fields[1]: 'Contact.Title' is listed twice"
    ]
    assert lint(stage="sql", fields="[]") == [
        f"{at}:5: slas[2]: SLA 'info_sheet': 'fields' needs at least one Object.Field"
    ]
