"""The connector contract: what the core asks of a marketing (MA) or sales (SFA) system.

The core (engine, state reader, poller, backfill, inbox processor) knows two roles and this
contract, never a vendor. A connector implements one role for one vendor; its *profile* carries the
vendor's conventions (which field is the score, the campaign, the owner, the modification time;
which objects hold people and outcomes), so no vendor name or field name lives in the core.

Shaped after the field's connector kits: streams with opaque, resumable cursor state (Singer
bookmarks, dlt's ``Incremental``), per-record write results (dlt destinations) and one error
resolution into retry / wait / re-authenticate / fail record / fail call (Airbyte's CDK; see
:mod:`sync.connectors.errors`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sync.connectors.errors import RecordError
from sync.connectors.incremental import CursorState
from sync.identity import Candidate, RecordRef
from sync.mapping import Mapping as SyncMapping
from sync.roles import MA, ROLES, SFA, Role

__all__ = ["MA", "ROLES", "SFA", "Role"]

Record = dict[str, Any]


@dataclass(frozen=True)
class Profile:
    """A vendor's conventions, as the core needs them. Fields a team customises belong in the mapping."""

    connector: str  # registry name, e.g. "hubspot"
    role: Role
    # Objects that hold the person's fields, most evident last (e.g. a Lead, then its converted
    # Contact); the outcome object (e.g. an opportunity or deal) ranks above them.
    person_objects: tuple[str, ...]
    outcome_object: str | None = None
    id_field: str = "id"  # the record ID inside a record's fields
    email_field: str = "email"
    modified_field: str = "updated_at"
    created_field: str | None = None
    score_field: str | None = None
    campaign_field: str | None = None
    source_field: str | None = None
    owner_field: str | None = None
    amount_field: str | None = None
    status_field: str | None = None  # the person's own status: the reason of a person-level detour

    @property
    def evidence_order(self) -> tuple[str, ...]:
        """Objects by increasing weight of evidence for a stage (outcome last)."""
        return (*self.person_objects, *((self.outcome_object,) if self.outcome_object else ()))


@dataclass
class RoleState:
    """One person's fresh records in one role's system."""

    records: dict[str, Record] = field(default_factory=dict)  # object name -> the person's record
    outcomes: list[Record] = field(default_factory=list)  # every outcome record (the primary is in records)
    primary_id: str | None = None  # the record that carries the person (for MA writes)
    updated_at: datetime | None = None  # newest modification among the person's records
    extras: dict[str, Any] = field(default_factory=dict)  # the connector's own, e.g. history read along
    # Related records the mapping may state conditions on (e.g. the Account, Tasks and Events linked
    # to the person's Contact or Opportunity): object name -> every such record.
    related: dict[str, list[Record]] = field(default_factory=dict)

    def record(self, obj: str) -> Record | None:
        return self.records.get(obj)


@dataclass
class ChangeBatch:
    """What one poll of a connector's streams found, and the cursor state to save after it."""

    candidates: list[Candidate]
    cursors: dict[str, CursorState]  # stream name -> position to save once the candidates are resolved


@dataclass
class EventMeaning:
    """What a batch of inbox events says happened, in records the identity map understands."""

    changed: list[RecordRef] = field(default_factory=list)
    merges: list[tuple[RecordRef, list[RecordRef]]] = field(default_factory=list)  # survivor, merged away
    deletions: list[RecordRef] = field(default_factory=list)


@dataclass(frozen=True)
class ScanStream:
    """A full-scan stream of the backfill: every record of one kind, resumable."""

    name: str
    label: str  # for progress bars, e.g. "HubSpot contacts"


@dataclass
class ScanPage:
    """One committed page of a full scan."""

    candidates: list[Candidate]
    state: dict[str, Any]  # the position after this page (JSON-safe)
    records: int  # records read
    # (a record, a record that belongs to the same person once the first is linked): e.g. an
    # opportunity reached through its contact role.
    attachments: list[tuple[RecordRef, RecordRef]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """The state of one record of a person from ``at`` on (a snapshot, for replay through the stages)."""

    at: datetime
    role: str
    object: str
    record_id: str
    snapshot: Mapping[str, Any]
    created: str = ""  # outcome records: creation time, to find the primary one


@dataclass
class Provisioning:
    """What a connector created (or would create) for Closedloop, what an admin must add, what is wrong.

    Each line is ready for an admin to read (it names the system and the object).
    """

    created: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # settings that lower what can be measured


@dataclass(frozen=True)
class WriteTarget:
    """Where a person's mapped fields are written on the sales side: an object and its record."""

    object: str
    record: Record


@dataclass(frozen=True)
class InboxItem:
    """A stored webhook event, handed back to the connector that received it."""

    object_type: str
    record_id: str
    payload: Mapping[str, Any]


@runtime_checkable
class Connector(Protocol):
    """What every connector provides, whatever its role."""

    profile: Profile
    streams: tuple[str, ...]

    def poll(self, cursors: Mapping[str, CursorState], overlap: timedelta) -> ChangeBatch:
        """Every stream's changes since its saved position; an idle poll costs as few calls as the API allows."""
        ...

    def read_people(
        self, common_ids: Sequence[str], links: Mapping[str, Sequence[RecordRef]]
    ) -> dict[str, RoleState]:
        """Fresh state of many people, found by the common ID they carry or by their linked records."""
        ...

    def interpret(self, items: Sequence[InboxItem]) -> EventMeaning:
        """What stored webhook events of this connector say changed, merged or was deleted."""
        ...

    def candidates(self, refs: Sequence[RecordRef]) -> list[Candidate]:
        """What these records say about their people (common ID, match keys), read in batches."""
        ...

    def provision(self, mapping: SyncMapping, dry_run: bool) -> Provisioning:
        """Create (unless ``dry_run``) or check the fields the mapping makes Closedloop read and write."""
        ...

    # -- backfill ------------------------------------------------------------------------------------

    scan_streams: tuple[ScanStream, ...]

    def scan(
        self, stream: str, state: Mapping[str, Any], since: datetime | None, page_size: int
    ) -> Iterator[ScanPage]:
        """Every record of a scan stream from a saved position, page by page (changed since ``since``)."""
        ...

    def scan_total(self, stream: str) -> int | None:
        """How many records the stream holds, for progress (None when the API cannot say cheaply)."""
        ...

    def newest_changes(self) -> dict[str, datetime | None]:
        """Per polling stream, the newest modification time now: where polling starts after a backfill."""
        ...

    def history(self, states: Mapping[str, RoleState]) -> dict[str, list[HistoryEvent]]:
        """Per person, snapshots of their records over time, from the history the system keeps."""
        ...


@runtime_checkable
class MarketingConnector(Connector, Protocol):
    """The MA role: people live in one object; Closedloop writes the closed-loop values back onto it."""

    def update(self, updates: Mapping[str, Record]) -> list[RecordError]:
        """Update people by record ID; one error per failed record."""
        ...

    def create(self, key_field: str, rows: Mapping[str, Record]) -> tuple[dict[str, str], list[RecordError]]:
        """Create-or-update people keyed by the common-ID field: (common ID -> record ID, errors)."""
        ...

    def lifecycle_writes(self, stage: str | None, current: Mapping[str, Any]) -> Record:
        """The vendor's own lifecycle field for a standard stage, where it may move (forward only)."""
        ...


@runtime_checkable
class SalesConnector(Connector, Protocol):
    """The SFA role: people may live in several objects (e.g. Lead → Contact) and own outcome records."""

    def write_target(self, state: RoleState) -> WriteTarget | None:
        """Where person fields go now (e.g. the Contact once converted, else the open Lead); None: nowhere."""
        ...

    def upsert(
        self, obj: str, key_field: str, rows: Mapping[str, Record]
    ) -> tuple[dict[str, str], list[RecordError]]:
        """Create-or-update by the common-ID field: (common ID -> record ID, errors)."""
        ...

    def update(self, obj: str, updates: Mapping[str, Record]) -> list[RecordError]:
        """Update records of ``obj`` by record ID; one error per failed record."""
        ...

    def find_people(self, emails: Sequence[str]) -> dict[str, RecordRef]:
        """Person records not linked to anyone yet whose email is one of ``emails`` (normalised), by email."""
        ...

    def refs_for(self, record_ids: Sequence[str]) -> list[RecordRef]:
        """References for record IDs the system named (e.g. the matches of a duplicate rule)."""
        ...

    def as_created(self, obj: str, fields: Mapping[str, Any], record_id: str) -> Record:
        """The record as the system holds it right after creating it with ``fields`` (its defaults applied)."""
        ...

    def create_follow_up(
        self, record_id: str, owner: str | None, subject: str, due: date, description: str
    ) -> None:
        """A to-do for the person's owner about this record (an SLA breach); raises when refused."""
        ...

    def owner_names(self, ids: Sequence[str]) -> dict[str, str]:
        """Display names of the owners (users) with these ids; ids the system does not know are left out."""
        ...
