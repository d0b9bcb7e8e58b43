"""Salesforce in the sales (SFA) role: Leads, their converted Contacts, and Opportunities as outcomes.

Related records (the person's Account, and Events and Tasks on their Lead, Contact, Opportunity or
Account) are read only for the objects the mapping's stage conditions, times, reasons or SLAs name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sync.config import Settings
from sync.connectors.contract import (
    SFA,
    ChangeBatch,
    EventMeaning,
    HistoryEvent,
    InboxItem,
    Profile,
    Provisioning,
    Record,
    RoleState,
    ScanPage,
    ScanStream,
    WriteTarget,
)
from sync.connectors.errors import RecordError, RetryPolicy
from sync.connectors.incremental import CursorState, Incremental
from sync.connectors.ratelimit import DailyAllocation
from sync.connectors.salesforce import (
    IN_CLAUSE_CHUNK,
    SalesforceConnector,
    changed_since_soql,
    make_salesforce_client,
    soql_in,
    soql_quote,
)
from sync.connectors.salesforce_history import (
    FIELD_HISTORY,
    OPPORTUNITY_HISTORY_FIELDS,
    StageFlags,
    existing_events,
    field_history_events,
    opportunity_events,
    truthy,
)
from sync.identity import Candidate, RecordRef, normalise_email
from sync.mapping import Mapping as SyncMapping
from sync.metrics import count_calls
from sync.timeutil import parse_timestamp, to_sf_datetime

LEAD, CONTACT, OPPORTUNITY, CONTACT_ROLE = "Lead", "Contact", "Opportunity", "OpportunityContactRole"
ACCOUNT, EVENT, TASK = "Account", "Event", "Task"
STREAMS = (LEAD, CONTACT, OPPORTUNITY, CONTACT_ROLE)
RELATED = (ACCOUNT, EVENT, TASK)  # the related objects this connector reads when the mapping names them
ACTIVITIES = (EVENT, TASK)
# Documented key prefixes of the records an activity's WhoId / WhatId may point to.
KEY_PREFIXES = {"00Q": LEAD, "003": CONTACT, "006": OPPORTUNITY, "001": ACCOUNT}
PROFILE = Profile(
    connector="salesforce",
    role=SFA,
    person_objects=(LEAD, CONTACT),
    outcome_object=OPPORTUNITY,
    id_field="Id",
    email_field="Email",
    modified_field="LastModifiedDate",
    created_field="CreatedDate",
    owner_field="OwnerId",
    amount_field="Amount",
    status_field="Status",
)
# Fields read whatever the mapping says.
BASE_FIELDS = {
    LEAD: (
        "Email",
        "Status",
        "OwnerId",
        "IsConverted",
        "ConvertedContactId",
        "ConvertedOpportunityId",
        "ConvertedDate",
        "LastModifiedDate",
        "CreatedDate",
    ),
    CONTACT: ("Email", "OwnerId", "AccountId", "LastModifiedDate", "CreatedDate"),
    ACCOUNT: ("OwnerId", "LastModifiedDate", "CreatedDate"),
    EVENT: ("WhoId", "WhatId", "OwnerId", "LastModifiedDate", "CreatedDate"),
    TASK: ("WhoId", "WhatId", "OwnerId", "LastModifiedDate", "CreatedDate"),
    OPPORTUNITY: (
        "StageName",
        "IsClosed",
        "IsWon",
        "Amount",
        "CloseDate",
        "OwnerId",
        "LastModifiedDate",
        "CreatedDate",
    ),
}


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "attributes"}


def primary_opportunity(opportunities: Sequence[Record]) -> Record | None:
    """The person's primary opportunity: the most recently created one."""
    if not opportunities:
        return None
    return max(opportunities, key=lambda o: str(o.get("CreatedDate") or ""))


def open_edge(
    settings: Settings, policy: RetryPolicy, limit_storage: Any, http_session: Any = None
) -> SalesforceConnector:
    """The Salesforce HTTP edge, spending at most the configured share of the org's daily allocation."""
    client = make_salesforce_client(settings, http_session)
    return SalesforceConnector(
        client,
        DailyAllocation(share=settings.salesforce_api_share),
        policy,
        on_call=count_calls("salesforce"),
    )


class SalesforceSales:
    """The SFA role on a Salesforce org."""

    profile = PROFILE
    streams: tuple[str, ...] = STREAMS
    scan_streams = (
        ScanStream(LEAD, "Salesforce Leads"),
        ScanStream(CONTACT, "Salesforce Contacts"),
        ScanStream(CONTACT_ROLE, "Opportunity contact roles"),
    )

    def __init__(self, edge: SalesforceConnector, mapping: SyncMapping) -> None:
        self.edge = edge
        self.flags = StageFlags()
        self._created_defaults: dict[str, dict[str, Any]] = {}
        self.ext = mapping.identity.sfa_field
        self.email_field = next((f.sfa for f in mapping.fields if f.ma == "email"), "Email")
        # Only the related objects the mapping's stages and SLAs actually read cost queries.
        self.related = tuple(o for o in RELATED if o in mapping.related_objects() and mapping.sfa_fields(o))
        self.streams = (*STREAMS, *self.related)
        links = {LEAD: {"ConvertedAccountId"}, OPPORTUNITY: {"AccountId"}} if self.related else {}
        self.fields = {
            LEAD: sorted(
                set(BASE_FIELDS[LEAD]) | mapping.sfa_fields(LEAD) | {self.ext} | links.get(LEAD, set())
            ),
            CONTACT: sorted(set(BASE_FIELDS[CONTACT]) | mapping.sfa_fields(CONTACT) | {self.ext}),
            OPPORTUNITY: sorted(
                set(BASE_FIELDS[OPPORTUNITY])
                | mapping.sfa_fields(OPPORTUNITY)
                | links.get(OPPORTUNITY, set())
            ),
        }
        for obj in self.related:
            self.fields[obj] = sorted(set(BASE_FIELDS[obj]) | mapping.sfa_fields(obj))

    # -- change feed -------------------------------------------------------------------------------

    def poll(self, cursors: Mapping[str, CursorState], overlap: timedelta) -> ChangeBatch:
        """Leads, Contacts, Opportunities, contact roles and the related objects read, changed since each
        stream's watermark."""
        reads = {
            sobject: Incremental(cursors.get(sobject, CursorState()), overlap) for sobject in self.streams
        }
        # Every stream in one Composite call (five queries each): an idle poll costs one API call for
        # the four base streams, two once related objects are polled too.
        pages = self.edge.query_together(
            [changed_since_soql(s, self._poll_fields(s), read.lower_bound()) for s, read in reads.items()]
        )
        changed = {
            sobject: [rec for rec in rows if read.is_new(rec["Id"], str(rec.get("SystemModstamp")))]
            for (sobject, read), rows in zip(reads.items(), pages, strict=True)
        }
        return ChangeBatch(self._candidates_of(changed), {s: read.advance() for s, read in reads.items()})

    def _poll_fields(self, sobject: str) -> list[str]:
        if sobject in (LEAD, CONTACT):
            return [self.ext, self.email_field]
        if sobject == CONTACT_ROLE:
            return ["OpportunityId", "ContactId"]
        if sobject in ACTIVITIES:
            return ["WhoId", "WhatId"]
        return []

    def _person_candidate(self, sobject: str, rec: Record) -> Candidate:
        return Candidate.of(
            [RecordRef(SFA, sobject, rec["Id"])], rec.get(self.ext), rec.get(self.email_field)
        )

    def _candidates_of(self, changed: Mapping[str, Sequence[Record]]) -> list[Candidate]:
        """Candidates for changed records; opportunities reach their people through contact roles.

        An Account reaches its Contacts; an Event or Task the Lead or Contact it names (WhoId), or the
        Opportunity or Account it is about (WhatId), by the ID's key prefix.
        """
        out = [self._person_candidate(obj, rec) for obj in (LEAD, CONTACT) for rec in changed.get(obj, ())]
        refs: dict[str, set[str]] = {LEAD: set(), CONTACT: set(), OPPORTUNITY: set(), ACCOUNT: set()}
        refs[OPPORTUNITY].update(str(r["Id"]) for r in changed.get(OPPORTUNITY, ()))
        refs[ACCOUNT].update(str(r["Id"]) for r in changed.get(ACCOUNT, ()))
        refs[CONTACT].update(str(r["ContactId"]) for r in changed.get(CONTACT_ROLE, ()) if r.get("ContactId"))
        for obj in ACTIVITIES:
            for rec in changed.get(obj, ()):
                for ref in (rec.get("WhoId"), rec.get("WhatId")):
                    if ref and (kind := KEY_PREFIXES.get(str(ref)[:3])) is not None:
                        refs[kind].add(str(ref))
        if refs[OPPORTUNITY]:
            roles = self.edge.select_in(CONTACT_ROLE, ["ContactId"], "OpportunityId", list(refs[OPPORTUNITY]))
            refs[CONTACT] |= {r["ContactId"] for r in roles if r.get("ContactId")}
        keys = [self.ext, self.email_field]
        queries = [
            *_in_queries(CONTACT, keys, "Id", sorted(refs[CONTACT])),
            *_in_queries(CONTACT, keys, "AccountId", sorted(refs[ACCOUNT])),
            *_in_queries(LEAD, keys, "Id", sorted(refs[LEAD])),
        ]
        if queries:  # one Composite call for the people behind them all
            for (obj, _soql), rows in zip(
                queries, self.edge.query_together([q for _, q in queries]), strict=True
            ):
                out += [self._person_candidate(obj, r) for r in rows]
        return out

    # -- people ------------------------------------------------------------------------------------

    def read_people(
        self, common_ids: Sequence[str], links: Mapping[str, Sequence[RecordRef]]
    ) -> dict[str, RoleState]:
        """Lead, Contact and opportunities per person: by the common ID they carry, else by known links.

        Read in rounds of Composite calls (each up to five queries, one API call): the person
        records first; then converted contacts, contact roles, opportunities and the history of
        the leads and opportunities known so far; further rounds only for what a round discovered.
        A batch of people whose opportunities are known costs two calls, history included.
        """
        return _PeopleRead(self, list(common_ids), links).run()

    @staticmethod
    def _updated_at(records: Mapping[str, Record], outcomes: Sequence[Record]) -> Any:
        person = [records[o] for o in (LEAD, CONTACT) if o in records]
        times = [parse_timestamp(r.get("LastModifiedDate")) for r in (*person, *outcomes)]
        valid = [t for t in times if t is not None]
        return max(valid) if valid else None

    def write_target(self, state: RoleState) -> WriteTarget | None:
        """The Contact once converted, else the Lead while it is not converted."""
        contact, lead = state.record(CONTACT), state.record(LEAD)
        if contact is not None:
            return WriteTarget(CONTACT, contact)
        if lead is not None and not truthy(lead.get("IsConverted")):
            return WriteTarget(LEAD, lead)
        return None

    def upsert(
        self, obj: str, key_field: str, rows: Mapping[str, Record]
    ) -> tuple[dict[str, str], list[RecordError]]:
        return self.edge.upsert(obj, key_field, [{**fields, key_field: cid} for cid, fields in rows.items()])

    def update(self, obj: str, updates: Mapping[str, Record]) -> list[RecordError]:
        return self.edge.update(obj, [{"Id": rid, **fields} for rid, fields in updates.items()])

    def find_people(self, emails: Sequence[str]) -> dict[str, RecordRef]:
        """Contacts, else open Leads, with one of these emails and no common ID yet.

        SOQL compares email case-insensitively; the results are normalised again before matching.
        """
        wanted = {key: e for e in emails if (key := normalise_email(e)) is not None}
        found: dict[str, RecordRef] = {}
        for obj in (CONTACT, LEAD):
            fields = [self.email_field, self.ext] + (["IsConverted"] if obj == LEAD else [])
            for record in self.edge.select_in(obj, fields, self.email_field, list(wanted.values())):
                email = normalise_email(record.get(self.email_field))
                if email is not None and email in wanted and email not in found and not record.get(self.ext):
                    if obj == LEAD and truthy(record.get("IsConverted")):
                        continue
                    found[email] = RecordRef(SFA, obj, str(record["Id"]))
        return found

    def refs_for(self, record_ids: Sequence[str]) -> list[RecordRef]:
        """Lead and Contact IDs by their documented key prefixes (00Q, 003)."""
        objects = {"00Q": LEAD, "003": CONTACT}
        return [RecordRef(SFA, objects[rid[:3]], rid) for rid in record_ids if rid[:3] in objects]

    def as_created(self, obj: str, fields: Mapping[str, Any], record_id: str) -> Record:
        """Our fields plus the org's picklist and checkbox defaults (describe, read once per object)."""
        return {**self._defaults(obj), **fields, "Id": record_id}

    def _defaults(self, obj: str) -> dict[str, Any]:
        if obj not in self._created_defaults:
            defaults: dict[str, Any] = {}
            for name, described in self.edge.describe_fields(obj).items():
                picked = [p["value"] for p in described.get("picklistValues") or [] if p.get("defaultValue")]
                if picked:
                    defaults[name] = picked[0]
                elif described.get("type") == "boolean" and isinstance(described.get("defaultValue"), bool):
                    defaults[name] = described["defaultValue"]
            self._created_defaults[obj] = defaults
        return self._created_defaults[obj]

    def create_follow_up(
        self, record_id: str, owner: str | None, subject: str, due: date, description: str
    ) -> None:
        """A Task on the Lead or Contact, assigned to the person's owner when known."""
        task = {
            "WhoId": record_id,
            "Subject": subject,
            "Status": "Not Started",
            "ActivityDate": due.isoformat(),
            "Description": description,
        }
        if owner:
            task["OwnerId"] = owner
        _ids, errors = self.edge.create("Task", [task])
        if errors:
            raise RuntimeError(errors[0].message)

    # -- provisioning --------------------------------------------------------------------------------

    def provision(self, mapping: SyncMapping, dry_run: bool) -> Provisioning:
        """Check the fields the mapping names (an admin creates them); the common ID must be an External ID."""
        out = Provisioning()
        for obj in (LEAD, CONTACT, OPPORTUNITY, *self.related):
            described = self.edge.describe_fields(obj)
            for name in sorted(mapping.sfa_fields(obj)):
                if name not in described:
                    out.missing.append(
                        f"Salesforce: missing field {obj}.{name} (create it in Setup → Object Manager)"
                    )
            if obj in (LEAD, CONTACT) and self.ext in described and not described[self.ext].get("externalId"):
                out.problems.append(f"Salesforce {obj}.{self.ext} must be an External ID field")
        out.notices += self.history_notices(mapping)
        return out

    def history_notices(self, mapping: SyncMapping) -> list[str]:
        """Stages decided by Lead or Account fields whose history the org does not track (an admin's setting).

        Field history tracking is switched on per field; without it a change and its undoing
        between two polls leave no trace, so those stages fall back to the time the sync saw them.
        Opportunity stages always have OpportunityHistory.
        """
        notices = []
        for obj in (LEAD, *(o for o in self.related if o in FIELD_HISTORY)):
            stages = [s for s in mapping.stages if s.sfa is not None and s.sfa.object == obj]
            if not stages:
                continue
            soql = (
                "SELECT QualifiedApiName, IsFieldHistoryTracked FROM FieldDefinition "
                f"WHERE EntityDefinition.QualifiedApiName = '{obj}'"
            )
            tracked = {
                str(row["QualifiedApiName"])
                for row in self.edge.query(soql)
                if truthy(row.get("IsFieldHistoryTracked"))
            }
            for stage in stages:
                assert stage.sfa is not None
                untracked = sorted(f for f in stage.sfa.fields if f not in tracked and f != "IsConverted")
                if untracked:
                    names = ", ".join(f"{obj}.{f}" for f in untracked)
                    notices.append(
                        f"Salesforce: stage {stage.id}: {names} not history-tracked; a change between two "
                        f"polls is logged at the time the sync saw it (Setup → Object Manager → {obj} → "
                        "Fields → Set History Tracking)"
                    )
        return notices

    # -- backfill ------------------------------------------------------------------------------------

    def scan(
        self, stream: str, state: Mapping[str, Any], since: datetime | None, page_size: int
    ) -> Iterator[ScanPage]:
        """Every Lead, Contact or contact role by SOQL ordered by Id, resumed with ``WHERE Id > last``.

        A converted Lead also links its Contact and Opportunity; a contact role links its Opportunity
        to the Contact's person (an Opportunity without either belongs to nobody).
        """
        last_id: str | None = state.get("last_id")
        for chunk in _chunked(self.edge.query(self._scan_soql(stream, last_id, since)), page_size):
            last_id = str(chunk[-1]["Id"])
            if stream == CONTACT_ROLE:
                attachments = [
                    (
                        RecordRef(SFA, CONTACT, str(r["ContactId"])),
                        RecordRef(SFA, OPPORTUNITY, str(r["OpportunityId"])),
                    )
                    for r in chunk
                    if r.get("OpportunityId") and r.get("ContactId")
                ]
                yield ScanPage([], {"last_id": last_id}, len(chunk), attachments)
            else:
                yield ScanPage(
                    [self._scan_candidate(stream, r) for r in chunk], {"last_id": last_id}, len(chunk)
                )

    def _scan_soql(self, sobject: str, last_id: str | None, since: datetime | None) -> str:
        fields = {
            LEAD: ["Id", self.ext, self.email_field, "ConvertedContactId", "ConvertedOpportunityId"],
            CONTACT: ["Id", self.ext, self.email_field],
            CONTACT_ROLE: ["Id", "OpportunityId", "ContactId"],
        }[sobject]
        where = []
        if last_id:
            where.append(f"Id > {soql_quote(last_id)}")
        if since is not None and sobject != CONTACT_ROLE:
            where.append(f"SystemModstamp >= {to_sf_datetime(since)}")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return f"SELECT {', '.join(dict.fromkeys(fields))} FROM {sobject}{clause} ORDER BY Id ASC"

    def _scan_candidate(self, sobject: str, rec: Record) -> Candidate:
        refs = [RecordRef(SFA, sobject, str(rec["Id"]))]
        if sobject == LEAD:
            if rec.get("ConvertedContactId"):
                refs.append(RecordRef(SFA, CONTACT, str(rec["ConvertedContactId"])))
            if rec.get("ConvertedOpportunityId"):
                refs.append(RecordRef(SFA, OPPORTUNITY, str(rec["ConvertedOpportunityId"])))
        return Candidate.of(refs, rec.get(self.ext), rec.get(self.email_field))

    def scan_total(self, stream: str) -> int | None:
        return self.edge.count(stream)

    def newest_changes(self) -> dict[str, datetime | None]:
        out: dict[str, datetime | None] = {}
        for sobject in self.streams:
            soql = f"SELECT Id, SystemModstamp FROM {sobject} ORDER BY SystemModstamp DESC LIMIT 1"
            rows = list(self.edge.query(soql))
            out[sobject] = parse_timestamp(rows[0].get("SystemModstamp")) if rows else None
        return out

    def history(self, states: Mapping[str, RoleState]) -> dict[str, list[HistoryEvent]]:
        """LeadHistory, OpportunityHistory and AccountHistory of a batch of people, as snapshots.

        Read with the people (no more calls), else one query each. Leads and Accounts are rewound
        through their field history; Contacts, Events and Tasks exist from their creation as they are.
        """
        if all(HISTORY in s.extras for s in states.values()):
            rows = {k: v for s in states.values() for k, v in s.extras[HISTORY].items()}
        else:
            rows = self._history_of(states)
        for state in states.values():
            for opp in state.outcomes:
                self.flags.learn(opp)
        out: dict[str, list[HistoryEvent]] = {}
        for cid, state in states.items():
            events: list[HistoryEvent] = []
            tracked = [(LEAD, r) for r in (state.record(LEAD),) if r is not None]
            tracked += [(o, r) for o in FIELD_HISTORY if o in self.related for r in state.related.get(o, ())]
            for obj, record in tracked:
                events += field_history_events(obj, record, rows.get(str(record["Id"]), []))
            untracked = [(CONTACT, r) for r in (state.record(CONTACT),) if r is not None]
            untracked += [(o, r) for o in ACTIVITIES if o in self.related for r in state.related.get(o, ())]
            for obj, record in untracked:
                events += existing_events(obj, record)
            for opp in state.outcomes:
                events += opportunity_events(opp, rows.get(str(opp["Id"]), []), self.flags)
            out[cid] = events
        return out

    def _history_of(self, states: Mapping[str, RoleState]) -> dict[str, list[Record]]:
        """History rows by parent record ID, for states read without them."""
        rows: dict[str, list[Record]] = {}
        for obj in (LEAD, *(o for o in self.related if o in FIELD_HISTORY)):
            history, fields, key = FIELD_HISTORY[obj]
            ids = [str(r["Id"]) for s in states.values() for r in _records_of(s, obj)]
            rows |= self._history_rows(history, fields, key, ids)
        opp_ids = [str(o["Id"]) for s in states.values() for o in s.outcomes]
        return rows | self._history_rows(
            "OpportunityHistory", OPPORTUNITY_HISTORY_FIELDS, "OpportunityId", opp_ids
        )

    def _history_rows(
        self, sobject: str, fields: Sequence[str], key: str, ids: list[str]
    ) -> dict[str, list[Record]]:
        out: dict[str, list[Record]] = {}
        for row in self.edge.select_in(sobject, list(fields), key, ids) if ids else []:
            out.setdefault(str(row[key]), []).append(row)
        return out

    # -- outbound messages ---------------------------------------------------------------------------

    def interpret(self, items: Sequence[InboxItem]) -> EventMeaning:
        """Every notification is a change of its record (outbound messages carry no deletions)."""
        return EventMeaning(changed=[RecordRef(SFA, i.object_type, i.record_id) for i in items])

    def candidates(self, refs: Sequence[RecordRef]) -> list[Candidate]:
        """Read what identity needs of Leads and Contacts; opportunities and roles resolve via contacts."""
        by_object: dict[str, list[str]] = {}
        for ref in refs:
            by_object.setdefault(ref.object_type, []).append(ref.record_id)
        changed: dict[str, list[Record]] = {}
        for obj, ids in by_object.items():
            ids = list(dict.fromkeys(ids))
            if obj in (LEAD, CONTACT):
                changed[obj] = self.edge.select_in(obj, [self.ext, self.email_field], "Id", ids)
            elif obj == CONTACT_ROLE:
                changed[obj] = self.edge.select_in(obj, ["OpportunityId", "ContactId"], "Id", ids)
            elif obj in ACTIVITIES:
                changed[obj] = self.edge.select_in(obj, ["WhoId", "WhatId"], "Id", ids)
            else:
                changed[obj] = [{"Id": i} for i in ids]
        return self._candidates_of(changed)

    def owner_names(self, ids: Sequence[str]) -> dict[str, str]:
        """``SELECT Id, Name FROM User WHERE Id IN (...)``, 200 ids per query."""
        rows = self.edge.select_in("User", ["Name"], "Id", list(ids))
        return {str(r["Id"]): str(r["Name"]) for r in rows if r.get("Name")}


HISTORY = "history"  # RoleState.extras: history rows by lead, account or opportunity ID, read with the people
HISTORY_PARENTS = ("LeadId", "AccountId", "OpportunityId")


def _records_of(state: RoleState, obj: str) -> list[Record]:
    """A person's record of a person object, or their related records of ``obj``."""
    record = state.record(obj)
    return [record] if record is not None else list(state.related.get(obj, ()))


class _PeopleRead:
    """One batch read of people in Composite rounds (see :meth:`SalesforceSales.read_people`)."""

    def __init__(
        self, sales: SalesforceSales, common_ids: list[str], links: Mapping[str, Sequence[RecordRef]]
    ):
        self.sales = sales
        self.common_ids = common_ids
        self.wanted = set(common_ids)
        self.owner: dict[str, dict[str, str]] = {
            LEAD: {},
            CONTACT: {},
            OPPORTUNITY: {},
        }  # object -> id -> cid
        for cid in common_ids:
            for ref in links.get(cid, ()):
                if ref.role == SFA and ref.object_type in self.owner:
                    self.owner[ref.object_type][ref.record_id] = cid
        self.people: dict[str, dict[str, Record]] = {cid: {} for cid in common_ids}
        self.opportunities: dict[str, dict[str, Record]] = {}
        self.history: dict[str, list[Record]] = {}
        self.read: dict[str, set[str]] = {CONTACT: set(), OPPORTUNITY: set(), CONTACT_ROLE: set()}
        self.history_read: set[str] = set()
        self.related: dict[str, dict[str, Record]] = {
            obj: {} for obj in sales.related
        }  # object -> id -> record
        self.related_read: dict[str, set[str]] = {ACCOUNT: set(), "WhoId": set(), "WhatId": set()}

    def run(self) -> dict[str, RoleState]:
        fields, ext = self.sales.fields, self.sales.ext
        first = [
            *_in_queries(LEAD, fields[LEAD], ext, self.common_ids),
            *_in_queries(LEAD, fields[LEAD], "Id", list(self.owner[LEAD])),
            *_in_queries(CONTACT, fields[CONTACT], ext, self.common_ids),
            *_in_queries(CONTACT, fields[CONTACT], "Id", list(self.owner[CONTACT])),
        ]
        self.read[CONTACT].update(self.owner[CONTACT])  # the linked ones are in the first round
        queries: list[tuple[str, str]] = first
        while queries:
            results = self.sales.edge.query_together([soql for _kind, soql in queries])
            for (kind, _soql), rows in zip(queries, results, strict=True):
                self._take(kind, rows)
            queries = self._next_round()
        return self._states()

    def _take(self, kind: str, rows: list[Record]) -> None:
        for row in rows:
            if kind == LEAD:
                person = self._person_of(row, LEAD)
                if person is not None:
                    self.people[person][LEAD] = _strip(row)
                    for name, obj in (
                        ("ConvertedContactId", CONTACT),
                        ("ConvertedOpportunityId", OPPORTUNITY),
                    ):
                        if row.get(name):
                            self.owner[obj].setdefault(str(row[name]), person)
            elif kind == CONTACT:
                self.read[CONTACT].add(str(row["Id"]))
                person = self._person_of(row, CONTACT)
                if person is not None:
                    self.people[person][CONTACT] = _strip(row)
                    self.owner[CONTACT][str(row["Id"])] = person
            elif kind == CONTACT_ROLE:
                person = self.owner[CONTACT].get(str(row.get("ContactId")))
                if person is not None and row.get("OpportunityId"):
                    self.owner[OPPORTUNITY].setdefault(str(row["OpportunityId"]), person)
            elif kind == OPPORTUNITY:
                self.read[OPPORTUNITY].add(str(row["Id"]))
                person = self.owner[OPPORTUNITY].get(str(row["Id"]))
                if person is not None:
                    self.opportunities.setdefault(person, {})[str(row["Id"])] = _strip(row)
            elif kind in self.related:
                self.related[kind][str(row["Id"])] = _strip(row)
            else:  # LeadHistory / AccountHistory / OpportunityHistory rows
                key = str(next(row[k] for k in HISTORY_PARENTS if row.get(k)))
                self.history.setdefault(key, []).append(row)

    def _person_of(self, record: Record, obj: str) -> str | None:
        ext = record.get(self.sales.ext)
        if isinstance(ext, str) and ext in self.wanted:
            return ext
        return self.owner[obj].get(str(record["Id"]))

    def _next_round(self) -> list[tuple[str, str]]:
        """What the last round made known and nobody has read yet."""
        fields = self.sales.fields
        contacts = [i for i in self.owner[CONTACT] if i not in self.read[CONTACT]]
        self.read[CONTACT].update(contacts)
        roles_of = [i for i in self.owner[CONTACT] if i not in self.read[CONTACT_ROLE]]
        self.read[CONTACT_ROLE].update(roles_of)
        opps = [i for i in self.owner[OPPORTUNITY] if i not in self.read[OPPORTUNITY]]
        self.read[OPPORTUNITY].update(opps)
        leads = [
            str(r[LEAD]["Id"])
            for r in self.people.values()
            if LEAD in r and str(r[LEAD]["Id"]) not in self.history_read
        ]
        self.history_read.update(leads)
        opp_history = [i for i in opps if i not in self.history_read]
        self.history_read.update(opp_history)
        lead_history, lead_history_fields, lead_key = FIELD_HISTORY[LEAD]
        return [
            *_in_queries(CONTACT, fields[CONTACT], "Id", contacts),
            *_in_queries(CONTACT_ROLE, ["OpportunityId", "ContactId"], "ContactId", roles_of),
            *_in_queries(OPPORTUNITY, fields[OPPORTUNITY], "Id", opps),
            *_in_queries(lead_history, lead_history_fields, lead_key, leads),
            *_in_queries("OpportunityHistory", OPPORTUNITY_HISTORY_FIELDS, "OpportunityId", opp_history),
            *self._related_round(),
        ]

    def _related_round(self) -> list[tuple[str, str]]:
        """Accounts (with their history) and activities of the records known so far, not read yet.

        Account IDs come from the records read (a Contact's AccountId, a converted Lead's, an
        Opportunity's), so an Account, its history and the activities on it share one round.
        """
        if not self.related:
            return []
        fields, read = self.sales.fields, self.related_read
        accounts = [a for a in self._account_ids() if a not in read[ACCOUNT]]
        who = [i for i in self._who_ids() if i not in read["WhoId"]]
        what = [i for i in (*self.owner[OPPORTUNITY], *self._account_ids()) if i not in read["WhatId"]]
        read[ACCOUNT].update(accounts)
        read["WhoId"].update(who)
        read["WhatId"].update(what)
        queries: list[tuple[str, str]] = []
        if ACCOUNT in self.related:
            history, history_fields, key = FIELD_HISTORY[ACCOUNT]
            queries += _in_queries(ACCOUNT, fields[ACCOUNT], "Id", accounts)
            queries += _in_queries(history, history_fields, key, accounts)
        for obj in ACTIVITIES:
            if obj in self.related:
                queries += _either_queries(obj, fields[obj], {"WhoId": who, "WhatId": what})
        return queries

    def _account_ids(self) -> list[str]:
        found = [
            a
            for cid, records in self.people.items()
            for a in _account_ids_of(records, list(self.opportunities.get(cid, {}).values()))
        ]
        return list(dict.fromkeys(found))

    def _who_ids(self) -> list[str]:
        leads = [str(r[LEAD]["Id"]) for r in self.people.values() if LEAD in r]
        return list(dict.fromkeys([*leads, *self.owner[LEAD], *self.owner[CONTACT]]))

    def _related_of(
        self, records: Mapping[str, Record], outcomes: Sequence[Record]
    ) -> dict[str, list[Record]]:
        """The person's Account(s), and the activities on their Lead, Contact, Opportunities or Account."""
        contact, lead = records.get(CONTACT) or {}, records.get(LEAD) or {}
        account_ids = _account_ids_of(records, outcomes)
        who = {str(r["Id"]) for r in (contact, lead) if r}
        what = {str(o["Id"]) for o in outcomes} | set(account_ids)
        out: dict[str, list[Record]] = {}
        for obj, found in self.related.items():
            if obj == ACCOUNT:
                out[obj] = [found[a] for a in account_ids if a in found]
            else:
                out[obj] = [r for r in found.values() if r.get("WhoId") in who or r.get("WhatId") in what]
        return out

    def _states(self) -> dict[str, RoleState]:
        states: dict[str, RoleState] = {}
        for cid, records in self.people.items():
            outcomes = list(self.opportunities.get(cid, {}).values())
            primary = primary_opportunity(outcomes)
            if primary is not None:
                records[OPPORTUNITY] = primary
            if records:
                related = self._related_of(records, outcomes)
                ids = [str(r["Id"]) for r in (*records.values(), *outcomes, *related.get(ACCOUNT, ()))]
                history = {i: self.history.get(i, []) for i in ids}
                states[cid] = RoleState(
                    records=records,
                    outcomes=outcomes,
                    updated_at=SalesforceSales._updated_at(records, outcomes),
                    extras={HISTORY: history},
                    related=related,
                )
        return states


def _in_queries(
    sobject: str, fields: Sequence[str], key: str, values: Sequence[str]
) -> list[tuple[str, str]]:
    """(kind, SOQL) selecting ``fields`` of ``sobject`` whose ``key`` is one of ``values``, 200 at a time."""
    cols = ", ".join(dict.fromkeys(["Id", *fields]))
    unique = list(dict.fromkeys(v for v in values if v))
    return [
        (sobject, f"SELECT {cols} FROM {sobject} WHERE {key} IN {soql_in(unique[i : i + IN_CLAUSE_CHUNK])}")
        for i in range(0, len(unique), IN_CLAUSE_CHUNK)
    ]


def _account_ids_of(records: Mapping[str, Record], outcomes: Sequence[Record]) -> list[str]:
    """A person's Account IDs: their Contact's, their converted Lead's and their Opportunities'."""
    contact, lead = records.get(CONTACT) or {}, records.get(LEAD) or {}
    found = [
        contact.get("AccountId"),
        lead.get("ConvertedAccountId"),
        *(o.get("AccountId") for o in outcomes),
    ]
    return list(dict.fromkeys(str(a) for a in found if a))


def _either_queries(
    sobject: str, fields: Sequence[str], keys: Mapping[str, Sequence[str]]
) -> list[tuple[str, str]]:
    """(kind, SOQL) selecting ``sobject`` records whose key field is one of its values (any key, ORed).

    The values of all keys together are cut 200 at a time, so a small batch costs one query.
    """
    cols = ", ".join(dict.fromkeys(["Id", *fields]))
    pairs = [(key, v) for key, values in keys.items() for v in dict.fromkeys(v for v in values if v)]
    out = []
    for i in range(0, len(pairs), IN_CLAUSE_CHUNK):
        chunk = pairs[i : i + IN_CLAUSE_CHUNK]
        by_key: dict[str, list[str]] = {}
        for key, value in chunk:
            by_key.setdefault(key, []).append(value)
        where = " OR ".join(f"{key} IN {soql_in(values)}" for key, values in by_key.items())
        out.append((sobject, f"SELECT {cols} FROM {sobject} WHERE {where}"))
    return out


def _chunked(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for rec in records:
        chunk.append(rec)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
