"""What really happened to every person in a sandbox run, for checking Closedloop against.

Built only from the planned population and the sales team's executed actions, never from
Closedloop's own records, so a test can compare Closedloop's funnel report with it.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandboxes.customer_success import kickoff_due
from sandboxes.population import PlannedContact
from sandboxes.sales_team import ExecutedAction, HandedLead

SUCCESS_PATH: tuple[str, ...] = (
    "lead",
    "mql",
    "sal",
    "sql",
    "opportunity",
    "won",
    "kickoff",
    "customer",
    "expansion",
)
DETOURS: tuple[str, ...] = ("lost", "disqualified", "recycled", "churned")
# The three handover SLAs and the team each belongs to (the team owning the stage it waits on).
SLA_TEAMS: dict[str, str] = {
    "first_touch": "inside_sales",
    "info_sheet": "inside_sales",
    "kickoff": "customer_success",
}
FIRST_TOUCH_HOURS = 24.0
NO_VALUE = "(none)"  # owner of an SLA case nobody owns (e.g. a HubSpot-only run has no reps)
ALL_SLAS = "*"

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
    "assign": None,
    "fill_sheet": None,
    "kickoff": "kickoff",
    "activate": "customer",
    "churn": "churned",
    "expand": None,
    "expand_win": "expansion",
    "nps": None,
}
# Every stage after the win keeps the sales outcome "won" (a churned customer's deal was still won).
OUTCOME_OF_STAGE = {
    "won": "won",
    "kickoff": "won",
    "customer": "won",
    "expansion": "won",
    "churned": "won",
    "lost": "lost",
    "disqualified": "disqualified",
}


@dataclass(frozen=True)
class SlaCase:
    """One SLA timer of one person: when it started, was due, was met (None: not yet), and who owns it.

    ``met`` is True (met in time), False (breached) or None (still running at ``now``).
    """

    sla_id: str
    email: str
    campaign: str
    started_at: datetime
    due_at: datetime
    done_at: datetime | None
    met: bool | None
    owner: str  # the rep's name, ``(none)`` when unknown

    @property
    def team(self) -> str:
        return SLA_TEAMS[self.sla_id]

    @property
    def week(self) -> str:
        """``2026-W45``: the ISO week (UTC) the timer started in."""
        year, week, _ = self.started_at.astimezone(UTC).isocalendar()
        return f"{year}-W{week:02d}"


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
    # Owners (rep names) per team, the information sheet and customer success (Salesforce team).
    is_rep: str | None = None  # Lead owner: inside sales
    fs_rep: str | None = None  # Opportunity owner: field sales
    cs_rep: str | None = None  # Account owner from the win: customer success
    sheet_blank: list[str] | None = None  # sheet fields left blank at conversion (None: never filled)
    account_id: str | None = None
    contact_id: str | None = None
    expansion_opportunity_id: str | None = None
    expansion_amount: int | None = None
    expansion_close_date: str | None = None
    nps: int | None = None  # 0-10 answer to the NPS survey

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

    # -- the three handover SLAs --------------------------------------------------------------------

    def sla_cases(self, sla_id: str, now: datetime | None = None) -> list[SlaCase]:
        """Every timer of ``sla_id`` (first_touch, info_sheet, kickoff) as of ``now``.

        ``now`` defaults to :meth:`last_event`; pass the simulated clock's time to compare with a
        report made then.

        first_touch: MQL -> SAL within 24 h, for people handed to sales; owner the inside sales rep.
        info_sheet: at conversion (SQL) all five sheet fields filled, else breached; owner inside sales.
        kickoff: won -> kickoff within 3 business days (JP calendar, Tokyo); owner customer success.
        A timer whose target was never reached is breached once ``now`` is past due, else running.
        """
        if sla_id not in SLA_TEAMS:
            raise ValueError(f"unknown SLA {sla_id!r}")
        now = now or self.last_event()
        cases = []
        for p in self.people:
            case = _sla_case(p, sla_id, now)
            if case is not None:
                cases.append(case)
        return cases

    def sla_counts(self, sla_id: str, now: datetime | None = None) -> dict[str, int]:
        """``{"met", "breached", "running"}`` timers of one SLA."""
        tally = Counter(_status(c) for c in self.sla_cases(sla_id, now))
        return {k: tally.get(k, 0) for k in ("met", "breached", "running")}

    def sla_breakdown(self, now: datetime | None = None) -> dict[tuple[str, str, str], tuple[int, int]]:
        """(dimension, value, SLA id or ``*``) -> (met, breached) over closed timers.

        Dimensions: ``owner`` (rep name), ``team`` (inside_sales, customer_success), ``campaign`` and
        ``week`` (ISO week of the timer start, UTC); ``*`` sums every SLA.
        """
        counts: dict[tuple[str, str, str], list[int]] = {}
        for sla_id in SLA_TEAMS:
            for case in self.sla_cases(sla_id, now):
                if case.met is None:
                    continue
                values = {
                    "owner": case.owner,
                    "team": case.team,
                    "campaign": case.campaign,
                    "week": case.week,
                }
                for dimension, value in values.items():
                    for key in ((dimension, value, sla_id), (dimension, value, ALL_SLAS)):
                        tally = counts.setdefault(key, [0, 0])
                        tally[0 if case.met else 1] += 1
        return {key: (met, breached) for key, (met, breached) in counts.items()}

    def sla_by(
        self, dimension: str, sla_id: str = ALL_SLAS, now: datetime | None = None
    ) -> dict[str, tuple[int, int]]:
        """One dimension of :meth:`sla_breakdown`: value -> (met, breached) for ``sla_id`` (``*``: all)."""
        return {v: mb for (d, v, s), mb in self.sla_breakdown(now).items() if d == dimension and s == sla_id}

    # -- customer success ---------------------------------------------------------------------------

    def won_to_kickoff_hours(self) -> list[float]:
        """Hours from the win to the kickoff, per person who was kicked off (in people order)."""
        out = []
        for p in self.people:
            won, kickoff = p.entered_at("won"), p.entered_at("kickoff")
            if won is not None and kickoff is not None:
                out.append((kickoff - won).total_seconds() / 3600)
        return out

    def median_won_to_kickoff_hours(self) -> float | None:
        """The median of :meth:`won_to_kickoff_hours`; None without any kickoff."""
        hours = self.won_to_kickoff_hours()
        return statistics.median(hours) if hours else None

    def churn_by_cohort(self) -> dict[str, tuple[int, int]]:
        """Customer cohort month (``YYYY-MM``, UTC, month they became customers) -> (churned, customers)."""
        table: dict[str, list[int]] = {}
        for p in self.people:
            became = p.entered_at("customer")
            if became is None:
                continue
            row = table.setdefault(became.astimezone(UTC).strftime("%Y-%m"), [0, 0])
            row[0] += p.reached("churned")
            row[1] += 1
        return {month: (churned, customers) for month, (churned, customers) in sorted(table.items())}

    def churn_rate_by_cohort(self) -> dict[str, float]:
        """Churned / customers per customer cohort month (``YYYY-MM``, UTC)."""
        return {month: churned / total for month, (churned, total) in self.churn_by_cohort().items()}

    def expansion_rate(self) -> float | None:
        """Of the people who became customers, the share who bought an upgrade; None without customers."""
        return self.conversion("customer", "expansion")

    def nps(self) -> float | None:
        """Net Promoter Score: % promoters (9-10) minus % detractors (0-6) of the people with a score.

        Rounded to one decimal place; None when nobody answered.
        """
        scores = [p.nps for p in self.people if p.nps is not None]
        if not scores:
            return None
        promoters = sum(1 for s in scores if s >= 9)
        detractors = sum(1 for s in scores if s <= 6)
        return round(100.0 * (promoters - detractors) / len(scores), 1)

    def summary(self) -> dict[str, Any]:
        """All aggregates in one JSON-friendly dict (SLAs as of the last recorded event)."""
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
            "slas": {sla_id: self.sla_counts(sla_id) for sla_id in SLA_TEAMS},
            "sla_breakdown": [
                {"dimension": d, "value": v, "sla_id": s, "met": met, "breached": breached}
                for (d, v, s), (met, breached) in sorted(self.sla_breakdown().items())
            ],
            "won_to_kickoff_hours_median": self.median_won_to_kickoff_hours(),
            "churn_by_cohort": {m: list(v) for m, v in self.churn_by_cohort().items()},
            "expansion_rate": self.expansion_rate(),
            "nps": self.nps(),
        }

    def last_event(self) -> datetime | None:
        """The latest time in anyone's path (the default ``now`` of the SLA figures)."""
        return max((at for p in self.people for _s, at in p.path), default=None)


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
    if action.kind == "assign":
        person.is_rep = details.get("owner")
    elif action.kind == "fill_sheet":
        person.sheet_blank = list(details.get("sheet_blank") or [])
    elif action.kind == "convert":
        person.fs_rep = details.get("fs_owner")
        person.account_id = details.get("account_id")
        person.contact_id = details.get("contact_id")
    elif action.kind == "win":
        person.cs_rep = details.get("cs_owner")
    elif action.kind == "nps":
        person.nps = int(details["nps"])
    elif action.kind in ("expand", "expand_win"):
        person.expansion_opportunity_id = details.get("expansion_opportunity_id")
        if action.kind == "expand_win":
            person.expansion_amount = int(details["expansion_amount"])
            person.expansion_close_date = details.get("expansion_close_date")
    stage = STAGE_OF_ACTION[action.kind]
    if stage is not None:
        person.path.append((stage, action.done_at))


def _status(case: SlaCase) -> str:
    return "running" if case.met is None else "met" if case.met else "breached"


def _sla_case(p: PersonTruth, sla_id: str, now: datetime | None) -> SlaCase | None:
    """The person's timer of ``sla_id``, or None when it never started."""
    if sla_id == "first_touch":
        if p.mql_at is None or p.lead_id is None:
            return None  # never handed to sales
        start, done, owner = p.mql_at, p.entered_at("sal"), p.is_rep
        due = start + timedelta(hours=FIRST_TOUCH_HOURS)
    elif sla_id == "info_sheet":
        converted = p.entered_at("sql")
        if converted is None:
            return None
        filled = p.sheet_blank is not None and not p.sheet_blank
        return SlaCase(
            sla_id, p.email, p.campaign, converted, converted, converted, filled, p.is_rep or NO_VALUE
        )
    else:
        won = p.entered_at("won")
        if won is None:
            return None
        start, done, owner, due = won, p.entered_at("kickoff"), p.cs_rep, kickoff_due(won)
    if done is not None:
        met: bool | None = done <= due
    else:
        met = False if now is not None and now > due else None
    return SlaCase(sla_id, p.email, p.campaign, start, due, done, met, owner or NO_VALUE)
