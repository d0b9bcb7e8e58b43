"""Provision what Closedloop needs in both systems: HubSpot properties, Salesforce field checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from sync.connectors.hubspot import HubSpotConnector, PropertySpec
from sync.connectors.salesforce import SalesforceConnector
from sync.mapping import Mapping
from sync.sla_hooks import BREACH_PROPERTY

PROPERTY_GROUP = "closedloop"
PROPERTY_GROUP_LABEL = "Closedloop (sales outcomes)"

# Types for the closed-loop properties of the default mapping; others default to text.
KNOWN_TYPES = {
    "closedloop_amount": ("number", "number"),
    "closedloop_close_date": ("date", "date"),
}


@dataclass
class SetupReport:
    """What setup created (or would create) and what it found missing."""

    created_properties: list[str] = field(default_factory=list)
    missing_sfa_fields: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def required_properties(mapping: Mapping) -> list[PropertySpec]:
    """HubSpot contact properties the mapping writes that are Closedloop's own."""
    specs = [PropertySpec(mapping.identity.ma_property, "Closedloop ID", unique=True)]
    names = {entry.ma for entry in mapping.closed_loop} | {BREACH_PROPERTY}
    for name in sorted(names):
        prop_type, field_type = KNOWN_TYPES.get(name, ("string", "text"))
        label = name.replace("closedloop_", "Closedloop ").replace("_", " ").title()
        specs.append(PropertySpec(name, label, type=prop_type, field_type=field_type))
    return specs


def required_sfa_fields(mapping: Mapping) -> dict[str, set[str]]:
    """Salesforce fields the mapping reads or writes, per object."""
    return {obj: mapping.sfa_fields(obj) for obj in ("Lead", "Contact", "Opportunity")}


def run_setup(
    mapping: Mapping, hubspot: HubSpotConnector, salesforce: SalesforceConnector, dry_run: bool = False
) -> SetupReport:
    """Create missing HubSpot properties (in their own group) and check Salesforce fields. Idempotent."""
    report = SetupReport()
    existing = hubspot.existing_properties()
    wanted = [spec for spec in required_properties(mapping) if spec.name not in existing]
    for spec in required_properties(mapping):
        have = existing.get(spec.name)
        if have is not None and spec.unique and not have.get("unique"):
            report.problems.append(f"HubSpot property {spec.name} exists but is not unique-valued")
    if wanted and not dry_run:
        hubspot.ensure_group(PROPERTY_GROUP, PROPERTY_GROUP_LABEL)
        for spec in wanted:
            hubspot.create_property(spec, PROPERTY_GROUP)
    report.created_properties = [spec.name for spec in wanted]
    ext = mapping.identity.sfa_field
    for obj, fields in required_sfa_fields(mapping).items():
        described = salesforce.describe_fields(obj)
        for name in sorted(fields):
            if name not in described:
                report.missing_sfa_fields.append(f"{obj}.{name}")
        if obj in ("Lead", "Contact") and ext in described and not described[ext].get("externalId"):
            report.problems.append(f"Salesforce {obj}.{ext} must be an External ID field")
    return report
