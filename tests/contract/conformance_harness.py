"""Per-connector harnesses for the conformance suite: how to run one connector against its emulator.

A harness knows how to start the emulator, build the real connector the way the runtime does (the
registry's ``open_edge`` and class, from :class:`Settings` pointing at the emulator), edit person
records directly in the emulator (as a user in the vendor's UI would), inject one transient fault,
read the emulator's call counter, and produce the inbox items the web app stores for the vendor's
webhooks. A new connector joins the suite by adding one harness here and to ``HARNESSES``.
"""

from __future__ import annotations

import gc
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from pydantic import SecretStr
from sqlalchemy import select

from sandboxes.common import FaultRule, ServerThread
from sandboxes.hubspot import HubSpotSandbox
from sandboxes.marketo import MarketoSandbox, Webhook
from sandboxes.salesforce import SalesforceSandbox
from sandboxes.salesforce.tls import SandboxTLS
from sync.config import Settings
from sync.connectors.contract import MA, SFA, Connector, InboxItem, Record, Role
from sync.connectors.errors import RecordError, RetryPolicy, TransientError
from sync.connectors.hubspot_ma import PROPERTY_GROUP, PROPERTY_GROUP_LABEL, required_properties
from sync.connectors.ratelimit import make_storage
from sync.connectors.registry import registration
from sync.connectors.salesforce import COMPOSITE_QUERIES
from sync.identity import RecordRef
from sync.mapping import Mapping as SyncMapping
from sync.mapping import load_mapping
from sync.mapping.loader import parse_mapping_data
from sync.store.db import Store, upgrade
from sync.store.models import InboxEvent
from sync.web.app import HUBSPOT_PATH, MARKETO_PATH, SALESFORCE_PATH, create_app
from tests.fakes import FakeMarketing, FakeSales

ROOT = Path(__file__).parents[2]
WEBHOOK_SECRET = "conformance-webhook-secret"
# Retries fast enough for a test, through the same policy class the runtime builds from settings.
POLICY = RetryPolicy(max_attempts=3, base_seconds=0.01, max_seconds=0.05)


def default_mapping() -> SyncMapping:
    return load_mapping(ROOT / "mappings")


@dataclass
class WebApp:
    """The real web app (signed webhooks into the inbox) on a real socket, with its own store."""

    store: Store
    server: ServerThread
    org_id: str

    @property
    def url(self) -> str:
        return self.server.url

    def items_after(self, last_id: int, role: Role) -> list[InboxItem]:
        """Inbox items stored since ``last_id`` for ``role``, built as the inbox processor builds them."""
        with self.store.session() as session:
            rows = session.execute(
                select(InboxEvent)
                .where(InboxEvent.id > last_id, InboxEvent.role == role)
                .order_by(InboxEvent.id)
            ).scalars()
            return [InboxItem(e.object_type, e.record_id, dict(e.payload or {})) for e in rows]

    def last_id(self) -> int:
        with self.store.session() as session:
            return max(session.scalars(select(InboxEvent.id)).all(), default=0)


def start_web_app(workdir: Path, org_id: str) -> WebApp:
    url = f"sqlite:///{workdir / 'web.db'}"
    upgrade(url)
    store = Store(url)
    settings = Settings(
        database_url=url,
        mappings=ROOT / "mappings",
        hubspot_webhook_secret=SecretStr(WEBHOOK_SECRET),
        hubspot_signature_version="v3",
        salesforce_org_id=org_id,
    )
    server = ServerThread(create_app(settings, store, lambda _ids: None)).start()
    return WebApp(store, server, org_id)


def one_fault(path_regex: str, kind: str) -> FaultRule:
    """Exactly one injected 429 (``rate_limit``) or 5xx (``outage``) on matching paths."""
    if kind == "rate_limit":
        return FaultRule(path_regex=path_regex, rate_429=1.0, limit=1)
    return FaultRule(path_regex=path_regex, rate_5xx=1.0, limit=1)


def keyed(rows: Mapping[str, Record], key_field: str) -> dict[str, Record]:
    """Rows with their common ID repeated in the key field."""
    return {cid: {**row, key_field: cid} for cid, row in rows.items()}


class Harness:
    """What the conformance suite needs to know about one connector and its emulator."""

    name: str
    role: Role
    page_size: int  # records per change-feed page
    key_field: str  # the common-ID field written by create/upsert
    webhook_kinds: frozenset[str] = frozenset({"change"})
    connector: Connector
    idle_calls: int | None = None  # API calls of a settled idle poll; None: one per stream

    def expected_idle_calls(self) -> int:
        return self.idle_calls if self.idle_calls is not None else len(self.connector.streams)

    def start(self, workdir: Path, web: WebApp | None) -> None: ...
    def stop(self) -> None: ...
    def reset(self) -> None:
        """A fresh connector and no faults or counted calls left from an earlier test."""

    # -- the emulator, edited directly --------------------------------------------------------------

    def new_person(self, n: int, common_id: str | None = None) -> RecordRef:
        raise NotImplementedError

    def modify(self, ref: RecordRef, value: str) -> None:
        """Change the person's watched field to ``value`` (see :meth:`watched`)."""
        raise NotImplementedError

    def watched(self, ref: RecordRef) -> tuple[str, Any]:
        """(field, current value in the emulator) of the field :meth:`modify` changes."""
        raise NotImplementedError

    def person_refs(self) -> set[RecordRef]:
        """Every live person record in the emulator."""
        raise NotImplementedError

    def by_key(self, common_id: str) -> list[Record]:
        """Live person records carrying ``common_id``, read straight from the emulator."""
        raise NotImplementedError

    def delete(self, ref: RecordRef) -> None:
        raise NotImplementedError

    def merge(self, primary: RecordRef, merged: RecordRef) -> None:
        raise NotImplementedError

    # -- writes through the connector ---------------------------------------------------------------

    def write_row(self, n: int) -> Record:
        """Fields of a new person the emulator accepts (without the common-ID key)."""
        raise NotImplementedError

    def refused_row(self, n: int) -> Record:
        """Fields of a new person the emulator refuses (an invalid email address)."""
        raise NotImplementedError

    def create(
        self, rows: Mapping[str, Record], repeat_key: bool = True
    ) -> tuple[dict[str, str], list[RecordError]]:
        """Create-or-update rows keyed by common ID; ``repeat_key`` also puts the key into each row
        (as the engine does)."""
        raise NotImplementedError

    def update(self, updates: Mapping[RecordRef, Record]) -> list[RecordError]:
        raise NotImplementedError

    def change(self, value: str) -> Record:
        """The update that sets the watched field to ``value``."""
        raise NotImplementedError

    def age(self, delta: timedelta) -> None:
        """Move the emulator's clock on: every record so far is then ``delta`` older than new changes."""
        raise NotImplementedError

    def after_first_feed_page(self, action: Callable[[RecordRef], None]) -> None:
        """Run ``action`` with the first record of the next poll, between its first and second page."""
        raise NotImplementedError

    # -- faults, counting and webhooks --------------------------------------------------------------

    def fail_feed_once(self, kind: str) -> None:
        """The next change-feed call gets one transient error: ``rate_limit`` or ``outage``."""
        raise NotImplementedError

    def feed_statuses(self) -> Counter[int]:
        """Counted change-feed calls by HTTP status (the emulator's call counter)."""
        raise NotImplementedError

    def webhook_items(self, action: Callable[[], None]) -> list[InboxItem]:
        """Do ``action`` in the emulator; the inbox items the web app stored for its webhooks."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------------- HubSpot


class HubSpotHarness(Harness):
    """HubSpot as MA: the HubSpot sandbox over HTTP, hubspot-api-client inside the connector."""

    name = "hubspot"
    role = MA
    page_size = 200  # a search page (https://developers.hubspot.com/docs/api/crm/search, "Limits")
    webhook_kinds = frozenset({"change", "merge", "deletion"})
    FEED = "/crm/v3/objects/contacts/search"

    def start(self, workdir: Path, web: WebApp | None) -> None:
        self.mapping = default_mapping()
        self.key_field = self.mapping.identity.ma_property
        self.sandbox = HubSpotSandbox(window_limit=100_000, search_per_second=1000)
        self.server = ServerThread(self.sandbox.app).start()
        self.settings = Settings(
            mappings=ROOT / "mappings",
            hubspot_base_url=self.server.url,
            hubspot_access_token=SecretStr(self.sandbox.token),
            hubspot_window_limit=100_000,
            hubspot_search_per_second=1000,
        )
        self.web = web
        self.reset()
        # Closedloop's own properties, as `closedloop setup` creates them.
        edge = self.connector.edge  # type: ignore[attr-defined]
        edge.ensure_group(PROPERTY_GROUP, PROPERTY_GROUP_LABEL)
        for spec in required_properties(self.mapping):
            edge.create_property(spec, PROPERTY_GROUP)
        if web is not None:
            self.sandbox.configure_webhooks(
                web.url + HUBSPOT_PATH, WEBHOOK_SECRET, properties=["firstname"], retry_base_seconds=0.05
            )
        self.sandbox.counter.reset()

    def reset(self) -> None:
        reg = registration(MA, "hubspot")
        edge = reg.open(self.settings, POLICY, make_storage(None), None)
        self.connector = reg.bind(edge, self.mapping)
        self.sandbox.faults.rules = []
        self.sandbox.counter.reset()

    def stop(self) -> None:
        self.sandbox.stop_webhook_delivery()
        self.server.stop()

    def new_person(self, n: int, common_id: str | None = None) -> RecordRef:
        props: dict[str, str | None] = {
            "email": f"person{n}@example.com",
            "firstname": f"First{n}",
            "lastname": f"Last{n}",
        }
        if common_id:
            props[self.key_field] = common_id
        return RecordRef(MA, "contact", self.sandbox.seed_contact(props))

    def modify(self, ref: RecordRef, value: str) -> None:
        self.sandbox.update_contact(ref.record_id, {"firstname": value})

    def watched(self, ref: RecordRef) -> tuple[str, Any]:
        return "firstname", (self.sandbox.get_contact(ref.record_id) or {}).get("firstname")

    def person_refs(self) -> set[RecordRef]:
        return {RecordRef(MA, "contact", c["id"]) for c in self.sandbox.contacts() if not c.get("archived")}

    def by_key(self, common_id: str) -> list[Record]:
        return [
            self.sandbox.get_contact(i) or {} for i in self.sandbox.find_contacts(self.key_field, common_id)
        ]

    def delete(self, ref: RecordRef) -> None:
        self.sandbox.delete_contact(ref.record_id)

    def merge(self, primary: RecordRef, merged: RecordRef) -> None:
        self.sandbox.merge_contacts(primary.record_id, merged.record_id)

    def age(self, delta: timedelta) -> None:
        self.sandbox.clock.advance(delta)

    def after_first_feed_page(self, action: Callable[[RecordRef], None]) -> None:
        edge = self.connector.edge  # type: ignore[attr-defined]
        original, done = edge.changed_since, [False]

        def paged(*args: Any, **kwargs: Any) -> Iterator[Any]:
            for page in original(*args, **kwargs):
                yield page
                if not done[0]:
                    done[0] = True
                    action(RecordRef(MA, "contact", page[0].id))

        edge.changed_since = paged

    def write_row(self, n: int) -> Record:
        return {"email": f"written{n}@example.com", "firstname": f"Written{n}"}

    def refused_row(self, n: int) -> Record:
        return {"email": f"not-an-email-{n}", "firstname": f"Refused{n}"}

    def create(
        self, rows: Mapping[str, Record], repeat_key: bool = True
    ) -> tuple[dict[str, str], list[RecordError]]:
        rows = keyed(rows, self.key_field) if repeat_key else rows
        return self.connector.create(self.key_field, rows)  # type: ignore[attr-defined,no-any-return]

    def update(self, updates: Mapping[RecordRef, Record]) -> list[RecordError]:
        return self.connector.update({r.record_id: f for r, f in updates.items()})  # type: ignore[attr-defined,no-any-return]

    def change(self, value: str) -> Record:
        return {"firstname": value}

    def fail_feed_once(self, kind: str) -> None:
        self.sandbox.faults.rules = [one_fault(f"^{self.FEED}$", kind)]

    def feed_statuses(self) -> Counter[int]:
        return Counter(
            {s: c for (m, e, s), c in self.sandbox.counter.counts.items() if e == self.FEED and m == "POST"}
        )

    def webhook_items(self, action: Callable[[], None]) -> list[InboxItem]:
        assert self.web is not None
        while self.sandbox.webhooks.deliver_due():  # what earlier tests left queued
            pass
        last = self.web.last_id()
        action()
        while self.sandbox.webhooks.deliver_due():
            pass
        assert self.sandbox.webhooks.deliveries and self.sandbox.webhooks.deliveries[-1].status == 200
        return self.web.items_after(last, MA)


class HubSpotSalesHarness(HubSpotHarness):
    """HubSpot as SFA (contacts and their deals) with another marketing system, so every contact is a
    sales-side record (one portal in both roles is covered by tests/contract/test_hubspot_sfa_connector.py
    and the one-portal integration tests)."""

    name = "hubspot-sfa"
    role = SFA
    FEEDS = ("/crm/v3/objects/contacts/search", "/crm/v3/objects/deals/search")

    def start(self, workdir: Path, web: WebApp | None) -> None:
        super().start(workdir, web)
        # Another portal than the MA harness's, sending to the same web app: its own event IDs (a
        # portal's eventIds are its own; the inbox drops an event key it already stored).
        self.sandbox.webhooks._ids = itertools.count(10_000_000)
        # The one-portal default mapping, plus the field the suite watches, read on the contact.
        data = load_mapping(ROOT / "mappings" / "hubspot-only.yaml").model_dump(
            by_alias=True, exclude_none=True
        )
        data["fields"].append(
            {"ma": "firstname", "sfa": "firstname", "sync": "two_way", "sfa_objects": ["contact"]}
        )
        self.mapping = parse_mapping_data(data)
        self.key_field = self.mapping.identity.sfa_field
        self.reset()

    def feed_statuses(self) -> Counter[int]:
        """Both streams' change feeds: the contacts' and the deals' search."""
        found: Counter[int] = Counter()
        for (method, endpoint, status), count in self.sandbox.counter.counts.items():
            if endpoint in self.FEEDS and method == "POST":
                found[status] += count
        return found

    def reset(self) -> None:
        reg = registration(SFA, "hubspot")
        edge = reg.open(self.settings, POLICY, make_storage(None), None)
        self.connector = reg.bind(replace(edge, same_portal=False), self.mapping)
        self.sandbox.faults.rules = []
        self.sandbox.counter.reset()

    def new_person(self, n: int, common_id: str | None = None) -> RecordRef:
        return RecordRef(SFA, "contact", super().new_person(n, common_id).record_id)

    def person_refs(self) -> set[RecordRef]:
        return {RecordRef(SFA, r.object_type, r.record_id) for r in super().person_refs()}

    def after_first_feed_page(self, action: Callable[[RecordRef], None]) -> None:
        super().after_first_feed_page(lambda ref: action(RecordRef(SFA, ref.object_type, ref.record_id)))

    def create(
        self, rows: Mapping[str, Record], repeat_key: bool = True
    ) -> tuple[dict[str, str], list[RecordError]]:
        rows = keyed(rows, self.key_field) if repeat_key else rows
        return self.connector.upsert("contact", self.key_field, rows)  # type: ignore[attr-defined,no-any-return]

    def update(self, updates: Mapping[RecordRef, Record]) -> list[RecordError]:
        by_id = {r.record_id: f for r, f in updates.items()}
        return self.connector.update("contact", by_id)  # type: ignore[attr-defined,no-any-return]

    def webhook_items(self, action: Callable[[], None]) -> list[InboxItem]:
        # The suite's one web app runs with HubSpot as MA, so it stores contact events for that role;
        # with HubSpot as the sales side the same events are the SFA connector's to interpret.
        assert self.web is not None
        while self.sandbox.webhooks.deliver_due():
            pass
        last = self.web.last_id()
        action()
        while self.sandbox.webhooks.deliver_due():
            pass
        assert self.sandbox.webhooks.deliveries and self.sandbox.webhooks.deliveries[-1].status == 200
        return self.web.items_after(last, MA)


# ------------------------------------------------------------------------------------------ Salesforce


class SalesforceHarness(Harness):
    """Salesforce as SFA: the Salesforce sandbox over TLS, simple-salesforce inside the connector."""

    name = "salesforce"
    role = SFA
    # Query batch size through the Sforce-Query-Options header, at its documented minimum of 200
    # (REST API Developer Guide, "Query Options Header").
    page_size = 200
    FEED = "/services/data/v59.0/query/"
    COMPOSITE = "/services/data/v59.0/composite"

    def expected_idle_calls(self) -> int:
        """Every stream in Composite calls of five queries: the four base streams cost one call, and
        the related objects the mapping names (Account, Event, Task) may add a second."""
        return -(-len(self.connector.streams) // COMPOSITE_QUERIES)

    def start(self, workdir: Path, web: WebApp | None) -> None:
        self.mapping = default_mapping()
        self.key_field = self.mapping.identity.sfa_field
        self.tls = SandboxTLS.create(workdir / "tls")
        self.sandbox = SalesforceSandbox()
        self.server = ServerThread(
            self.sandbox.app, ssl_certfile=self.tls.cert_file, ssl_keyfile=self.tls.key_file
        ).start()
        url = self.server.url.replace("127.0.0.1", "localhost")
        self.sandbox.instance_url = url
        self.settings = Settings(
            mappings=ROOT / "mappings",
            salesforce_instance_url=url,
            salesforce_session_id=SecretStr(self.sandbox.session_id),
            salesforce_ca_bundle=Path(self.tls.ca_file),
            salesforce_org_id=self.sandbox.org_id,
        )
        self.sessions: list[requests.Session] = []
        self.web = web
        if web is not None:
            self.sandbox.configure_outbound(
                web.url + SALESFORCE_PATH, objects=["Lead"], retry_base_seconds=0.05
            )
        self.reset()

    def reset(self) -> None:
        http = requests.Session()
        http.trust_env = False
        http.headers["Sforce-Query-Options"] = f"batchSize={self.page_size}"
        self.sessions.append(http)
        reg = registration(SFA, "salesforce")
        edge = reg.open(self.settings, POLICY, make_storage(None), http)
        self.connector = reg.bind(edge, self.mapping)
        self.sandbox.faults.rules = []
        self.sandbox.counter.reset()

    def stop(self) -> None:
        self.sandbox.stop_outbound_delivery()
        gc.collect()
        for http in self.sessions:
            http.close()
        self.server.stop()

    def new_person(self, n: int, common_id: str | None = None) -> RecordRef:
        fields = {
            "FirstName": f"First{n}",
            "LastName": f"Last{n}",
            "Company": "Acme",
            "Email": f"p{n}@example.com",
        }
        if common_id:
            fields[self.key_field] = common_id
        return RecordRef(SFA, "Lead", self.sandbox.insert("Lead", fields))

    def modify(self, ref: RecordRef, value: str) -> None:
        self.sandbox.update(ref.object_type, ref.record_id, {"FirstName": value})

    def watched(self, ref: RecordRef) -> tuple[str, Any]:
        return "FirstName", (self.sandbox.get(ref.object_type, ref.record_id) or {}).get("FirstName")

    def person_refs(self) -> set[RecordRef]:
        return {
            RecordRef(SFA, obj, r["Id"]) for obj in ("Lead", "Contact") for r in self.sandbox.records(obj)
        }

    def by_key(self, common_id: str) -> list[Record]:
        records = [r for obj in ("Lead", "Contact") for r in self.sandbox.records(obj)]
        return [r for r in records if r.get(self.key_field) == common_id]

    def delete(self, ref: RecordRef) -> None:
        self.sandbox.delete(ref.object_type, ref.record_id)

    def age(self, delta: timedelta) -> None:
        self.sandbox.clock.advance(delta)

    def after_first_feed_page(self, action: Callable[[RecordRef], None]) -> None:
        edge = self.connector.edge  # type: ignore[attr-defined]
        original = edge._pages
        page_size, done = self.page_size, [False]

        def paged(page: dict[str, Any]) -> Iterator[Any]:
            first: str | None = None
            for count, record in enumerate(original(page), 1):
                first = first or record["Id"]
                yield record
                lead = (record.get("attributes") or {}).get("type") == "Lead"
                if count == page_size and not done[0] and lead:
                    done[0] = True
                    action(RecordRef(SFA, "Lead", first))

        edge._pages = paged

    def write_row(self, n: int) -> Record:
        return {"LastName": f"Written{n}", "Company": "Acme", "Email": f"written{n}@example.com"}

    def refused_row(self, n: int) -> Record:
        return {"LastName": f"Refused{n}", "Company": "Acme", "Email": f"not-an-email-{n}"}

    def create(
        self, rows: Mapping[str, Record], repeat_key: bool = True
    ) -> tuple[dict[str, str], list[RecordError]]:
        rows = keyed(rows, self.key_field) if repeat_key else rows
        return self.connector.upsert("Lead", self.key_field, rows)  # type: ignore[attr-defined,no-any-return]

    def update(self, updates: Mapping[RecordRef, Record]) -> list[RecordError]:
        by_id = {r.record_id: f for r, f in updates.items()}
        return self.connector.update("Lead", by_id)  # type: ignore[attr-defined,no-any-return]

    def change(self, value: str) -> Record:
        return {"FirstName": value}

    def fail_feed_once(self, kind: str) -> None:
        # The emulator renders an injected 429 with REQUEST_LIMIT_EXCEEDED and a 5xx with
        # UNKNOWN_EXCEPTION or SERVER_UNAVAILABLE, in Salesforce's error body shape.
        self.sandbox.faults.rules = [one_fault(r"^/services/data/v59\.0/composite/?$", kind)]

    def feed_statuses(self) -> Counter[int]:
        # Every stream is read in one Composite call; larger results continue with queryMore.
        counts: Counter[int] = Counter()
        for (m, e, s), c in self.sandbox.counter.counts.items():
            if (e, m) in ((self.FEED, "GET"), (self.COMPOSITE, "POST")):
                counts[s] += c
        return counts

    def webhook_items(self, action: Callable[[], None]) -> list[InboxItem]:
        assert self.web is not None
        self._deliver()  # what earlier tests left queued
        last = self.web.last_id()
        action()
        self._deliver()
        return self.web.items_after(last, SFA)

    def _deliver(self) -> None:
        self.sandbox.start_outbound_delivery()
        deadline = time.monotonic() + 10
        while self.sandbox.outbound.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.sandbox.stop_outbound_delivery()
        assert self.sandbox.outbound.pending() == 0, "outbound messages were not acknowledged"


# --------------------------------------------------------------------------------------------- Marketo


class MarketoHarness(Harness):
    """Marketo as MA: the Marketo sandbox over HTTP, marketorestpython inside the connector.

    Its change feed is Get Lead Activities after a paging token: pages of 300 log entries
    ("Activities", https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/
    lead-database/activities). Its webhooks are calls made by a trigger campaign's flow step, to a
    web app of its own (the token it sends is a Marketo setting); Marketo has no merge or deletion
    trigger that could call one (a deleted lead is gone before a flow could run), so only changes.
    """

    name = "marketo"
    role = MA
    page_size = 300
    FEED = "/rest/v1/activities.json"
    TOKEN = "conformance-marketo-token"
    MAPPING = ROOT / "mappings" / "marketo-salesforce.yaml"

    def start(self, workdir: Path, web: WebApp | None) -> None:
        self.mapping = load_mapping(self.MAPPING)
        self.key_field = self.mapping.identity.ma_property
        self.sandbox = MarketoSandbox(window_limit=100_000)
        self.server = ServerThread(self.sandbox.app).start()
        self.settings = Settings(
            ma="marketo",
            mappings=self.MAPPING,
            marketo_base_url=self.server.url,
            marketo_client_id=self.sandbox.client_id,
            marketo_client_secret=SecretStr(self.sandbox.client_secret),
            marketo_munchkin_id=self.sandbox.munchkin_id,
            marketo_window_limit=100_000,
        )
        self.reset()
        report = self.connector.provision(self.mapping, dry_run=False)  # as `closedloop setup` does
        assert not report.missing and not report.problems, report
        self.web: WebApp | None = None
        if web is not None:
            self.web = start_marketo_web_app(workdir, self.TOKEN)
            template = (
                '{"leadId": {{lead.Id}}, "occurredAt": {{system.dateTime}}, "campaignId": {{campaign.id}}}'
            )
            hook = Webhook(
                "Closedloop", self.web.url + MARKETO_PATH, template, {"X-Closedloop-Token": self.TOKEN}
            )
            self.sandbox.add_trigger_campaign("To Closedloop", "Data Value Changes", hook, field="firstName")
            self.sandbox.start_webhooks()
        self.sandbox.counter.reset()

    def reset(self) -> None:
        reg = registration(MA, "marketo")
        edge = reg.open(self.settings, POLICY, make_storage(None), None)
        self.connector = reg.bind(edge, self.mapping)
        self.sandbox.faults.rules = []
        self.sandbox.counter.reset()

    def stop(self) -> None:
        self.sandbox.stop_webhooks()
        self.server.stop()
        if self.web is not None:
            self.web.server.stop()
            self.web.store.dispose()

    def _ref(self, lead_id: Any) -> RecordRef:
        return RecordRef(MA, "lead", str(lead_id))

    def new_person(self, n: int, common_id: str | None = None) -> RecordRef:
        values: dict[str, Any] = {
            "email": f"lead{n}@example.com",
            "firstName": f"First{n}",
            "lastName": f"Last{n}",
        }
        if common_id:
            values[self.key_field] = common_id
        return self._ref(self.sandbox.create_lead(values))

    def modify(self, ref: RecordRef, value: str) -> None:
        self.sandbox.update_lead(int(ref.record_id), {"firstName": value})

    def watched(self, ref: RecordRef) -> tuple[str, Any]:
        return "firstName", (self.sandbox.get_lead(int(ref.record_id)) or {}).get("firstName")

    def person_refs(self) -> set[RecordRef]:
        return {self._ref(lead["id"]) for lead in self.sandbox.leads()}

    def by_key(self, common_id: str) -> list[Record]:
        return [self.sandbox.get_lead(i) or {} for i in self.sandbox.find_leads(self.key_field, common_id)]

    def delete(self, ref: RecordRef) -> None:
        self.sandbox.delete_lead(int(ref.record_id))

    def merge(self, primary: RecordRef, merged: RecordRef) -> None:
        self.sandbox.merge_leads(int(primary.record_id), [int(merged.record_id)])

    def age(self, delta: timedelta) -> None:
        self.sandbox.clock.advance(delta)

    def after_first_feed_page(self, action: Callable[[RecordRef], None]) -> None:
        client = self.connector.edge.client  # type: ignore[attr-defined]
        original, done = client.activities_page, [False]

        def paged(*args: Any, **kwargs: Any) -> Any:
            page = original(*args, **kwargs)
            if not done[0] and page.get("result"):
                done[0] = True
                action(self._ref(page["result"][0]["leadId"]))
            return page

        client.activities_page = paged

    def write_row(self, n: int) -> Record:
        return {"email": f"written{n}@example.com", "firstName": f"Written{n}"}

    def refused_row(self, n: int) -> Record:
        return {"email": f"not-an-email-{n}", "firstName": f"Refused{n}"}

    def create(
        self, rows: Mapping[str, Record], repeat_key: bool = True
    ) -> tuple[dict[str, str], list[RecordError]]:
        rows = keyed(rows, self.key_field) if repeat_key else rows
        return self.connector.create(self.key_field, rows)  # type: ignore[attr-defined,no-any-return]

    def update(self, updates: Mapping[RecordRef, Record]) -> list[RecordError]:
        return self.connector.update({r.record_id: f for r, f in updates.items()})  # type: ignore[attr-defined,no-any-return]

    def change(self, value: str) -> Record:
        return {"firstName": value}

    def fail_feed_once(self, kind: str) -> None:
        # An injected 429 is rendered as Marketo renders its rate limit: 606 inside an HTTP 200.
        self.sandbox.faults.rules = [one_fault(f"^{self.FEED}$", kind)]

    def feed_statuses(self) -> Counter[int]:
        return Counter(
            {s: c for (m, e, s), c in self.sandbox.counter.counts.items() if e == self.FEED and m == "GET"}
        )

    def webhook_items(self, action: Callable[[], None]) -> list[InboxItem]:
        assert self.web is not None
        self.sandbox.webhooks.wait_idle()  # what earlier tests left queued
        last = self.web.last_id()
        action()
        assert self.sandbox.webhooks.wait_idle()
        assert self.sandbox.webhooks.deliveries and self.sandbox.webhooks.deliveries[-1].status == 200
        return self.web.items_after(last, MA)


def start_marketo_web_app(workdir: Path, token: str) -> WebApp:
    """The web app of an installation whose marketing tool is Marketo (its own store)."""
    url = f"sqlite:///{workdir / 'marketo-web.db'}"
    upgrade(url)
    store = Store(url)
    settings = Settings(
        database_url=url,
        mappings=MarketoHarness.MAPPING,
        ma="marketo",
        marketo_webhook_token=SecretStr(token),
    )
    server = ServerThread(create_app(settings, store, lambda _ids: None)).start()
    return WebApp(store, server, "")


# ----------------------------------------------------------------------------------------------- fakes


@dataclass
class FakeHarness(Harness):
    """The in-memory fakes of ``tests/fakes.py``: the same bar as the real connectors."""

    role: Role = MA
    page_size: int = 3
    webhook_kinds: frozenset[str] = frozenset({"change", "merge", "deletion"})
    fake: Any = field(default=None)
    events: list[InboxItem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = f"fake-{self.role}"

    def start(self, workdir: Path, web: WebApp | None) -> None:
        self.fake = (
            FakeMarketing(page_size=self.page_size)
            if self.role == MA
            else FakeSales(page_size=self.page_size)
        )
        self.fake.policy = POLICY
        self.connector = self.fake
        self.key_field = self.fake.id_property if self.role == MA else self.fake.ext
        self.object = self.fake.profile.person_objects[0]

    def reset(self) -> None:
        """The fake is its own emulator: its records stay, its call log and faults go."""
        self.fake.calls.clear()
        self.fake.faults.clear()
        self.fake.refusals.clear()
        self.fake.after_first_page = None

    def stop(self) -> None:
        pass

    def new_person(self, n: int, common_id: str | None = None) -> RecordRef:
        email = self.fake.profile.email_field
        fields: dict[str, Any] = {email: f"p{n}@example.com", "name": f"First{n}"}
        if common_id:
            fields[self.key_field] = common_id
        return RecordRef(self.role, self.object, self.fake.put(self.object, fields))

    def modify(self, ref: RecordRef, value: str) -> None:
        self.fake.put(ref.object_type, {"name": value}, ref.record_id)
        self.events.append(InboxItem(ref.object_type, ref.record_id, {"kind": "change"}))

    def watched(self, ref: RecordRef) -> tuple[str, Any]:
        return "name", (self.fake.get(ref.object_type, ref.record_id) or {}).get("name")

    def person_refs(self) -> set[RecordRef]:
        return {
            RecordRef(self.role, obj, rid)
            for obj in self.fake.profile.person_objects
            for rid in self.fake.tables.get(obj, {})
        }

    def by_key(self, common_id: str) -> list[Record]:
        return [
            r
            for obj in self.fake.profile.person_objects
            for r in self.fake.find(obj, self.key_field, common_id)
        ]

    def delete(self, ref: RecordRef) -> None:
        self.fake.delete(ref.object_type, ref.record_id)
        self.events.append(InboxItem(ref.object_type, ref.record_id, {"kind": "deletion"}))

    def merge(self, primary: RecordRef, merged: RecordRef) -> None:
        self.fake.delete(merged.object_type, merged.record_id)
        payload = {"kind": "merge", "merged": [merged.record_id]}
        self.events.append(InboxItem(primary.object_type, primary.record_id, payload))

    def age(self, delta: timedelta) -> None:
        self.fake.clock.advance(delta)

    def after_first_feed_page(self, action: Callable[[RecordRef], None]) -> None:
        self.fake.after_first_page = lambda obj, rid: action(RecordRef(self.role, obj, rid))

    def write_row(self, n: int) -> Record:
        return {self.fake.profile.email_field: f"written{n}@example.com", "name": f"Written{n}"}

    def refused_row(self, n: int) -> Record:
        return {self.fake.profile.email_field: f"not-an-email-{n}", "name": f"Refused{n}"}

    def create(
        self, rows: Mapping[str, Record], repeat_key: bool = True
    ) -> tuple[dict[str, str], list[RecordError]]:
        rows = keyed(rows, self.key_field) if repeat_key else rows
        if self.role == MA:
            return self.fake.create(self.key_field, rows)  # type: ignore[no-any-return]
        return self.fake.upsert(self.object, self.key_field, rows)  # type: ignore[no-any-return]

    def update(self, updates: Mapping[RecordRef, Record]) -> list[RecordError]:
        if self.role == MA:
            return self.fake.update({r.record_id: f for r, f in updates.items()})  # type: ignore[no-any-return]
        return self.fake.update(self.object, {r.record_id: f for r, f in updates.items()})  # type: ignore[no-any-return]

    def change(self, value: str) -> Record:
        return {"name": value}

    def fail_feed_once(self, kind: str) -> None:
        status = 429 if kind == "rate_limit" else 503
        self.fake.faults.append(TransientError("fake", f"HTTP {status}", status, category="transient"))

    def feed_statuses(self) -> Counter[int]:
        pages = [c for c in self.fake.calls if c.name == "page"]
        # A failed attempt is followed by a retry of the same page.
        failed = sum(1 for a, b in zip(pages, pages[1:], strict=False) if b.attempt > a.attempt)
        return Counter({429: failed, 200: len(pages) - failed} if failed else {200: len(pages)})

    def webhook_items(self, action: Callable[[], None]) -> list[InboxItem]:
        """The fakes' "webhooks": one stored item per change, deletion or merge the action made."""
        self.events = []
        action()
        return list(self.events)


HARNESSES: dict[str, Callable[[], Harness]] = {
    "hubspot-ma": HubSpotHarness,
    "hubspot-sfa": HubSpotSalesHarness,
    "salesforce-sfa": SalesforceHarness,
    "marketo-ma": MarketoHarness,
    "fake-ma": lambda: FakeHarness(role=MA),
    "fake-sfa": lambda: FakeHarness(role=SFA),
}


def page_count(harness: Harness) -> int:
    """Successful change-feed calls counted so far."""
    return sum(c for s, c in harness.feed_statuses().items() if 200 <= s < 300)


def poll_refs(
    harness: Harness, cursors: Mapping[str, Any], overlap: timedelta
) -> tuple[list[RecordRef], Any]:
    """Every record ref among a poll's candidates, and the cursors to save."""
    batch = harness.connector.poll(cursors, overlap)
    return [r for c in batch.candidates for r in c.records], batch.cursors
