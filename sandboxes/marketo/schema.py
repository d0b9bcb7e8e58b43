"""Lead fields and activity types of the Marketo sandbox.

Field metadata follows "Describe Leads" / "Describe Leads2" and the "Standard Fields" list
(https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/leads,
.../rest/assets/list-of-standard-fields). Activity type IDs are the ones a default Marketo
instance serves from ``/rest/v1/activities/types.json`` ("Activities",
.../rest/lead-database/activities); clients must read them from there, never assume them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Data types Marketo reports in describe: string, text, email, phone, integer, float, currency,
# boolean, date, datetime, score, url, reference.
WRITE_TYPES = {
    "string",
    "text",
    "email",
    "phone",
    "integer",
    "float",
    "currency",
    "boolean",
    "date",
    "datetime",
    "score",
    "url",
    "reference",
    "percent",
}


@dataclass
class FieldDef:
    """One lead field: REST name, label, type, and whether the REST API may write it."""

    id: int
    name: str
    display_name: str
    data_type: str
    length: int | None = None
    read_only: bool = False
    searchable: bool = False
    crm_managed: bool = False
    is_custom: bool = False
    description: str | None = None
    is_hidden: bool = False

    def schema(self) -> dict[str, Any]:
        """Entry of ``/rest/v1/leads/schema/fields.json`` (Get Lead Fields)."""
        out: dict[str, Any] = {
            "displayName": self.display_name,
            "name": self.name,
            "description": self.description,
            "dataType": self.data_type,
        }
        if self.length is not None:
            out["length"] = self.length
        out.update(
            {
                "isHidden": self.is_hidden,
                "isHtmlEncodingInEmail": self.data_type in ("string", "text", "email", "phone", "url"),
                "isSensitive": True,
                "isCustom": self.is_custom,
            }
        )
        return out

    def describe(self) -> dict[str, Any]:
        """Entry of ``/rest/v1/leads/describe.json``."""
        out: dict[str, Any] = {"id": self.id, "displayName": self.display_name, "dataType": self.data_type}
        if self.length is not None:
            out["length"] = self.length
        soap_name = self.name[:1].upper() + self.name[1:]
        out["rest"] = {"name": self.name, "readOnly": self.read_only}
        out["soap"] = {"name": soap_name, "readOnly": self.read_only}
        return out

    def describe2(self) -> dict[str, Any]:
        """Entry of ``fields`` in ``/rest/v1/leads/describe2.json``."""
        out: dict[str, Any] = {
            "name": self.name,
            "displayName": self.display_name,
            "dataType": self.data_type,
            "updateable": not self.read_only,
            "crmManaged": self.crm_managed,
        }
        if self.length is not None:
            out["length"] = self.length
        return out


def standard_fields() -> list[FieldDef]:
    """The standard lead fields the sandbox knows (a subset of a real instance's ~100)."""
    return [
        FieldDef(1, "id", "Id", "integer", read_only=True, searchable=True),
        FieldDef(2, "company", "Company Name", "string", 255),
        FieldDef(3, "email", "Email Address", "email", 255, searchable=True),
        FieldDef(4, "firstName", "First Name", "string", 255),
        FieldDef(5, "lastName", "Last Name", "string", 255),
        FieldDef(6, "title", "Job Title", "string", 255),
        FieldDef(7, "phone", "Phone Number", "phone", 255),
        FieldDef(8, "leadSource", "Person Source", "string", 255),
        FieldDef(9, "leadStatus", "Lead Status", "string", 255),
        FieldDef(10, "leadScore", "Lead Score", "score"),
        FieldDef(11, "country", "Country", "string", 255),
        FieldDef(12, "acquisitionProgramId", "Acquisition Program Id", "integer"),
        FieldDef(13, "createdAt", "Created At", "datetime", read_only=True),
        FieldDef(14, "updatedAt", "Updated At", "datetime", read_only=True),
        FieldDef(15, "sfdcLeadId", "SFDC Lead ID", "string", 18, read_only=True, searchable=True),
        FieldDef(16, "sfdcContactId", "SFDC Contact ID", "string", 18, read_only=True, searchable=True),
        FieldDef(17, "unsubscribed", "Unsubscribed", "boolean"),
    ]


@dataclass
class ActivityType:
    """One entry of ``/rest/v1/activities/types.json``."""

    id: int
    name: str
    description: str
    primary_attribute: tuple[str, str] | None
    attributes: list[tuple[str, str]] = field(default_factory=list)

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "description": self.description}
        if self.primary_attribute is not None:
            out["primaryAttribute"] = {
                "name": self.primary_attribute[0],
                "dataType": self.primary_attribute[1],
            }
        out["attributes"] = [{"name": n, "dataType": t} for n, t in self.attributes]
        return out


NEW_LEAD = "New Lead"
CHANGE_DATA_VALUE = "Change Data Value"
CHANGE_SCORE = "Change Score"
MERGE_LEADS = "Merge Leads"
DELETE_LEAD = "Delete Lead"
FILL_OUT_FORM = "Fill Out Form"
CHANGE_PROGRAM_STATUS = "Change Status in Progression"

ACTIVITY_TYPES: list[ActivityType] = [
    ActivityType(
        1,
        "Visit Webpage",
        "User visits a web page",
        ("Webpage ID", "integer"),
        [("Client IP Address", "string"), ("Webpage URL", "string")],
    ),
    ActivityType(
        2,
        FILL_OUT_FORM,
        "User fills out and submits a form on web page",
        ("Webform ID", "integer"),
        [("Client IP Address", "string"), ("Form Fields", "text"), ("Webpage ID", "integer")],
    ),
    ActivityType(
        12,
        NEW_LEAD,
        "New person/record is added to the lead database",
        None,
        [
            ("Created Date", "date"),
            ("Form Name", "string"),
            ("Lead Source", "string"),
            ("Source Type", "string"),
        ],
    ),
    ActivityType(
        13,
        CHANGE_DATA_VALUE,
        "Changed attribute value for a person",
        ("Lead Attribute", "integer"),
        [
            ("Api Method Name", "string"),
            ("Modifying User", "string"),
            ("New Value", "string"),
            ("Old Value", "string"),
            ("Reason", "string"),
            ("Request Id", "string"),
            ("Source", "string"),
        ],
    ),
    ActivityType(
        22,
        CHANGE_SCORE,
        "Changed score for a person",
        ("Scoring Field", "integer"),
        [
            ("Change Value", "string"),
            ("New Value", "integer"),
            ("Old Value", "integer"),
            ("Reason", "string"),
        ],
    ),
    ActivityType(
        32,
        MERGE_LEADS,
        "Merge two or more people into one",
        ("Lead ID", "integer"),
        [
            ("Merge IDs", "integer"),
            ("Merge Source", "string"),
            ("Merged in Sales", "boolean"),
            ("Master Updated", "boolean"),
        ],
    ),
    ActivityType(
        37,
        DELETE_LEAD,
        "Delete person from the lead database",
        ("Lead ID", "integer"),
        [("Remove from CRM", "boolean")],
    ),
    ActivityType(
        104,
        CHANGE_PROGRAM_STATUS,
        "Change a person's program status",
        ("Program ID", "integer"),
        [
            ("New Status ID", "integer"),
            ("Old Status ID", "integer"),
            ("Reason", "string"),
            ("Success", "boolean"),
        ],
    ),
]
ACTIVITY_TYPE_IDS = {t.name: t.id for t in ACTIVITY_TYPES}


def iso_z(value: datetime) -> str:
    """Marketo's activity/lead timestamp format: second precision, UTC, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FieldValueError(ValueError):
    """A value the field cannot take; rendered as record reason 1001."""


def coerce(definition: FieldDef, value: Any) -> Any:
    """Normalise a written value to the field's type (None clears it)."""
    if value is None or value == "":
        return None
    kind = definition.data_type
    try:
        if kind in ("integer", "score", "reference"):
            if isinstance(value, bool):
                raise FieldValueError
            return int(str(value))
        if kind in ("float", "currency", "percent"):
            return float(str(value))
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("true", "1"):
                return True
            if text in ("false", "0"):
                return False
            raise FieldValueError
        if kind == "email":
            text = str(value).strip()
            if "@" not in text or text.startswith("@") or text.endswith("@"):
                raise FieldValueError
            return text
        if kind == "date":
            return datetime.fromisoformat(str(value)).date().isoformat()
        if kind == "datetime":
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return iso_z(parsed)
    except (ValueError, TypeError) as exc:
        raise FieldValueError(str(value)) from exc
    return str(value)
