"""Assemble a ``FunnelReport`` from the store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sync.funnel.analytics import DEFAULT_CONVERSIONS, DEFAULT_SCORE_BANDS, DEFAULT_VELOCITY, Spec, measure
from sync.funnel.customer_success import CsStages, measure_customer_success
from sync.funnel.figures import FunnelReport
from sync.funnel.filters import EVERYONE, PeopleFilter
from sync.funnel.sla import SlaRule
from sync.funnel.sla_stats import breakdown_slas, summarise_slas
from sync.funnel.stages import DETOURS, SUCCESS_PATH
from sync.owner_names import owner_names
from sync.store.db import Store
from sync.timeutil import as_utc, utcnow

ConversionSpec = tuple[str, str] | tuple[str, str, float | None]


def build_report(
    store: Store,
    since: datetime,
    until: datetime,
    by: str | None = None,
    success_path: Sequence[str] = SUCCESS_PATH,
    detours: Sequence[str] = DETOURS,
    slas: Sequence[SlaRule] = (),
    conversions: Sequence[ConversionSpec] = DEFAULT_CONVERSIONS,
    velocity: Sequence[tuple[str, str]] = DEFAULT_VELOCITY,
    score_bands: Sequence[float] = DEFAULT_SCORE_BANDS,
    now: datetime | None = None,
    who: PeopleFilter = EVERYONE,
    cs: CsStages | None = None,
    nps_mapped: bool = False,
) -> FunnelReport:
    """Measure the funnel over ``[since, until)``; ``by`` groups by campaign/source/owner/an attribute key.

    ``conversions`` are ``(from, to)`` or ``(from, to, within_days)``; ``who`` narrows to some people;
    ``cs`` adds the customer-success figures (``nps_mapped``: the mapping reads an NPS score).
    """
    now = as_utc(now or utcnow())
    spec = Spec(
        since=as_utc(since),
        until=as_utc(until),
        success_path=tuple(success_path),
        detours=tuple(detours),
        conversions=tuple(_conversion(c) for c in conversions),
        velocity=tuple(velocity),
        score_bands=tuple(sorted(score_bands)),
    )
    with store.session() as session:
        measured = measure(session, spec, by, who)
        sla = summarise_slas(session, slas, spec.since, spec.until, now, who)
        sla_groups = breakdown_slas(session, slas, spec.since, spec.until, who)
        success = (
            measure_customer_success(session, cs, spec.since, spec.until, sla, nps_mapped, who)
            if cs is not None
            else None
        )
        owners = {g.value for g in sla_groups if g.dimension == "owner"}
        if by == "owner":
            owners |= {g.value for g in measured.groups}
        names = owner_names(session, owners) if owners else {}
    return FunnelReport(
        since=spec.since,
        until=spec.until,
        generated_at=now,
        success_path=spec.success_path,
        detours=spec.detours,
        stages=measured.stages,
        conversion=measured.conversion,
        velocity=measured.velocity,
        by_campaign=measured.by_campaign,
        loss_reasons=measured.loss_reasons,
        disqualification_reasons=measured.disqualification_reasons,
        score_validation=measured.score_validation,
        sla=sla,
        sla_groups=sla_groups,
        group_by=by,
        groups=measured.groups,
        customer_success=success,
        owner_names=names,
    )


def _conversion(spec: ConversionSpec) -> tuple[str, str, float | None]:
    """``(from, to)`` or ``(from, to, within_days)`` as a triple."""
    if len(spec) == 2:
        return spec[0], spec[1], None
    return spec[0], spec[1], spec[2]
