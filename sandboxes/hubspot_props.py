"""Property definitions for the HubSpot sandbox (contacts and deals): the stock defaults, and value checks.

Shapes follow the CRM v3 properties API
(https://developers.hubspot.com/docs/api/crm/properties): every property has a name, label,
type, fieldType, groupName, options and modificationMetadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sync.timeutil import parse_timestamp

LIFECYCLE_STAGES: tuple[str, ...] = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
_STAGE_LABELS = {
    "subscriber": "Subscriber",
    "lead": "Lead",
    "marketingqualifiedlead": "Marketing Qualified Lead",
    "salesqualifiedlead": "Sales Qualified Lead",
    "opportunity": "Opportunity",
    "customer": "Customer",
    "evangelist": "Evangelist",
    "other": "Other",
}

# type -> allowed fieldTypes
# (https://developers.hubspot.com/docs/api/crm/properties, "Property type and fieldType values")
FIELD_TYPES: dict[str, set[str]] = {
    "string": {"text", "textarea", "phonenumber", "html", "file"},
    "number": {"number"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox"},
    "date": {"date"},
    "datetime": {"date"},
    "bool": {"booleancheckbox"},
}

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def iso_ms(value: datetime) -> str:
    """ISO-8601 with milliseconds and ``Z``, the way HubSpot renders timestamps."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@dataclass
class PropertyDef:
    """One contact property definition."""

    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    description: str = ""
    options: list[dict[str, Any]] = field(default_factory=list)
    has_unique_value: bool = False
    hubspot_defined: bool = False
    read_only_value: bool = False
    read_only_definition: bool = False
    calculated: bool = False
    hidden: bool = False
    form_field: bool = False
    display_order: int = -1
    created_at: str = ""
    updated_at: str = ""
    archived: bool = False

    def to_json(self) -> dict[str, Any]:
        """The property as the properties API returns it."""
        body: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": self.options,
            "displayOrder": self.display_order,
            "calculated": self.calculated,
            "externalOptions": False,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "formField": self.form_field,
            "archived": self.archived,
            "dataSensitivity": "non_sensitive",
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.read_only_definition,
                "readOnlyValue": self.read_only_value,
            },
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if self.hubspot_defined:
            body["hubspotDefined"] = True
        return body


def _options(values: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"label": label, "value": value, "description": "", "displayOrder": i, "hidden": False}
        for i, (value, label) in enumerate(values)
    ]


def default_groups() -> list[dict[str, Any]]:
    """Stock contact property groups."""
    names = [
        ("contactinformation", "Contact information"),
        ("conversioninformation", "Conversion information"),
        ("analyticsinformation", "Web analytics history"),
        ("sales_properties", "Sales properties"),
        ("emailinformation", "Email information"),
        ("socialmediainformation", "Social media information"),
    ]
    return [
        {"name": n, "label": lbl, "displayOrder": i, "archived": False} for i, (n, lbl) in enumerate(names)
    ]


def default_properties(created: str) -> dict[str, PropertyDef]:
    """The stock contact properties every portal has (a representative subset)."""
    ci = "contactinformation"
    specs: list[PropertyDef] = [
        PropertyDef("email", "Email", "string", "text", ci),
        PropertyDef("firstname", "First Name", "string", "text", ci),
        PropertyDef("lastname", "Last Name", "string", "text", ci),
        PropertyDef("company", "Company Name", "string", "text", ci),
        PropertyDef("phone", "Phone Number", "string", "phonenumber", ci),
        PropertyDef("mobilephone", "Mobile Phone Number", "string", "phonenumber", ci),
        PropertyDef("jobtitle", "Job Title", "string", "text", ci),
        PropertyDef("website", "Website URL", "string", "text", ci),
        PropertyDef("city", "City", "string", "text", ci),
        PropertyDef("state", "State/Region", "string", "text", ci),
        PropertyDef("zip", "Postal Code", "string", "text", ci),
        PropertyDef("country", "Country/Region", "string", "text", ci),
        PropertyDef("industry", "Industry", "string", "text", ci),
        PropertyDef("hubspot_owner_id", "Contact owner", "enumeration", "select", "sales_properties"),
        PropertyDef(
            "lifecyclestage",
            "Lifecycle Stage",
            "enumeration",
            "radio",
            ci,
            options=_options([(s, _STAGE_LABELS[s]) for s in LIFECYCLE_STAGES]),
        ),
        PropertyDef(
            "hs_lead_status",
            "Lead Status",
            "enumeration",
            "radio",
            "sales_properties",
            options=_options(
                [
                    ("NEW", "New"),
                    ("OPEN", "Open"),
                    ("IN_PROGRESS", "In Progress"),
                    ("OPEN_DEAL", "Open Deal"),
                    ("UNQUALIFIED", "Unqualified"),
                    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
                    ("CONNECTED", "Connected"),
                    ("BAD_TIMING", "Bad Timing"),
                ]
            ),
        ),
        # A score property HubSpot computes from the portal's scoring rules: the properties API
        # reports fieldType calculation_score and readOnlyValue, and writes are rejected
        # (https://knowledge.hubspot.com/properties/hubspots-default-contact-properties, "HubSpot Score").
        PropertyDef(
            "hubspotscore",
            "HubSpot Score",
            "number",
            "calculation_score",
            "sales_properties",
            description="The number that shows qualification of contacts to sales readiness. "
            "It can be set in HubSpot's Lead Scoring app.",
            read_only_value=True,
            read_only_definition=True,
            calculated=True,
        ),
        PropertyDef(
            "hs_analytics_source",
            "Original Source",
            "enumeration",
            "select",
            "analyticsinformation",
            read_only_value=True,
            calculated=True,
            options=_options(
                [
                    ("ORGANIC_SEARCH", "Organic Search"),
                    ("PAID_SEARCH", "Paid Search"),
                    ("EMAIL_MARKETING", "Email Marketing"),
                    ("SOCIAL_MEDIA", "Organic Social"),
                    ("REFERRALS", "Referrals"),
                    ("OTHER_CAMPAIGNS", "Other Campaigns"),
                    ("DIRECT_TRAFFIC", "Direct Traffic"),
                    ("OFFLINE", "Offline Sources"),
                    ("PAID_SOCIAL", "Paid Social"),
                    ("AI_REFERRALS", "AI Referrals"),
                ]
            ),
        ),
        PropertyDef(
            "hs_analytics_source_data_1",
            "Original Source Drill-Down 1",
            "string",
            "text",
            "analyticsinformation",
            calculated=True,
        ),
        PropertyDef(
            "hs_analytics_source_data_2",
            "Original Source Drill-Down 2",
            "string",
            "text",
            "analyticsinformation",
            calculated=True,
        ),
        PropertyDef(
            "hs_object_id",
            "Record ID",
            "number",
            "number",
            ci,
            read_only_value=True,
            read_only_definition=True,
        ),
        PropertyDef("createdate", "Create Date", "datetime", "date", ci, read_only_definition=True),
        PropertyDef(
            "lastmodifieddate",
            "Last Modified Date",
            "datetime",
            "date",
            ci,
            read_only_value=True,
            read_only_definition=True,
        ),
        PropertyDef(
            "hs_merged_object_ids",
            "Merged Contact IDs",
            "enumeration",
            "checkbox",
            ci,
            read_only_value=True,
            read_only_definition=True,
        ),
    ]
    for stage in LIFECYCLE_STAGES:
        label = f"{_STAGE_LABELS[stage]} (Lifecycle Stage Pipeline)"
        specs.append(_calculated_date(f"hs_lifecyclestage_{stage}_date", f"Date entered '{label}'", ci))
        specs += stage_date_properties(stage, label, ci)
    # hs_analytics_source stays writable: the scripted marketing side sets it through the API.
    for spec in specs:
        spec.read_only_definition = spec.read_only_definition or spec.name == "email"
        if spec.name == "hs_analytics_source":
            spec.read_only_value = False
    return _finish(specs, created)


def _calculated_date(name: str, label: str, group: str) -> PropertyDef:
    return PropertyDef(
        name,
        label,
        "datetime",
        "date",
        group,
        read_only_value=True,
        read_only_definition=True,
        calculated=True,
    )


def stage_date_properties(stage_id: str, label: str, group: str) -> list[PropertyDef]:
    """The calculated ``hs_v2_date_entered_<stage>`` / ``hs_v2_date_exited_<stage>`` pair of a stage.

    Real portals fill these for lifecycle stages and deal stages
    (https://knowledge.hubspot.com/properties/hubspots-default-contact-properties, "Date entered
    (stage)", "Date exited (stage)").
    """
    return [
        _calculated_date(f"hs_v2_date_entered_{stage_id}", f'Date entered "{label}"', group),
        _calculated_date(f"hs_v2_date_exited_{stage_id}", f'Date exited "{label}"', group),
    ]


def _finish(specs: list[PropertyDef], created: str) -> dict[str, PropertyDef]:
    for i, spec in enumerate(specs):
        spec.hubspot_defined = True
        spec.created_at = spec.updated_at = created
        spec.display_order = i
    return {p.name: p for p in specs}


def default_deal_groups() -> list[dict[str, Any]]:
    """Stock deal property groups."""
    names = [("dealinformation", "Deal information"), ("deal_activity", "Deal activity")]
    return [
        {"name": n, "label": lbl, "displayOrder": i, "archived": False} for i, (n, lbl) in enumerate(names)
    ]


def default_deal_properties(created: str) -> dict[str, PropertyDef]:
    """The stock deal properties (https://knowledge.hubspot.com/properties/hubspots-default-deal-properties).

    ``dealstage`` and ``pipeline`` get their options from the portal's pipelines; the
    ``hs_date_entered_<stage>`` family is added per stage by :mod:`hubspot_pipelines`.
    """
    di = "dealinformation"

    def calculated(name: str, label: str, type_: str, field_type: str) -> PropertyDef:
        return PropertyDef(
            name,
            label,
            type_,
            field_type,
            di,
            read_only_value=True,
            read_only_definition=True,
            calculated=True,
        )

    specs: list[PropertyDef] = [
        PropertyDef("dealname", "Deal Name", "string", "text", di, read_only_definition=True),
        PropertyDef("dealstage", "Deal Stage", "enumeration", "radio", di, read_only_definition=True),
        PropertyDef("pipeline", "Pipeline", "enumeration", "select", di, read_only_definition=True),
        PropertyDef("amount", "Amount", "number", "number", di),
        PropertyDef("closedate", "Close Date", "datetime", "date", di),
        PropertyDef("closed_lost_reason", "Closed Lost Reason", "string", "textarea", di),
        PropertyDef("closed_won_reason", "Closed Won Reason", "string", "textarea", di),
        PropertyDef(
            "dealtype",
            "Deal Type",
            "enumeration",
            "radio",
            di,
            options=_options([("newbusiness", "New Business"), ("existingbusiness", "Existing Business")]),
        ),
        PropertyDef("description", "Deal Description", "string", "textarea", di),
        PropertyDef("hubspot_owner_id", "Deal owner", "enumeration", "select", di),
        PropertyDef("createdate", "Create Date", "datetime", "date", di, read_only_definition=True),
        PropertyDef(
            "hs_object_id",
            "Record ID",
            "number",
            "number",
            di,
            read_only_value=True,
            read_only_definition=True,
        ),
        calculated("hs_lastmodifieddate", "Last Modified Date", "datetime", "date"),
        calculated("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox"),
        calculated("hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox"),
        calculated("hs_is_closed_lost", "Is closed lost", "bool", "booleancheckbox"),
        calculated("hs_deal_stage_probability", "Deal Stage Probability", "number", "number"),
        calculated("hs_closed_amount", "Closed Deal Amount", "number", "number"),
        calculated("num_associated_contacts", "Number of Contacts", "number", "number"),
        calculated("days_to_close", "Days to close", "number", "number"),
    ]
    return _finish(specs, created)


def stage_properties(stage_id: str, label: str, created: str, display_order: int) -> list[PropertyDef]:
    """Calculated date properties HubSpot adds for each deal stage (legacy and ``hs_v2_`` families)."""
    di = "dealinformation"
    specs = [
        _calculated_date(f"hs_date_entered_{stage_id}", f'Date entered "{label}"', di),
        _calculated_date(f"hs_date_exited_{stage_id}", f'Date exited "{label}"', di),
        *stage_date_properties(stage_id, label, di),
    ]
    for spec in specs:
        spec.hubspot_defined = True
        spec.created_at = spec.updated_at = created
        spec.display_order = display_order
    return specs


def validate_name(name: str) -> bool:
    """Internal property names are lowercase, start with a letter, use ``[a-z0-9_]``."""
    return bool(_NAME_RE.match(name))


def normalize_value(prop: PropertyDef, raw: Any) -> tuple[str | None, str | None]:
    """Coerce a written value to HubSpot's stored string form.

    Returns ``(value, error_code)``; value ``None`` means "cleared". Error codes follow the
    ``error`` field of HubSpot's property validation results.
    """
    if raw is None:
        return None, None
    text = raw if isinstance(raw, str) else str(raw).lower() if isinstance(raw, bool) else str(raw)
    if text == "":
        return None, None
    if prop.type == "number":
        try:
            number = float(text)
        except ValueError:
            return None, "INVALID_NUMBER"
        return (str(int(number)) if number.is_integer() and "." not in text else text), None
    if prop.type == "bool":
        if text.lower() not in {"true", "false"}:
            return None, "INVALID_BOOLEAN"
        return text.lower(), None
    if prop.type == "enumeration" and prop.options:
        allowed = {o["value"] for o in prop.options}
        parts = text.split(";") if prop.field_type == "checkbox" else [text]
        if any(p not in allowed for p in parts):
            return None, "INVALID_OPTION"
        return text, None
    if prop.type in {"datetime", "date"}:
        try:
            parsed = parse_timestamp(text)
        except ValueError:
            parsed = None
        if parsed is None:
            return None, "INVALID_DATE"
        if prop.type == "date":
            if parsed.hour or parsed.minute or parsed.second or parsed.microsecond:
                return None, "INVALID_DATE"  # date properties must be midnight UTC
            return parsed.date().isoformat(), None
        return iso_ms(parsed), None
    if prop.name == "email":
        # HubSpot stores email addresses lower-cased and rejects malformed ones.
        email = text.strip().lower()
        return (email, None) if _EMAIL_RE.match(email) else (None, "INVALID_EMAIL")
    return text, None
