"""Tasks of the HubSpot sandbox (https://developers.hubspot.com/docs/api/crm/tasks).

``POST /crm/v3/objects/tasks`` with ``properties`` and an optional ``associations`` list; the due
date ``hs_timestamp`` is required (milliseconds or UTC ISO 8601). ``hs_task_status`` is
``NOT_STARTED`` or ``COMPLETED``, ``hs_task_priority`` ``LOW``/``MEDIUM``/``HIGH``,
``hs_task_type`` ``EMAIL``/``CALL``/``TODO``. A task is tied to a contact by the HUBSPOT_DEFINED
association type 204 (contact to task: 203), as listed under "Association type ID values" of the
associations v4 guide.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sandboxes.hubspot_errors import property_validation_error
from sandboxes.hubspot_props import PropertyDef, _finish, _options
from sandboxes.hubspot_store import ObjectStore, Record


def default_task_groups() -> list[dict[str, Any]]:
    return [{"name": "task", "label": "Task information", "displayOrder": 0, "archived": False}]


def default_task_properties(created: str) -> dict[str, PropertyDef]:
    """The task properties the tasks guide documents, plus the record's own dates and ID."""
    g = "task"
    specs = [
        PropertyDef("hs_timestamp", "Due date", "datetime", "date", g),
        PropertyDef("hs_task_subject", "Task Title", "string", "text", g),
        PropertyDef("hs_task_body", "Notes", "string", "textarea", g),
        PropertyDef(
            "hs_task_status",
            "Task Status",
            "enumeration",
            "select",
            g,
            options=_options([("NOT_STARTED", "Not started"), ("COMPLETED", "Completed")]),
        ),
        PropertyDef(
            "hs_task_priority",
            "Priority",
            "enumeration",
            "select",
            g,
            options=_options([("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High")]),
        ),
        PropertyDef(
            "hs_task_type",
            "Task Type",
            "enumeration",
            "select",
            g,
            options=_options([("EMAIL", "Email"), ("CALL", "Call"), ("TODO", "To-do")]),
        ),
        PropertyDef("hubspot_owner_id", "Assigned to", "enumeration", "select", g),
        PropertyDef("hs_createdate", "Create date", "datetime", "date", g, read_only_value=True),
        PropertyDef("hs_lastmodifieddate", "Last modified date", "datetime", "date", g, read_only_value=True),
        PropertyDef("hs_object_id", "Record ID", "number", "number", g, read_only_value=True),
    ]
    return _finish(specs, created)


class TaskStore(ObjectStore):
    """Tasks: a due date, a subject, notes, status, priority and type; created by the API, never searched here."""

    object_type = "tasks"
    singular = "task"
    type_id = "0-27"
    default_render = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")
    always = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")
    modified_property = "hs_lastmodifieddate"
    first_id = 9_000_001  # its own id range, so a task id never names a contact or a deal
    query_properties = ("hs_task_subject", "hs_task_body", "hs_object_id")

    def _prepare_create(self, values: dict[str, str | None]) -> dict[str, str | None]:
        if not values.get("hs_timestamp"):
            raise property_validation_error(
                [("hs_timestamp", "REQUIRED_PROPERTY", "hs_timestamp is required")], self.portal_id
            )
        return values

    def _derive(
        self, record: Record, values: dict[str, str | None], now: datetime, guard: bool
    ) -> dict[str, str | None]:
        # Activities name their creation time hs_createdate (the stores' shared create sets createdate).
        values = super()._derive(record, values, now, guard)
        if "createdate" in values:
            values["hs_createdate"] = values.pop("createdate")
        return values
