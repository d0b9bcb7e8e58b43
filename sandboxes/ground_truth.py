"""What really happened to every person in a sandbox run, for checking Closedloop against.

Built only from the planned population and the sales team's executed actions, never from
Closedloop's own records, so a test can compare Closedloop's funnel report with it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sandboxes.population import PlannedContact
from sandboxes.sales_team import ExecutedAction, HandedLead

SUCCESS_PATH: tuple[str, ...] = ("lead", "mql", "sal", "sql", "opportunity", "won")
DETOURS: tuple[str, ...] = ("lost", "disqualified", "recycled")

# The standard stage each sales action makes the person enter (None: no stage change).
STAGE_OF_ACTION: dict[str, str | None] = {
    "contact": "sal",
    "convert": "sql",
    "propose": "opportunity",
    "negotiate": None,
    "win": "won",
    "lose": "lost",
    "disqualify": "disqualified",
    "recycle": "recycled",
}
OUTCOME_OF_STAGE = {"won": "won", "lost": "lost", "disqualified": "disqualified"}


@dataclass
class PersonTruth:
    """One person's true history; ``path`` lists (stage, entered at) in order."""

    key: str
    email: str  # normalised
    hubspot_id: str | None
    campaign: str
    source: str
    score: int
    created_at: datetime
    mql_at: datetime | None
    path: list[tuple[str, datetime]] = field(default_factory=list)
    lead_id: str | None = None
    closedloop_id: str | None = None
    opportunity_id: str | None = None
    loss_reason: str | None = None
    amount: int | None = None  # the opportunity's final Amount (JPY), won or lost
    close_date: str | None = None  # YYYY-MM-DD, for closed opportunities only

    @property
    def stage(self) -> str:
        """The expected final standard stage."""
        return self.path[-1][0]

    @property
    def outcome(self) -> str:
        """open | won | lost | disqualified."""
        return OUTCOME_OF_STAGE.get(self.stage, "open")

    def reached(self, stage: str) -> bool:
        """Whether the person ever entered ``stage``."""
        return any(s == stage for s, _at in self.path)

    def entered_at(self, stage: str) -> datetime | None:
        """When the person first entered ``stage``."""
        return next((at for s, at in self.path if s == stage), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (ISO times; derived stage and outcome included for readers)."""
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["mql_at"] = self.mql_at.isoformat() if self.mql_at else None
        data["path"] = [[s, at.isoformat()] for s, at in self.path]
        data["stage"] = self.stage
        data["outcome"] = self.outcome
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PersonTruth:
        """Inverse of ``to_dict``."""
        values = {k: v for k, v in data.items() if k not in ("stage", "outcome")}
        values["created_at"] = datetime.fromisoformat(data["created_at"])
        values["mql_at"] = datetime.fromisoformat(data["mql_at"]) if data.get("mql_at") else None
        values["path"] = [(s, datetime.fromisoformat(at)) for s, at in data["path"]]
        return cls(**values)


class GroundTruth:
    """Per-person truth, indexed by normalised email and HubSpot contact id, plus aggregates."""

    def __init__(self, people: Iterable[PersonTruth], unmatched: Sequence[ExecutedAction] = ()) -> None:
        self.people: list[PersonTruth] = list(people)
        self.by_email: dict[str, PersonTruth] = {p.email: p for p in self.people}
        self.by_hubspot_id: dict[str, PersonTruth] = {p.hubspot_id: p for p in self.people if p.hubspot_id}
        self.unmatched = list(unmatched)  # actions on Leads that match no planned contact

    @classmethod
    def build(
        cls,
        population: Iterable[PlannedContact],
        hubspot_ids: Mapping[str, str],
        actions: Iterable[ExecutedAction],
        handed_over: Iterable[HandedLead] = (),
        mql_times: Mapping[str, datetime] | None = None,
        created_times: Mapping[str, datetime] | None = None,
    ) -> GroundTruth:
        """Combine the population (keyed ``PlannedContact.key``) with the team's executed actions.

        ``handed_over`` (``SalesTeam.handed_over()``) names the Lead of every person sales received,
        even those never touched. ``mql_times``/``created_times`` (from ``PopulationSeeder``) replace
        the planned times with the times the writes really happened; without them the plan is trusted.
        """
        people: dict[str, PersonTruth] = {}
        for c in population:
            created = (created_times or {}).get(c.key, c.created_at)
            mql_at = (mql_times or {}).get(c.key, c.mql_at) if c.mql_at is not None else None
            person = PersonTruth(
                key=c.key,
                email=c.normalised_email,
                hubspot_id=hubspot_ids.get(c.key),
                campaign=c.campaign,
                source=c.source,
                score=c.score,
                created_at=created,
                mql_at=mql_at,
                path=[("lead", created)] + ([("mql", mql_at)] if mql_at is not None else []),
            )
            people[person.email] = person
        for lead in handed_over:
            if lead.email in people:
                people[lead.email].lead_id = lead.lead_id
                people[lead.email].closedloop_id = lead.closedloop_id
        unmatched: list[ExecutedAction] = []
        for action in sorted(actions, key=lambda a: a.done_at):
            target = people.get(action.email or "")
            if target is None:
                unmatched.append(action)
                continue
            _apply(target, action)
        return cls(people.values(), unmatched)

    def get(self, email_or_hubspot_id: str) -> PersonTruth | None:
        """Look a person up by normalised email or HubSpot contact id."""
        return self.by_email.get(email_or_hubspot_id) or self.by_hubspot_id.get(email_or_hubspot_id)

    # -- persistence ------------------------------------------------------------------------------

    def to_json(self, path: str | Path) -> None:
        """Write the truth (people and aggregates) as JSON."""
        payload = {
            "version": 1,
            "people": [p.to_dict() for p in self.people],
            "summary": self.summary(),
        }
        Path(path).write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | Path) -> GroundTruth:
        """Read what ``to_json`` wrote (unmatched actions are not kept)."""
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(PersonTruth.from_dict(p) for p in payload["people"])

    # -- aggregates, computed from the truth alone ----------------------------------------------

    def reached_counts(self) -> dict[str, int]:
        """How many people ever entered each stage."""
        counts = Counter(stage for p in self.people for stage in {s for s, _at in p.path})
        return {stage: counts.get(stage, 0) for stage in SUCCESS_PATH + DETOURS}

    def current_counts(self) -> dict[str, int]:
        """How many people are in each stage at the end."""
        counts = Counter(p.stage for p in self.people)
        return {stage: counts.get(stage, 0) for stage in SUCCESS_PATH + DETOURS}

    def outcome_counts(self) -> dict[str, int]:
        """People per outcome (open, won, lost, disqualified)."""
        return dict(Counter(p.outcome for p in self.people))

    def conversion(self, from_stage: str, to_stage: str) -> float | None:
        """Of the people who reached ``from_stage``, the share who ever reached ``to_stage``."""
        cohort = [p for p in self.people if p.reached(from_stage)]
        if not cohort:
            return None
        return sum(1 for p in cohort if p.reached(to_stage)) / len(cohort)

    def mql_to_sql_rate(self) -> float | None:
        """Share of MQLs that ever became SQLs."""
        return self.conversion("mql", "sql")

    def sql_to_won_rate(self) -> float | None:
        """Share of SQLs that were won."""
        return self.conversion("sql", "won")

    def won_amount_by_campaign(self) -> dict[str, int]:
        """Total won Amount per campaign (campaigns without wins are left out)."""
        totals: Counter[str] = Counter()
        for p in self.people:
            if p.outcome == "won" and p.amount is not None:
                totals[p.campaign] += p.amount
        return dict(totals)

    def by_campaign(self) -> dict[str, dict[str, int]]:
        """Per campaign: leads, MQLs, SQLs, wins, losses and won amount."""
        table: dict[str, dict[str, int]] = {}
        for p in self.people:
            row = table.setdefault(
                p.campaign, {"leads": 0, "mqls": 0, "sqls": 0, "wins": 0, "losses": 0, "won_amount": 0}
            )
            row["leads"] += 1
            row["mqls"] += p.reached("mql")
            row["sqls"] += p.reached("sql")
            row["wins"] += p.outcome == "won"
            row["losses"] += p.outcome == "lost"
            row["won_amount"] += (p.amount or 0) if p.outcome == "won" else 0
        return table

    def loss_reasons(self) -> dict[str, int]:
        """Lost opportunities per loss reason."""
        return dict(Counter(p.loss_reason or "(none)" for p in self.people if p.outcome == "lost"))

    def sla_first_touch(self, hours: float = 24.0) -> dict[str, int]:
        """First-touch SLA (mql → sal within ``hours``): met, breached (late or never)."""
        met = late = never = 0
        for p in self.people:
            if p.mql_at is None or p.lead_id is None:
                continue
            sal = p.entered_at("sal")
            if sal is None:
                never += 1
            elif (sal - p.mql_at).total_seconds() <= hours * 3600:
                met += 1
            else:
                late += 1
        return {"met": met, "late": late, "never": never}

    def summary(self) -> dict[str, Any]:
        """All aggregates in one JSON-friendly dict."""
        return {
            "people": len(self.people),
            "reached": self.reached_counts(),
            "current": self.current_counts(),
            "outcomes": self.outcome_counts(),
            "mql_to_sql": self.mql_to_sql_rate(),
            "sql_to_won": self.sql_to_won_rate(),
            "won_amount_by_campaign": self.won_amount_by_campaign(),
            "by_campaign": self.by_campaign(),
            "loss_reasons": self.loss_reasons(),
        }


def _apply(person: PersonTruth, action: ExecutedAction) -> None:
    person.lead_id = person.lead_id or action.lead_id
    person.closedloop_id = person.closedloop_id or action.closedloop_id
    details = action.details
    if details.get("opportunity_id"):
        person.opportunity_id = str(details["opportunity_id"])
    if details.get("amount") is not None:
        person.amount = int(details["amount"])
    if action.kind in ("win", "lose"):
        person.close_date = details.get("close_date")
        person.loss_reason = details.get("loss_reason")
    stage = STAGE_OF_ACTION[action.kind]
    if stage is not None:
        person.path.append((stage, action.done_at))
