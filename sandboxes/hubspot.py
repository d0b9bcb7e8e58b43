"""HubSpot sandbox: a CRM emulator (contacts, deals, pipelines, associations, properties) over real HTTP.

Point the real ``hubspot-api-client`` at it with ``HubSpot(access_token=TOKEN, host=url)``: every
``Configuration`` the client builds gets ``host`` set, which replaces ``https://api.hubapi.com``.

Pieces: :mod:`hubspot_store` (records, history, unique values), :mod:`hubspot_search` and
:mod:`hubspot_index` (search and its indexing delay), :mod:`hubspot_pipelines`,
:mod:`hubspot_associations`, :mod:`hubspot_limits` (rate limits), :mod:`hubspot_webhooks` (signed
delivery with retries), :mod:`hubspot_api` and :mod:`hubspot_api_crm` (the FastAPI routes). This
module ties them together and adds the in-process
helpers used for seeding, the scripted sales team and tests: they are neither counted nor rate
limited, but behave like a UI edit (timestamps, history, webhooks).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from sandboxes.common import CallCounter, FaultPlan, SimClock, install_faults_and_counter
from sandboxes.hubspot_api import build_app
from sandboxes.hubspot_associations import Associations
from sandboxes.hubspot_errors import HubSpotError, error_response
from sandboxes.hubspot_index import SearchIndex
from sandboxes.hubspot_limits import RateLimiter
from sandboxes.hubspot_owners import Owners
from sandboxes.hubspot_pipelines import Pipelines
from sandboxes.hubspot_props import iso_ms, normalize_value
from sandboxes.hubspot_store import ChangeEvent, ContactStore, DealStore, ObjectStore, Record, Source
from sandboxes.hubspot_tasks import TaskStore, default_task_groups, default_task_properties
from sandboxes.hubspot_webhooks import WebhookQueue, WebhookSettings

UI_USER_ID = 9_000_001


class HubSpotSandbox:
    """An emulated HubSpot portal: contacts, deals, pipelines, associations, rate limits and webhooks.

    ``search_delay_seconds`` (plus up to ``search_jitter_seconds``) is the search indexing delay
    (see :mod:`hubspot_index`; 0 = none);
    ``legacy_stage_dates=False`` leaves out ``hs_lifecyclestage_<stage>_date``, as newer portals may.
    """

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
        search_delay_seconds: float = 0.0,
        search_jitter_seconds: float = 0.0,
        legacy_stage_dates: bool = True,
    ) -> None:
        self.clock = clock or SimClock()
        self.token = token
        self.portal_id = portal_id
        self.app_id = app_id
        self.lock = threading.RLock()
        self.store = ContactStore(
            self.clock, portal_id, SearchIndex(search_delay_seconds, search_jitter_seconds, seed=1)
        )
        self.store.legacy_stage_dates = legacy_stage_dates
        self.pipelines = Pipelines(self.clock.now())
        self.deals = DealStore(
            self.clock,
            portal_id,
            self.pipelines,
            SearchIndex(search_delay_seconds, search_jitter_seconds, seed=2),
        )
        self.tasks = TaskStore(
            self.clock, portal_id, default_task_properties(iso_ms(self.clock.now())), default_task_groups()
        )
        self.stores: dict[str, ObjectStore] = {
            "contacts": self.store,
            "deals": self.deals,
            "tasks": self.tasks,
        }
        self.associations = Associations()
        self.owners = Owners()
        self.limiter = RateLimiter(self.clock, window_limit, window_seconds, daily_limit, search_per_second)
        self.webhooks = WebhookQueue(portal_id, app_id)
        self.counter = CallCounter()
        self.faults = FaultPlan()
        self.api_source = Source("INTEGRATION", str(app_id), via_api=True)
        self.ui_source = Source("CRM_UI", f"userId:{UI_USER_ID}", via_api=False)
        self.app: FastAPI = build_app(self)
        install_faults_and_counter(self.app, self.faults, self.counter, error_response)

    def add_owner(self, first_name: str, last_name: str, email: str) -> str:
        """Add a user who can own records (an admin's action, not an API call); returns the owner id."""
        with self.lock:
            return self.owners.add(first_name, last_name, email, self.clock.now())

    # ----- internal ---------------------------------------------------------------------------

    def emit(self, events: list[ChangeEvent]) -> None:
        """Hand change events to the webhook queue."""
        self.webhooks.enqueue(events)

    def check_associations(self, from_type: str, raw: Any) -> list[tuple[str, str, list[int]]]:
        """Validate the ``associations`` of a create request: ``(to type, to id, type ids)`` each."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise HubSpotError(400, "Invalid input JSON: associations must be a list")
        links = []
        for item in raw:
            to = item.get("to") if isinstance(item, dict) else None
            types = item.get("types") if isinstance(item, dict) else None
            to_id = str(to.get("id")) if isinstance(to, dict) else ""
            if not isinstance(types, list) or not types:
                raise HubSpotError(400, "Invalid input: each association needs to.id and types")
            to_type = self._type_target(from_type, types)
            type_ids = self.associations.resolve_types(from_type, to_type, types)
            if self.stores[to_type].resolve(to_id) is None:
                raise HubSpotError(
                    400, f"Invalid association: {to_type[:-1]} {to_id} does not exist", "VALIDATION_ERROR"
                )
            links.append((to_type, to_id, type_ids))
        return links

    def _type_target(self, from_type: str, types: list[Any]) -> str:
        first = types[0] if isinstance(types[0], dict) else {}
        found = self.associations.types.get(int(first.get("associationTypeId") or -1))
        if found is None or found.from_type != from_type:
            raise HubSpotError(
                400, f"{first.get('associationTypeId')} is not a valid association type from {from_type}"
            )
        return found.to_type

    def create_record(
        self,
        store: ObjectStore,
        values: dict[str, str | None],
        source: Source,
        links: list[tuple[str, str, list[int]]] | None = None,
    ) -> Record:
        """Create a validated record, then its associations (``links`` from :meth:`check_associations`)."""
        record, events = store.create(values, source)
        self.emit(events)
        for to_type, to_id, type_ids in links or []:
            self.associate(store.object_type, record.id, to_type, to_id, type_ids, source)
        return record

    def associate(
        self,
        from_type: str,
        from_id: str,
        to_type: str,
        to_id: str,
        type_ids: list[int],
        source: Source | None = None,
    ) -> bool:
        """Link two live records (plus the default type); False if either does not exist."""
        src, dst = self.stores[from_type].resolve(from_id), self.stores[to_type].resolve(to_id)
        if src is None or dst is None:
            return False
        if self.associations.associate(from_type, src.id, to_type, dst.id, type_ids):
            self._association_changed(from_type, src.id, to_type, dst.id, False, source or self.api_source)
        return True

    def unassociate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """Remove every association between two records."""
        if self.associations.remove(from_type, from_id, to_type, to_id):
            self._association_changed(from_type, from_id, to_type, to_id, True, self.api_source)

    def live_associations(self, from_type: str, from_id: str, to_type: str) -> dict[str, set[int]]:
        """Associations of a record to live records of ``to_type``."""
        record = self.stores[from_type].resolve(from_id)
        if record is None:
            return {}
        target = self.stores[to_type]
        linked = self.associations.of(from_type, record.id, to_type)
        return {to: types for to, types in linked.items() if target.resolve(to) is not None}

    def _association_changed(
        self, from_type: str, from_id: str, to_type: str, to_id: str, removed: bool, source: Source
    ) -> None:
        deal_id, contact_id = (from_id, to_id) if from_type == "deals" else (to_id, from_id)
        if "deals" not in (from_type, to_type):
            return
        deal = self.deals.resolve(deal_id)
        now = self.clock.now()
        events: list[ChangeEvent] = [
            ChangeEvent(
                "associationChange",
                deal_id,
                now,
                source,
                object_type="deal",
                extra={
                    "associationType": "DEAL_TO_CONTACT",
                    "fromObjectId": int(deal_id),
                    "toObjectId": int(contact_id),
                    "associationRemoved": removed,
                    "isPrimaryAssociation": False,
                },
            )
        ]
        if deal is not None:
            count = len(self.live_associations("deals", deal_id, "contacts"))
            events += self.deals.set_associated_contacts(deal, count)
        self.emit(events)

    # ----- in-process helpers -----------------------------------------------------------------

    def seed_contact(self, properties: dict[str, str | None]) -> str:
        """Create a contact as a user in the HubSpot UI would; returns its id.

        Read-only calculated properties in ``properties`` (``hubspotscore``) are applied as
        HubSpot's own calculation (history sourceType ``CALCULATED``), never as the user's edit:
        the population's scores arrive the way HubSpot's scoring computes them, not through the API.
        """
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

    def set_score(self, contact_id: str, score: int | str | None) -> None:
        """HubSpot recomputes ``hubspotscore`` (the portal's scoring rules): sourceType CALCULATED."""
        with self.lock:
            contact = self.store.resolve(contact_id)
            if contact is None:
                raise KeyError(contact_id)
            values = self.store.validate({"hubspotscore": score}, self.ui_source)
            self.emit(self.store.set_calculated(contact, values))

    def seed_deal(
        self, properties: dict[str, str | None], contact_ids: list[str] | tuple[str, ...] = ()
    ) -> str:
        """Create a deal as a sales rep in the HubSpot UI would, associated with ``contact_ids``."""
        with self.lock:
            values = self.deals.validate(properties, self.ui_source)
            deal = self.create_record(self.deals, values, self.ui_source)
            for cid in contact_ids:
                if not self.associate("deals", deal.id, "contacts", cid, [], self.ui_source):
                    raise KeyError(cid)
            return deal.id

    def update_deal(self, deal_id: str, properties: dict[str, str | None]) -> None:
        """Edit a deal as a UI user would (e.g. move it to another stage)."""
        with self.lock:
            deal = self.deals.resolve(deal_id)
            if deal is None:
                raise KeyError(deal_id)
            values = self.deals.validate(properties, self.ui_source)
            self.emit(self.deals.update(deal, values, self.ui_source))

    def property_history(self, object_type: str, record_id: str, name: str) -> list[tuple[str, datetime]]:
        """(value, when) of every change of one property of a record, oldest first."""
        with self.lock:
            record = self.stores[object_type].resolve(record_id)
            entries = record.history.get(name, []) if record is not None else []
            return [(h.value, h.timestamp) for h in entries]

    def get_deal(self, deal_id: str) -> dict[str, str | None] | None:
        """All set properties of a live deal."""
        with self.lock:
            deal = self.deals.resolve(deal_id)
            return None if deal is None else dict(deal.values)

    def deal_contacts(self, deal_id: str) -> list[str]:
        """Ids of the live contacts associated with a deal."""
        with self.lock:
            return list(self.live_associations("deals", deal_id, "contacts"))

    def set_search_delay(self, seconds: float, jitter_seconds: float = 0.0) -> None:
        """Change the search indexing delay; the index starts caught up with the records."""
        with self.lock:
            for store in self.stores.values():
                store.index.rebuild(store.live(), seconds, jitter_seconds)

    def search_lagging(self) -> int:
        """Changes that search does not see yet."""
        with self.lock:
            return sum(store.index.lagging() for store in self.stores.values())

    def settle_search(self) -> None:
        """Let the search index catch up now (as if the delay had passed)."""
        with self.lock:
            for store in self.stores.values():
                store.index.settle()

    # ----- webhooks ---------------------------------------------------------------------------

    def configure_webhooks(
        self,
        target_url: str | None,
        client_secret: str,
        properties: list[str],
        max_attempts: int = 10,
        retry_base_seconds: float = 1.0,
        deal_properties: list[str] | None = None,
    ) -> None:
        """Subscribe ``target_url`` to contact creation/deletion/merge and changes of ``properties``.

        ``deal_properties`` (not None) also subscribes deal.creation, deal.deletion,
        deal.associationChange and deal.propertyChange of those properties. ``None`` as target
        turns webhooks off. Retries wait ``retry_base_seconds * 2**(n-1)``.
        """
        self.webhooks.configure(
            WebhookSettings(
                target_url=target_url,
                client_secret=client_secret,
                properties=set(properties),
                max_attempts=max_attempts,
                retry_base_seconds=retry_base_seconds,
                deal_properties=None if deal_properties is None else set(deal_properties),
            )
        )

    def start_webhook_delivery(self) -> None:
        """Deliver queued events from a background thread."""
        self.webhooks.start()

    def stop_webhook_delivery(self) -> None:
        """Stop the delivery thread (queued events are kept)."""
        self.webhooks.stop()
