"""Salesforce REST API sandbox: an in-memory org served over HTTPS, for tests, demos and benchmarks.

Serve ``SalesforceSandbox().app`` with :class:`sandboxes.common.ServerThread` using the files of
:class:`SandboxTLS`; point ``simple_salesforce.Salesforce(instance_url=..., session_id=...,
session=<requests.Session with verify=ca_file>)`` at it.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import FastAPI

from sandboxes.common import CallCounter, FaultPlan, SimClock
from sandboxes.salesforce.app import ApiUsage, build_app
from sandboxes.salesforce.composite import CompositeApi
from sandboxes.salesforce.outbound import OutboundMessenger
from sandboxes.salesforce.rest import RestApi
from sandboxes.salesforce.schema import API_USER_ID, SALES_USER_ID
from sandboxes.salesforce.store import SfError, Store
from sandboxes.salesforce.tls import SandboxTLS

__all__ = ["API_USER_ID", "SALES_USER_ID", "SalesforceSandbox", "SandboxTLS", "SfError"]

DEFAULT_VERSION = "59.0"


class SalesforceSandbox:
    """One emulated org: data store, REST API app, API allocation, faults, outbound messages."""

    def __init__(
        self,
        clock: SimClock | None = None,
        session_id: str = "00Dsandbox!sessiontoken",
        org_id: str = "00D000000000001AAA",
        daily_api_limit: int = 1_000_000,
    ) -> None:
        self.clock = clock or SimClock()
        self.session_id = session_id
        self.org_id = org_id
        self.instance_url = "https://127.0.0.1"
        self.store = Store(self.clock)
        self.counter = CallCounter()
        self.faults = FaultPlan()
        self.usage = ApiUsage(self.clock, daily_api_limit)
        self.lock_row_rate = 0.0  # probability of UNABLE_TO_LOCK_ROW per existing record in collection writes
        self.rest = RestApi(self.store, self._limits)
        self.composite = CompositeApi(self.rest, self.store, lambda: self.lock_row_rate)
        self.outbound = OutboundMessenger(self.store, self.clock, org_id, lambda: self.instance_url)
        self.store.listeners.append(self.outbound.on_changes)
        self.app: FastAPI = build_app(self.rest, self.usage, session_id, self.counter, self.faults)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------ in-process helpers

    def insert(self, sobject: str, fields: dict[str, Any], *, user_id: str = SALES_USER_ID) -> str:
        """Create a record as a user in the UI would (not counted); returns its 18-character Id."""
        return self.store.create(sobject, fields, user_id)

    def update(
        self, sobject: str, record_id: str, fields: dict[str, Any], *, user_id: str = SALES_USER_ID
    ) -> None:
        """Update a record as a UI edit would: system fields, history and outbound messages follow."""
        self.store.update(sobject, record_id, fields, user_id)

    def delete(self, sobject: str, record_id: str, *, user_id: str = SALES_USER_ID) -> None:
        """Delete a record (it stays visible to queryAll with IsDeleted = true)."""
        self.store.delete(sobject, record_id, user_id)

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """The record rendered as the API would (with attributes), or None if unknown or deleted."""
        with self.store.lock:
            obj = self.store.object(sobject)
            record = self.store.find(obj.name, record_id)
            if record is None or record["IsDeleted"]:
                return None
            return self.store.serialize(obj, record, DEFAULT_VERSION)

    def records(self, sobject: str) -> list[dict[str, Any]]:
        """Every live record of ``sobject``, rendered as the API would."""
        with self.store.lock:
            obj = self.store.object(sobject)
            return [
                self.store.serialize(obj, r, DEFAULT_VERSION)
                for r in self.store.tables[obj.name].values()
                if not r["IsDeleted"]
            ]

    def query(self, soql: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Run SOQL with the API's engine (no paging, not counted)."""
        records, _total = self.store.query(soql, include_deleted, DEFAULT_VERSION)
        return records

    def count(self, soql: str) -> int:
        """``totalSize`` of a query (useful with ``SELECT COUNT() ...``)."""
        return self.store.query(soql, False, DEFAULT_VERSION)[1]

    def convert_lead(
        self,
        lead_id: str,
        converted_status: str = "Closed - Converted",
        opportunity_name: str | None = None,
        create_opportunity: bool = True,
        *,
        user_id: str = SALES_USER_ID,
    ) -> dict[str, str | None]:
        """Convert a lead like ``convertLead``; returns leadId, accountId, contactId, opportunityId."""
        return self.store.convert_lead(
            lead_id, converted_status, opportunity_name, create_opportunity, user_id
        )

    # ------------------------------------------------------------------------------ org setup

    def configure_duplicate_rule(
        self, name: str, *, active: bool | None = None, action_on_insert: str | None = None
    ) -> None:
        """Activate/deactivate a duplicate rule or set its insert action ("Allow" or "Block")."""
        with self.store.lock:
            rule = self.store.duplicates.rules[name]
            if active is not None:
                rule.active = active
            if action_on_insert is not None:
                if action_on_insert not in ("Allow", "Block"):
                    raise ValueError(f"action must be Allow or Block, not {action_on_insert!r}")
                rule.action_on_insert = action_on_insert

    def add_user(
        self, first_name: str, last_name: str, *, title: str | None = None, department: str | None = None
    ) -> str:
        """Create an active User (an admin's Setup action, not counted); returns its Id."""
        alias = (first_name[:1] + last_name).lower()[:8]
        username = (
            f"{first_name}.{last_name}.{len(self.store.tables['User']) + 1}@sandbox.example.com".lower()
        )
        return self.store.create(
            "User",
            {
                "Username": username,
                "FirstName": first_name,
                "LastName": last_name,
                "Email": username,
                "Alias": alias,
                "Title": title,
                "Department": department,
            },
            API_USER_ID,
        )

    def set_history_tracking(self, sobject: str, field_name: str, tracked: bool) -> None:
        """Switch field history tracking of ``sobject.field_name`` (Lead, Account, Opportunity) on or off."""
        self.store.set_history_tracking(sobject, field_name, tracked)

    # ------------------------------------------------------------------------------ outbound messages

    def configure_outbound(
        self,
        url: str | None,
        objects: list[str] | None = None,
        fields: dict[str, list[str]] | None = None,
        retry_base_seconds: float = 1.0,
    ) -> None:
        """Send outbound messages for ``objects`` (default Lead, Opportunity) to ``url``; None = off."""
        self.outbound.configure(
            url, objects if objects is not None else ["Lead", "Opportunity"], fields, retry_base_seconds
        )

    def start_outbound_delivery(self) -> None:
        """Start delivering queued outbound messages in a background thread."""
        self.outbound.start()

    def stop_outbound_delivery(self) -> None:
        """Stop the delivery thread (queued messages are kept)."""
        self.outbound.stop()

    # ------------------------------------------------------------------------------ limits

    def _limits(self) -> dict[str, Any]:
        remaining = self.usage.remaining()
        return {
            "DailyApiRequests": {"Max": self.usage.maximum, "Remaining": remaining},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
        }
