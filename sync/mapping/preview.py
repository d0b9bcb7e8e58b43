"""Preview: what one record alone implies (stage) and what would be written, without writing."""

from __future__ import annotations

from typing import Any, Literal

from sync.mapping.model import Mapping
from sync.mapping.project import closed_loop_values, project

_PERSON = ("Lead", "Contact")
_HUBSPOT_CONTACT = "contact"  # a mapping whose sales side is HubSpot names this person object
MA_SOURCES = ("hubspot", "marketo")  # a marketing record: a HubSpot contact or a Marketo lead
SOURCES = (*MA_SOURCES, "salesforce")
_ATTR = {"Lead": "lead", "Contact": "contact", "Opportunity": "opportunity"}


def _sobject(record: dict[str, Any]) -> str:
    attrs = record.get("attributes")
    obj = attrs.get("type") if isinstance(attrs, dict) else None
    obj = obj or record.get("sobject")
    if obj not in _ATTR:
        raise ValueError(
            'a Salesforce record needs "attributes": {"type": "Lead"} (or a top-level '
            f'"sobject"): Lead, Contact or Opportunity, got {obj!r}'
        )
    return str(obj)


def preview(
    mapping: Mapping,
    source: Literal["hubspot", "marketo", "salesforce"],
    record: dict[str, Any],
    ma: str = "hubspot",
) -> dict[str, Any]:
    """``{"stage", "writes", "target", "object"}`` for a marketing record or a Salesforce record.

    A marketing record is a HubSpot contact (its ``properties``) or a Marketo lead (its fields);
    ``ma`` names the marketing tool a Salesforce record's closed-loop values would go to.
    """
    from sync.stages import PersonView, compute_stage

    if source == "hubspot" and _HUBSPOT_CONTACT in mapping.person_objects():
        props = record.get("properties")
        return _one_portal(mapping, props if isinstance(props, dict) else record)
    if source in MA_SOURCES:
        props = record.get("properties") if source == "hubspot" else None
        fields: dict[str, Any] = props if isinstance(props, dict) else record
        view = PersonView(ma=fields)
        create_as: str = mapping.handover.create_as
        writes = project(mapping, "ma", fields, create_as)
        if not _blank(fields.get(mapping.identity.ma_property)):
            writes[mapping.identity.sfa_field] = fields[mapping.identity.ma_property]
        return {
            "stage": compute_stage(mapping, view),
            "writes": writes,
            "target": "salesforce",
            "object": create_as,
        }
    if source != "salesforce":
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    obj = _sobject(record)
    fields = {k: v for k, v in record.items() if k not in ("attributes", "sobject")}
    view = PersonView(sfa={obj: fields})
    stage = compute_stage(mapping, view)
    writes = project(mapping, "sfa", fields, obj) if obj in _PERSON else {}
    if obj in _PERSON and not _blank(fields.get(mapping.identity.sfa_field)):
        writes[mapping.identity.ma_property] = fields[mapping.identity.sfa_field]
    writes.update(closed_loop_values(mapping, view, stage))
    return {"stage": stage, "writes": writes, "target": ma, "object": obj}


def _one_portal(mapping: Mapping, fields: dict[str, Any]) -> dict[str, Any]:
    """One HubSpot portal in both roles: a deal (it has ``dealstage``) is the outcome; a contact is the
    marketing record and, once its lead status is set, the sales record too. Deals must carry the
    derived ``closedloop_*`` fields (normally computed from the pipeline's stage metadata)."""
    from sync.mapping.model import person_objects
    from sync.stages import PersonView, compute_stage

    if "dealstage" in fields:
        outcome = mapping.sfa_objects()[-1]
        view = PersonView(sfa={outcome: fields})
        stage = compute_stage(mapping, view)
        return {
            "stage": stage,
            "writes": closed_loop_values(mapping, view, stage),
            "target": "hubspot",
            "object": outcome,
        }
    handed = not _blank(fields.get("hs_lead_status"))
    contact = person_objects(mapping.sfa_objects())[0]
    view = PersonView(ma=fields, sfa={contact: fields} if handed else {})
    stage = compute_stage(mapping, view)
    path = mapping.success_path()
    past = (
        stage in path and mapping.handover.at in path and path.index(stage) >= path.index(mapping.handover.at)
    )
    if handed:
        writes = closed_loop_values(mapping, view, stage)
    elif past:  # the handover writes onto the same contact; nothing is created
        writes = project(mapping, "ma", {fm.ma: None for fm in mapping.fields} | fields, contact)
    else:
        writes = {}
    return {"stage": stage, "writes": writes, "target": "hubspot", "object": contact}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
