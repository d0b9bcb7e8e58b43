"""HubSpot sandbox: a CRM v3 contacts/properties emulator served over real HTTP.

Point the real ``hubspot-api-client`` at it with ``HubSpot(access_token=TOKEN, host=url)``: every
``Configuration`` the client builds gets ``host`` set, which replaces ``https://api.hubapi.com``.

Pieces: :mod:`hubspot_store` (records, history, unique values), :mod:`hubspot_search`,
:mod:`hubspot_limits` (rate limits), :mod:`hubspot_webhooks` (signed delivery with retries),
:mod:`hubspot_api` (the FastAPI routes). This module ties them together and adds the in-process
helpers used for seeding, the scripted sales team and tests: they are neither counted nor rate
limited, but behave like a UI edit (timestamps, history, webhooks).
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import FastAPI

from sandboxes.common import CallCounter, FaultPlan, SimClock, install_faults_and_counter
from sandboxes.hubspot_api import build_app
from sandboxes.hubspot_errors import error_response
from sandboxes.hubspot_limits import RateLimiter
from sandboxes.hubspot_props import normalize_value
from sandboxes.hubspot_store import ChangeEvent, ContactStore, Source
from sandboxes.hubspot_webhooks import WebhookQueue, WebhookSettings

UI_USER_ID = 9_000_001


class HubSpotSandbox:
    """An emulated HubSpot portal: contacts, contact properties, rate limits and webhooks."""

    def __init__(
        self,
        clock: SimClock | None = None,
        token: str = "sandbox-hubspot-token",
        portal_id: int = 62515,
        app_id: int = 1160452,
        window_limit: int = 190,
        window_seconds: float = 10.0,
        daily_limit: int = 1_000_000,
        search_per_second: int = 5,
    ) -> None:
        self.clock = clock or SimClock()
        self.token = token
        self.portal_id = portal_id
        self.app_id = app_id
        self.lock = threading.RLock()
        self.store = ContactStore(self.clock, portal_id)
        self.limiter = RateLimiter(self.clock, window_limit, window_seconds, daily_limit, search_per_second)
        self.webhooks = WebhookQueue(portal_id, app_id)
        self.counter = CallCounter()
        self.faults = FaultPlan()
        self.api_source = Source("INTEGRATION", str(app_id), via_api=True)
        self.ui_source = Source("CRM_UI", f"userId:{UI_USER_ID}", via_api=False)
        self.app: FastAPI = build_app(self)
        install_faults_and_counter(self.app, self.faults, self.counter, error_response)

    # ----- internal ---------------------------------------------------------------------------

    def emit(self, events: list[ChangeEvent]) -> None:
        """Hand change events to the webhook queue."""
        self.webhooks.enqueue(events)

    # ----- in-process helpers -----------------------------------------------------------------

    def seed_contact(self, properties: dict[str, str | None]) -> str:
        """Create a contact as a user in the HubSpot UI would; returns its id."""
        with self.lock:
            values = self.store.validate(properties, self.ui_source)
            contact, events = self.store.create(values, self.ui_source)
            self.emit(events)
            return contact.id

    def update_contact(self, contact_id: str, properties: dict[str, str | None]) -> None:
        """Edit a contact as a UI user would (lifecyclestage may move backwards here)."""
        with self.lock:
            contact = self.store.resolve(contact_id)
            if contact is None:
                raise KeyError(contact_id)
            values = self.store.validate(properties, self.ui_source)
            self.emit(self.store.update(contact, values, self.ui_source))

    def delete_contact(self, contact_id: str) -> None:
        """Delete (archive) a contact from the UI."""
        with self.lock:
            contact = self.store.resolve(contact_id)
            if contact is None:
                raise KeyError(contact_id)
            self.emit(self.store.archive(contact, self.ui_source))

    def merge_contacts(self, primary_id: str, merged_id: str) -> None:
        """Merge ``merged_id`` into ``primary_id`` from the UI."""
        with self.lock:
            primary, secondary = self.store.resolve(primary_id), self.store.resolve(merged_id)
            if primary is None or secondary is None or primary is secondary:
                raise KeyError(f"{primary_id}/{merged_id}")
            self.emit(self.store.merge(primary, secondary, self.ui_source))

    def get_contact(self, contact_id: str) -> dict[str, str | None] | None:
        """All set properties of a live contact (incl. hs_object_id, createdate, lastmodifieddate)."""
        with self.lock:
            contact = self.store.contacts.get(contact_id)
            if contact is None or contact.archived:
                return None
            return dict(contact.values)

    def contacts(self) -> list[dict[str, Any]]:
        """Every contact, archived ones included, with all its properties."""
        with self.lock:
            out = []
            for contact in sorted(self.store.contacts.values(), key=lambda c: int(c.id)):
                body = self.store.render(contact)
                body["properties"] = dict(contact.values)
                out.append(body)
            return out

    def find_contacts(self, prop: str, value: str) -> list[str]:
        """Ids of live contacts whose ``prop`` equals ``value`` (after HubSpot's normalisation)."""
        with self.lock:
            definition = self.store.properties.get(prop)
            wanted = normalize_value(definition, value)[0] if definition else value
            return [c.id for c in self.store.live() if c.values.get(prop) == wanted]

    # ----- webhooks ---------------------------------------------------------------------------

    def configure_webhooks(
        self,
        target_url: str | None,
        client_secret: str,
        properties: list[str],
        max_attempts: int = 10,
        retry_base_seconds: float = 1.0,
    ) -> None:
        """Subscribe ``target_url`` to contact creation/deletion/merge and changes of ``properties``.

        ``None`` as target turns webhooks off. Retries wait ``retry_base_seconds * 2**(n-1)``.
        """
        self.webhooks.configure(
            WebhookSettings(
                target_url=target_url,
                client_secret=client_secret,
                properties=set(properties),
                max_attempts=max_attempts,
                retry_base_seconds=retry_base_seconds,
            )
        )

    def start_webhook_delivery(self) -> None:
        """Deliver queued events from a background thread."""
        self.webhooks.start()

    def stop_webhook_delivery(self) -> None:
        """Stop the delivery thread (queued events are kept)."""
        self.webhooks.stop()
