"""What a person's records say that the funnel keeps: attributes, and the transition row built from them.

One implementation for the live engine and the backfill; vendor conventions come from the
connectors' profiles, detour reasons from the mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sync.connectors.contract import Profile
from sync.fieldsync import canonical
from sync.identity import normalise_email
from sync.mapping import Mapping, SfaRef
from sync.stages import PersonView
from sync.store.models import Person, Transition
from sync.timeutil import utcnow


def to_decimal(value: Any) -> Decimal | None:
    """A number from any source representation ("55", 55.0, "1e3"), or None when blank or not a number."""
    text = canonical(value)
    if not text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


@dataclass(frozen=True)
class Profiles:
    """The two connected systems' conventions."""

    ma: Profile
    sfa: Profile

    def score(self, view: PersonView) -> Decimal | None:
        field = self.ma.score_field
        return to_decimal((view.ma or {}).get(field)) if field else None

    def sfa_person_record(self, view: PersonView) -> dict[str, Any]:
        """The most evident sales-side person record (e.g. a converted contact before its lead)."""
        for obj in reversed(self.sfa.person_objects):
            record = view.record(obj)
            if record is not None:
                return dict(record)
        return {}


def _fits(value: Any, column: Any) -> str:
    """``value`` as text cut to the column's length: a long campaign name must not stop a sync."""
    return str(value)[: column.type.length]


def sfa_value(view: PersonView, ref: SfaRef) -> Any:
    """``Object.Field`` in the person's records (:meth:`PersonView.record`: a related object's first one)."""
    record = view.record(ref.object)
    return record.get(ref.field) if record is not None else None


def refresh_team_facts(person: Person, view: PersonView, mapping: Mapping) -> None:
    """The owner per team (``{team: owner id}``) and the NPS score, as the sales side now says.

    A team whose owner field is blank keeps its known owner; a score outside 0-10 is ignored.
    """
    owners = dict(person.owners or {})
    for team in mapping.teams():
        value = sfa_value(view, team.owner) if team.owner is not None else None
        if value not in (None, ""):
            owners[team.id] = str(value)[: Person.owner.type.length]
    if owners != (person.owners or {}):
        person.owners = owners
    if mapping.nps is not None:
        score = to_decimal(sfa_value(view, mapping.nps))
        if score is not None and 0 <= score <= 10:
            person.nps = score


def refresh_attributes(
    person: Person, view: PersonView, profiles: Profiles, mapping: Mapping | None = None
) -> None:
    """Campaign, source, owner and email as the systems now say (a blank never erases a known value);
    with ``mapping``, the owner per team and the NPS score too."""
    if mapping is not None:
        refresh_team_facts(person, view, mapping)
    ma = view.ma or {}
    ma_profile, sfa_profile = profiles.ma, profiles.sfa
    if ma_profile.campaign_field and ma.get(ma_profile.campaign_field):
        person.campaign = _fits(ma[ma_profile.campaign_field], Person.campaign)
    if ma_profile.source_field and ma.get(ma_profile.source_field):
        person.source = _fits(ma[ma_profile.source_field], Person.source)
    sfa_person = profiles.sfa_person_record(view)
    if sfa_profile.owner_field:
        outcome = view.record(sfa_profile.outcome_object) if sfa_profile.outcome_object else None
        owner = (outcome or sfa_person).get(sfa_profile.owner_field)
        if owner:
            person.owner = _fits(owner, Person.owner)
    email = normalise_email(ma.get(ma_profile.email_field) or sfa_person.get(sfa_profile.email_field))
    if email:
        person.email = email


def detour_reason(mapping: Mapping, profiles: Profiles, stage_id: str, view: PersonView) -> str | None:
    """Why a detour happened: the mapping's ``reason`` field, else the sales-side person's status."""
    stage = mapping.stage(stage_id)
    if not stage.detour:
        return None
    if stage.reason is not None:
        record = view.record(stage.reason.object)
        value = record.get(stage.reason.field) if record is not None else None
        return _fits(value, Transition.reason) if value not in (None, "") else None
    obj = stage.sfa.object if stage.sfa is not None else None
    status = profiles.sfa.status_field
    if obj in profiles.sfa.person_objects and status:
        record = view.record(obj)
        value = record.get(status) if record is not None else None
        return _fits(value, Transition.reason) if value not in (None, "") else None
    return None


def transition_row(
    mapping: Mapping,
    profiles: Profiles,
    person: Person,
    stage_id: str,
    from_stage: str | None,
    when: datetime,
    view: PersonView,
    source: tuple[str, str, str | None],
    cause: str,
) -> Transition:
    """The append-only row for entering ``stage_id``; ``source`` is (role, connector, record ID)."""
    stage = mapping.stage(stage_id)
    amount = None
    outcome = profiles.sfa.outcome_object
    if stage.sfa is not None and stage.sfa.object == outcome and profiles.sfa.amount_field:
        amount = to_decimal((view.record(outcome) or {}).get(profiles.sfa.amount_field))
    role, connector, record_id = source
    return Transition(
        common_id=person.common_id,
        from_stage=from_stage,
        to_stage=stage_id,
        occurred_at=when,
        recorded_at=utcnow(),
        source_role=role,
        source_connector=connector,
        source_record=record_id,
        cause=cause,
        campaign=person.campaign,
        source=person.source,
        owner=person.owner,
        reason=detour_reason(mapping, profiles, stage_id, view),
        amount=amount,
        score=profiles.score(view),
    )
