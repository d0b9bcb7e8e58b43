"""HubSpot contact history as snapshots for replay.

HubSpot keeps ``createdate`` and one ``hs_lifecyclestage_<stage>_date`` per stage reached. Before the
contact's last modification a snapshot holds only ``email``, ``createdate`` and the lifecycle stage in
force at *t*; other properties (score, lead status) keep no history through these APIs, so their
current values count from ``lastmodifieddate`` (the latest time they can have changed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.connectors.contract import MA, HistoryEvent
from sync.connectors.hubspot import LIFECYCLE_ORDER
from sync.timeutil import parse_timestamp

CONTACT = "contact"
# HubSpot's default lifecycle stages in pipeline order (ties on one timestamp go to the later one).
LIFECYCLE_STAGES = (*LIFECYCLE_ORDER, "other")
# Real portals fill hs_v2_date_entered_<stage>; older ones hs_lifecyclestage_<stage>_date (read both).
HISTORY_PROPERTIES = (
    ("createdate", "lastmodifieddate", "lifecyclestage")
    + tuple(f"hs_v2_date_entered_{s}" for s in LIFECYCLE_STAGES)
    + tuple(f"hs_lifecyclestage_{s}_date" for s in LIFECYCLE_STAGES)
)


def _entered(props: Record, stage: str) -> tuple[str, Any] | None:
    """(property, value) of when the contact entered ``stage``: the newer property first."""
    for name in (f"hs_v2_date_entered_{stage}", f"hs_lifecyclestage_{stage}_date"):
        if parse_timestamp(props.get(name)) is not None:
            return name, props.get(name)
    return None


Record = Mapping[str, Any]


def hubspot_events(contact_id: str, props: Record) -> list[HistoryEvent]:
    """Snapshots of a HubSpot contact at its creation, each lifecycle stage date, and its last change."""
    created = parse_timestamp(props.get("createdate"))
    entered = {stage: found for stage in LIFECYCLE_STAGES if (found := _entered(props, stage)) is not None}
    dates = sorted(
        (when, index, stage)
        for index, stage in enumerate(LIFECYCLE_STAGES)
        if stage in entered and (when := parse_timestamp(entered[stage][1])) is not None
    )
    times = sorted({t for t in [created, *(d[0] for d in dates)] if t is not None})
    events = []
    for at in times:
        in_force = [stage for when, _i, stage in dates if when <= at]
        snap: dict[str, Any] = {"email": props.get("email"), "createdate": props.get("createdate")}
        if in_force:
            snap["lifecyclestage"] = in_force[-1]
        for when, _i, stage in dates:
            if when <= at:
                name, value = entered[stage]
                snap[name] = value
        events.append(HistoryEvent(at, MA, CONTACT, contact_id, snap))
    last = parse_timestamp(props.get("lastmodifieddate")) or (times[-1] if times else None)
    if last is not None:
        events.append(HistoryEvent(last, MA, CONTACT, contact_id, dict(props)))
    return events
