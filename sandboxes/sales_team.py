"""A scripted sales team that works the Salesforce sandbox's Leads to known outcomes.

The team never creates Leads: Closedloop does, at the MQL handover. ``run_due`` discovers new
Leads, plans each one's fate (deterministically from the team seed and the person's email) relative
to the Lead's CreatedDate, and carries out every action due, in time order, through the sandboxes'
in-process helpers, the way inside and field sales would click through the Salesforce UI.

Default rates follow DOMAIN.md: ~90% of MQLs contacted (most within 24 h, a tail beyond: SLA
breaches), MQL→SQL ~20%, SQL→won ~30%; the rest lost with a reason, disqualified or recycled.

The Salesforce team is four teams' worth of named reps (:mod:`sandboxes.reps`): inside sales owns
the Lead from discovery and fills its information sheet before converting it, field sales owns the
Opportunity, customer success owns the Account from the win, kicks the customer off, activates,
loses or expands it (:mod:`sandboxes.customer_success`). Those extra steps come from a second random
stream per person, so the funnel plan of a person is the same with or without them.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol, cast

from sandboxes import customer_success as cs
from sandboxes.common import SimClock
from sandboxes.population import CAMPAIGNS, normalise_email
from sandboxes.reps import Rep, Team, ensure_users, pick
from sync.timeutil import parse_timestamp

ActionKind = Literal[
    "contact",
    "disqualify",
    "recycle",
    "convert",
    "propose",
    "negotiate",
    "win",
    "lose",
    # Salesforce team only: owners, the information sheet and customer success.
    "assign",
    "fill_sheet",
    "kickoff",
    "activate",
    "churn",
    "expand",
    "expand_win",
    "nps",
]
# Actions that change no stage: a scenario step may hold one of them and a stage change of the
# same person (they still happen at their own due times).
QUIET_ACTIONS: frozenset[str] = frozenset({"assign", "fill_sheet", "nps"})

OPEN_STATUS = "Open - Not Contacted"
WORKING_STATUS = "Working - Contacted"
CONVERTED_STATUS = "Closed - Converted"
DISQUALIFIED_STATUS = "Closed - Not Converted"
RECYCLE_LEAD_STATUS = "BAD_TIMING"  # HubSpot hs_lead_status option
LEAD_FIELDS = ("Id", "Email", "Company", "Status", "IsConverted", "Closedloop_Id__c", "CreatedDate")
WATERMARK_OVERLAP = timedelta(minutes=5)

# Values of the org's restricted Loss_Reason__c picklist, with how often each is chosen.
LOSS_REASONS: tuple[tuple[str, float], ...] = (
    ("Price", 0.25),
    ("Competitor", 0.20),
    ("No Budget", 0.15),
    ("Timing", 0.15),
    ("No Decision", 0.15),
    ("Product Fit", 0.10),
)


class SalesforceTarget(Protocol):
    """The part of ``SalesforceSandbox`` the team uses."""

    def insert(self, sobject: str, fields: dict[str, Any]) -> str: ...

    def update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None: ...

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None: ...

    def records(self, sobject: str) -> list[dict[str, Any]]: ...

    def query(self, soql: str) -> list[dict[str, Any]]: ...

    def convert_lead(
        self,
        lead_id: str,
        converted_status: str = ...,
        opportunity_name: str | None = ...,
        create_opportunity: bool = ...,
    ) -> dict[str, str | None]: ...


class HubSpotTarget(Protocol):
    """The part of ``HubSpotSandbox`` the team uses (recycling happens on the marketing side)."""

    def update_contact(self, contact_id: str, properties: dict[str, str | None]) -> None: ...

    def contacts(self) -> list[dict[str, Any]]: ...

    def get_contact(self, contact_id: str) -> dict[str, str | None] | None: ...


@dataclass(frozen=True)
class TeamRates:
    """How the team performs. Shares of the MQL-handed Leads unless stated otherwise."""

    contact_rate: float = 0.90
    late_touch_share: float = 0.12  # of contacted: first touch after more than 24 h
    mql_to_sql: float = 0.20
    sql_to_won: float = 0.30
    disqualify_share: float = 0.50  # of contacted but not qualified
    recycle_share: float = 0.30  # of contacted but not qualified; the rest stay "Working"
    lost_before_proposal_share: float = 0.30  # of lost deals: lost while still in Qualification
    loss_reasons: tuple[tuple[str, float], ...] = LOSS_REASONS
    # Per campaign (HubSpot hs_analytics_source_data_1): multiplier on qualification and win odds.
    campaign_quality: tuple[tuple[str, float], ...] = tuple((c.name, c.sales_quality) for c in CAMPAIGNS)
    # Qualification odds change by this share per score point away from ``score_pivot``. Win odds
    # ignore the score on purpose: "a high MA score does not mean likely to close" (DOMAIN.md).
    score_effect: float = 0.01
    score_pivot: float = 65.0
    amount_min_jpy: int = 300_000
    amount_max_jpy: int = 3_000_000
    # "Fast reps": a share of people whose next two outcomes happen within one poll interval (a
    # lead worked then disqualified a second later; an opportunity moved past qualification then
    # lost or won a second later). Only a sync that replays history logs the stage in between.
    fast_share: float = 0.0
    # Salesforce team only. Of converted leads: an information sheet with blank fields.
    incomplete_sheet_share: float = 0.3
    # Of wins: kickoff after the 3-business-day SLA, or never (then the account never goes live).
    kickoff_late_share: float = 0.2
    no_kickoff_share: float = 0.05
    # Of customers (active accounts): churned later, bought an upgrade (never both), answered NPS.
    churn_share: float = 0.15
    expansion_share: float = 0.2
    nps_share: float = 0.6

    def __post_init__(self) -> None:
        for name in (
            "incomplete_sheet_share",
            "kickoff_late_share",
            "no_kickoff_share",
            "churn_share",
            "expansion_share",
            "nps_share",
            "fast_share",
            "contact_rate",
            "late_touch_share",
            "mql_to_sql",
            "sql_to_won",
            "disqualify_share",
            "recycle_share",
            "lost_before_proposal_share",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.mql_to_sql > self.contact_rate:
            raise ValueError("mql_to_sql cannot exceed contact_rate: only contacted leads qualify")
        if self.disqualify_share + self.recycle_share > 1.0:
            raise ValueError("disqualify_share + recycle_share must not exceed 1")
        if self.kickoff_late_share + self.no_kickoff_share > 1.0:
            raise ValueError("kickoff_late_share + no_kickoff_share must not exceed 1")
        if self.churn_share + self.expansion_share > 1.0:
            raise ValueError("churn_share + expansion_share must not exceed 1")
        if not 0 < self.amount_min_jpy <= self.amount_max_jpy:
            raise ValueError("need 0 < amount_min_jpy <= amount_max_jpy")


@dataclass(frozen=True)
class PlannedAction:
    """One step of a person's plan."""

    due: datetime
    kind: ActionKind
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExecutedAction:
    """An action the team carried out: what, to whom, when it was due and when it was done."""

    lead_id: str
    email: str | None  # normalised
    closedloop_id: str | None
    kind: ActionKind
    due_at: datetime
    done_at: datetime
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HandedLead:
    """A Lead the team received: who it is and when it was created."""

    lead_id: str
    email: str | None  # normalised
    closedloop_id: str | None
    created_at: datetime


@dataclass
class _Person:
    lead_id: str
    email: str | None
    closedloop_id: str | None
    company: str
    created_at: datetime
    opportunity_id: str | None = None
    account_id: str | None = None
    contact_id: str | None = None
    expansion_id: str | None = None  # the upgrade opportunity, once created
    reps: dict[Team, Rep] = field(default_factory=dict)
    failed: bool = False
    remaining: int = 0  # scheduled actions not yet carried out


@dataclass
class Failure:
    """An action the sandboxes refused; the rest of that person's plan is abandoned."""

    lead_id: str
    kind: ActionKind
    at: datetime
    error: str


def person_rng(seed: int, person_key: str) -> random.Random:
    """A random generator for one person, stable across runs and processes."""
    digest = hashlib.sha256(f"{seed}:{person_key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def plan_for(
    rng: random.Random,
    created: datetime,
    rates: TeamRates,
    campaign: str | None = None,
    score: float | None = None,
) -> list[PlannedAction]:
    """The whole fate of one Lead created at ``created``: actions with their due times.

    ``campaign`` and ``score`` (from the HubSpot contact, when known) tilt the odds; unknown
    ones leave the configured rates as they are.
    """
    quality = dict(rates.campaign_quality).get(campaign or "", 1.0)
    tilt = 1.0 + rates.score_effect * (score - rates.score_pivot) if score is not None else 1.0
    qualify_p = _clamp(rates.mql_to_sql / rates.contact_rate * quality * tilt) if rates.contact_rate else 0.0
    win_p = _clamp(rates.sql_to_won * quality)
    hours = timedelta(hours=1)
    days = timedelta(days=1)
    fast = FAST_GAP if rng.random() < rates.fast_share else None
    if rng.random() >= rates.contact_rate:
        return []  # never touched: the first-touch SLA breaches and the lead stays open
    if rng.random() < rates.late_touch_share:
        touch = created + hours * rng.uniform(24.5, 120.0)
    else:
        touch = created + hours * min(23.5, 0.1 + rng.expovariate(1 / 4.0))
    plan = [PlannedAction(touch, "contact")]
    if rng.random() >= qualify_p:
        roll = rng.random()
        if roll < rates.disqualify_share:
            gap = fast or hours * rng.uniform(1.0, 5 * 24.0)
            plan.append(PlannedAction(touch + gap, "disqualify", {"fast": True} if fast else {}))
        elif roll < rates.disqualify_share + rates.recycle_share:
            plan.append(PlannedAction(touch + days * rng.uniform(1.0, 10.0), "recycle"))
        return plan
    converted = touch + days * rng.uniform(1.0, 10.0)
    plan.append(PlannedAction(converted, "convert", {"expected_close": (converted + 60 * days).date()}))
    won = rng.random() < win_p
    amount = _amount(rng, rates)
    if not won and rng.random() < rates.lost_before_proposal_share and not fast:
        lost_at = converted + days * rng.uniform(3.0, 20.0)
        plan.append(PlannedAction(lost_at, "lose", {"reason": _reason(rng, rates), "amount": None}))
        return plan
    proposed = converted + days * rng.uniform(3.0, 21.0)
    plan.append(PlannedAction(proposed, "propose", {"amount": amount}))
    marked = {"fast": True} if fast else {}
    if won:
        final = _round_amount(amount * rng.uniform(0.85, 1.0))  # a discount in negotiation
        if fast:
            plan.append(PlannedAction(proposed + fast, "win", {"amount": final, **marked}))
            return plan
        negotiated = proposed + days * rng.uniform(3.0, 14.0)
        plan.append(PlannedAction(negotiated, "negotiate", {"amount": final}))
        plan.append(PlannedAction(negotiated + days * rng.uniform(2.0, 30.0), "win", {"amount": final}))
    else:
        lost_at = proposed + (fast or days * rng.uniform(5.0, 40.0))
        plan.append(
            PlannedAction(lost_at, "lose", {"reason": _reason(rng, rates), "amount": amount, **marked})
        )
    return plan


FAST_GAP = timedelta(seconds=1)


def _clamp(p: float) -> float:
    return min(1.0, max(0.0, p))


def _amount(rng: random.Random, rates: TeamRates) -> int:
    # Log-uniform: many small deals, a few large ones.
    low, high = rates.amount_min_jpy, rates.amount_max_jpy
    return _round_amount(low * (high / low) ** rng.random())


def _round_amount(value: float) -> int:
    return max(10_000, int(round(value / 10_000.0)) * 10_000)


def _reason(rng: random.Random, rates: TeamRates) -> str:
    names = [name for name, _w in rates.loss_reasons]
    return rng.choices(names, [w for _n, w in rates.loss_reasons])[0]


ContactResolver = Callable[[str | None, str | None], str | None]


class ScriptedTeam:
    """Plans and carries out the fate of every person handed to sales; backends say where.

    A backend supplies :meth:`_new_leads` (what was handed over, as Lead-shaped dicts: ``Id``,
    ``Email``, ``Company``, ``Status``, ``IsConverted``, ``Closedloop_Id__c``, ``CreatedDate``) and
    :meth:`_apply` (one action in its system, returning the details the ground truth records).
    """

    def __init__(
        self,
        hubspot: HubSpotTarget,
        clock: SimClock,
        seed: int,
        rates: TeamRates | None = None,
        contact_resolver: ContactResolver | None = None,
    ) -> None:
        """``contact_resolver(closedloop_id, email) -> HubSpot contact id`` overrides the lookup."""
        self.hubspot = hubspot
        self.clock = clock
        self.seed = seed
        self.rates = rates or TeamRates()
        self._resolve_contact = contact_resolver or self._find_contact
        self._people: dict[str, _Person] = {}
        self._queue: list[tuple[datetime, int, str, PlannedAction]] = []
        self._pending = 0
        self._seq = 0
        self.executed: list[ExecutedAction] = []
        self.failures: list[Failure] = []
        self.plans: dict[str, list[PlannedAction]] = {}
        self._contact_index: dict[str, str] = {}
        self._watermark: datetime | None = None

    # -- discovery and scheduling ---------------------------------------------------------------

    def discover(self) -> int:
        """Plan every new, unworked Lead in Salesforce; returns how many were new."""
        found = 0
        for lead in self._new_leads():
            lead_id = str(lead["Id"])
            if lead_id in self._people or lead.get("IsDeleted"):
                continue
            if lead.get("IsConverted") or (lead.get("Status") or OPEN_STATUS) != OPEN_STATUS:
                continue  # somebody else already works it
            created = parse_timestamp(lead.get("CreatedDate")) or self.clock.now()
            email = normalise_email(str(lead["Email"])) if lead.get("Email") else None
            closedloop_id = lead.get("Closedloop_Id__c")
            company = str(lead.get("Company") or "New customer")
            person = _Person(lead_id, email, closedloop_id, company, created)
            self._people[lead_id] = person
            key = email or closedloop_id or lead_id
            props = self._contact_properties(closedloop_id, email)
            campaign = props.get("hs_analytics_source_data_1")
            score = _number(props.get("hubspotscore"))
            plan = self._plan(person, key, campaign, score)
            self.plans[lead_id] = plan
            for action in plan:
                self._seq += 1
                heapq.heappush(self._queue, (action.due, self._seq, lead_id, action))
            person.remaining = len(plan)
            self._pending += len(plan)
            found += 1
        return found

    def _plan(
        self, person: _Person, key: str, campaign: str | None, score: float | None
    ) -> list[PlannedAction]:
        """The person's plan, in due order (backends may add their own steps)."""
        return plan_for(person_rng(self.seed, key), person.created_at, self.rates, campaign, score)

    def _new_leads(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _apply(self, person: _Person, action: PlannedAction, at: datetime) -> dict[str, Any]:
        raise NotImplementedError

    def handed_over(self) -> list[HandedLead]:
        """Every Lead the team has discovered, in discovery order."""
        return [HandedLead(p.lead_id, p.email, p.closedloop_id, p.created_at) for p in self._people.values()]

    def pending(self) -> int:
        """Actions scheduled but not yet carried out (abandoned plans excluded)."""
        return self._pending

    def next_due(self) -> datetime | None:
        """When the next scheduled action is due, or None."""
        while self._queue and self._people[self._queue[0][2]].failed:
            heapq.heappop(self._queue)  # leftovers of abandoned plans
        return self._queue[0][0] if self._queue else None

    def run_due(self, now: datetime | None = None) -> int:
        """Discover new Leads, then carry out every action due by ``now`` in time order."""
        self.discover()
        limit = now or self.clock.now()
        done = 0
        while self._queue and self._queue[0][0] <= limit:
            _due, _seq, lead_id, action = heapq.heappop(self._queue)
            person = self._people[lead_id]
            if person.failed:
                continue
            person.remaining -= 1
            self._pending -= 1
            if self._execute(person, action):
                done += 1
        return done

    def _execute(self, person: _Person, action: PlannedAction) -> bool:
        at = self.clock.now()
        try:
            details = self._apply(person, action, at)
        except Exception as exc:  # the sandbox refused: record it, abandon this person's plan
            person.failed = True
            self._pending -= person.remaining
            person.remaining = 0
            self.failures.append(Failure(person.lead_id, action.kind, at, f"{type(exc).__name__}: {exc}"))
            return False
        self.executed.append(
            ExecutedAction(
                person.lead_id, person.email, person.closedloop_id, action.kind, action.due, at, details
            )
        )
        return True

    def _find_contact(self, closedloop_id: str | None, email: str | None) -> str | None:
        """The HubSpot contact of a person: by common ID, else by normalised email."""
        for refresh in (False, True):
            if refresh or not self._contact_index:
                self._contact_index = self._index_contacts()
            for key in (
                f"id:{closedloop_id}" if closedloop_id else None,
                f"email:{email}" if email else None,
            ):
                if key is not None and key in self._contact_index:
                    return self._contact_index[key]
        return None

    def _contact_properties(self, closedloop_id: str | None, email: str | None) -> dict[str, Any]:
        """The person's HubSpot properties, or {} when the contact cannot be found."""
        contact_id = self._resolve_contact(closedloop_id, email)
        props = self.hubspot.get_contact(contact_id) if contact_id else None
        return dict(props or {})

    def _index_contacts(self) -> dict[str, str]:
        index: dict[str, str] = {}
        for contact in self.hubspot.contacts():
            if contact.get("archived"):
                continue
            props = contact.get("properties") or {}
            if props.get("closedloop_id"):
                index[f"id:{props['closedloop_id']}"] = str(contact["id"])
            if props.get("email"):
                index.setdefault(f"email:{normalise_email(str(props['email']))}", str(contact["id"]))
        return index


class SalesTeam(ScriptedTeam):
    """Works every Salesforce Lead Closedloop hands over; see the module docstring."""

    def __init__(
        self,
        salesforce: SalesforceTarget,
        hubspot: HubSpotTarget,
        clock: SimClock,
        seed: int,
        rates: TeamRates | None = None,
        contact_resolver: ContactResolver | None = None,
    ) -> None:
        """``contact_resolver(closedloop_id, email) -> HubSpot contact id`` overrides the lookup."""
        super().__init__(hubspot, clock, seed, rates, contact_resolver)
        self.salesforce = salesforce
        self._user_ids: dict[Rep, str] = {}

    def user_id(self, rep: Rep) -> str:
        """The rep's Salesforce User Id (the Users are created on first use)."""
        if not self._user_ids:
            self._user_ids = ensure_users(self.salesforce)
        return self._user_ids[rep]

    def _plan(
        self, person: _Person, key: str, campaign: str | None, score: float | None
    ) -> list[PlannedAction]:
        """The funnel plan plus owners, the information sheet and customer success steps."""
        plan = super()._plan(person, key, campaign, score)
        rng = person_rng(self.seed, f"{key}/teams")
        person.reps = {team: pick(rng, team) for team in ("inside_sales", "field_sales", "customer_success")}
        extra = [PlannedAction(person.created_at + timedelta(seconds=rng.uniform(60.0, 300.0)), "assign")]
        convert = next((a for a in plan if a.kind == "convert"), None)
        if convert is not None:
            values, blank = cs.info_sheet(rng, convert.due, self.rates)
            before = timedelta(minutes=rng.uniform(10.0, 180.0))
            extra.append(
                PlannedAction(convert.due - before, "fill_sheet", {"values": values, "blank": blank})
            )
        win = next((a for a in plan if a.kind == "win"), None)
        if win is not None:
            steps = cs.after_win(rng, win.due, self.rates)
            extra += [PlannedAction(at, cast(ActionKind, kind), d) for at, kind, d in steps]
        return sorted(plan + extra, key=lambda a: a.due)

    def _new_leads(self) -> list[dict[str, Any]]:
        """Leads created since the watermark (minus a margin for late commits), oldest first."""
        since = ""
        if self._watermark is not None:
            floor = (self._watermark - WATERMARK_OVERLAP).astimezone(UTC)
            since = f" WHERE CreatedDate >= {floor.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        leads = self.salesforce.query(
            f"SELECT {', '.join(LEAD_FIELDS)} FROM Lead{since} ORDER BY CreatedDate"
        )
        newest = parse_timestamp(leads[-1].get("CreatedDate")) if leads else None  # ordered by CreatedDate
        if newest is not None and (self._watermark is None or newest > self._watermark):
            self._watermark = newest
        return leads

    def _apply(self, person: _Person, action: PlannedAction, at: datetime) -> dict[str, Any]:
        sf = self.salesforce
        kind = action.kind
        if kind == "assign":
            rep = person.reps["inside_sales"]
            sf.update("Lead", person.lead_id, {"OwnerId": self.user_id(rep)})
            return {"owner": rep.name}
        if kind == "contact":
            sf.update("Lead", person.lead_id, {"Status": WORKING_STATUS})
            return {"status": WORKING_STATUS}
        if kind == "disqualify":
            sf.update("Lead", person.lead_id, {"Status": DISQUALIFIED_STATUS})
            return {"status": DISQUALIFIED_STATUS}
        if kind == "recycle":
            contact_id = self._resolve_contact(person.closedloop_id, person.email)
            if contact_id is None:
                raise LookupError(f"no HubSpot contact for lead {person.lead_id}")
            self.hubspot.update_contact(contact_id, {"hs_lead_status": RECYCLE_LEAD_STATUS})
            return {"hs_lead_status": RECYCLE_LEAD_STATUS, "hubspot_id": contact_id}
        if kind == "fill_sheet":
            values = {
                k: v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v
                for k, v in action.details["values"].items()
            }
            sf.update("Lead", person.lead_id, values)
            return {"sheet_blank": list(action.details["blank"])}
        if kind == "convert":
            return self._convert(person, action)
        if kind in ("kickoff", "activate", "churn", "expand", "expand_win", "nps"):
            return self._customer_success(person, action, at)
        return self._work_opportunity(person, action, at)

    def _convert(self, person: _Person, action: PlannedAction) -> dict[str, Any]:
        sf = self.salesforce
        sf.convert_lead(person.lead_id, CONVERTED_STATUS, f"{person.company} - New Business", True)
        lead = sf.get("Lead", person.lead_id) or {}
        opp_id = lead.get("ConvertedOpportunityId")
        if not opp_id:
            raise LookupError(f"conversion of lead {person.lead_id} created no opportunity")
        person.opportunity_id = str(opp_id)
        person.account_id = lead.get("ConvertedAccountId")
        person.contact_id = lead.get("ConvertedContactId")
        close = _iso(action.details["expected_close"])
        rep = person.reps["field_sales"]
        sf.update(
            "Opportunity",
            person.opportunity_id,
            {"StageName": "Qualification", "CloseDate": close, "OwnerId": self.user_id(rep)},
        )
        return {
            "stage_name": "Qualification",
            "opportunity_id": person.opportunity_id,
            "contact_id": person.contact_id,
            "account_id": person.account_id,
            "fs_owner": rep.name,
        }

    def _work_opportunity(self, person: _Person, action: PlannedAction, at: datetime) -> dict[str, Any]:
        sf = self.salesforce
        kind = action.kind
        opp_id = person.opportunity_id
        if opp_id is None:
            raise LookupError(f"lead {person.lead_id} has no opportunity")
        if kind == "propose":
            fields: dict[str, Any] = {"StageName": "Proposal/Price Quote", "Amount": action.details["amount"]}
        elif kind == "negotiate":
            fields = {"StageName": "Negotiation/Review", "Amount": action.details["amount"]}
        elif kind == "win":
            fields = {
                "StageName": "Closed Won",
                "Amount": action.details["amount"],
                "CloseDate": _iso(at.date()),
            }
        else:
            fields = {
                "StageName": "Closed Lost",
                "Loss_Reason__c": action.details["reason"],
                "CloseDate": _iso(at.date()),
            }
        sf.update("Opportunity", opp_id, fields)
        details = {
            "stage_name": fields["StageName"],
            "opportunity_id": opp_id,
            "amount": fields.get("Amount", action.details.get("amount")),
            "close_date": fields.get("CloseDate"),
            "loss_reason": fields.get("Loss_Reason__c"),
        }
        if kind == "win" and person.reps:  # customer success takes the account over
            rep = person.reps["customer_success"]
            sf.update("Account", self._account(person), {"OwnerId": self.user_id(rep)})
            details["cs_owner"] = rep.name
        return details

    def _customer_success(self, person: _Person, action: PlannedAction, at: datetime) -> dict[str, Any]:
        sf = self.salesforce
        kind = action.kind
        account_id = self._account(person)
        rep = person.reps["customer_success"]
        if kind == "kickoff":
            event_id = sf.insert(
                "Event",
                {
                    "Type": "Kickoff",
                    "Subject": "Kickoff",
                    "WhoId": person.contact_id,
                    "WhatId": account_id,
                    "StartDateTime": at.astimezone(UTC).isoformat(),
                    "DurationInMinutes": 60,
                    "OwnerId": self.user_id(rep),
                },
            )
            return {"event_id": event_id, "account_id": account_id}
        if kind in ("activate", "churn"):
            status = "Active" if kind == "activate" else "Churned"
            sf.update("Account", account_id, {"Customer_Status__c": status})
            return {"customer_status": status, "account_id": account_id}
        if kind == "nps":
            if person.contact_id is None:
                raise LookupError(f"lead {person.lead_id} has no contact")
            sf.update("Contact", person.contact_id, {"NPS__c": action.details["score"]})
            return {"nps": action.details["score"]}
        if kind == "expand":
            opp_id = sf.insert(
                "Opportunity",
                {
                    "Name": f"{person.company} - Upgrade",
                    "AccountId": account_id,
                    "Type": cs.EXPANSION_TYPE,
                    "StageName": "Qualification",
                    "CloseDate": _iso(action.details["expected_close"]),
                    "OwnerId": self.user_id(person.reps["field_sales"]),
                },
            )
            sf.insert(
                "OpportunityContactRole",
                {
                    "OpportunityId": opp_id,
                    "ContactId": person.contact_id,
                    "Role": "Decision Maker",
                    "IsPrimary": True,
                },
            )
            person.expansion_id = opp_id
            return {"expansion_opportunity_id": opp_id}
        if person.expansion_id is None:
            raise LookupError(f"lead {person.lead_id} has no upgrade opportunity")
        close = _iso(at.date())
        amount = action.details["amount"]
        sf.update(
            "Opportunity",
            person.expansion_id,
            {"StageName": "Closed Won", "Amount": amount, "CloseDate": close},
        )
        return {
            "expansion_opportunity_id": person.expansion_id,
            "expansion_amount": amount,
            "expansion_close_date": close,
        }

    @staticmethod
    def _account(person: _Person) -> str:
        if person.account_id is None:
            raise LookupError(f"lead {person.lead_id} has no account")
        return person.account_id


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _iso(value: date) -> str:
    return value.isoformat()
