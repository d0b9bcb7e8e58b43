"""Preview: what one record alone implies (stage) and what would be written, without writing."""

from __future__ import annotations

from typing import Any, Literal

from sync.mapping.model import Mapping
from sync.mapping.project import closed_loop_values, project

_PERSON = ("Lead", "Contact")
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


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
