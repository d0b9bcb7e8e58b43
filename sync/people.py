"""Fresh state of a batch of people, read from both systems in as few calls as the APIs allow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sync.connectors.hubspot import HubSpotConnector
from sync.connectors.salesforce import SalesforceConnector
from sync.identity import RecordRef
from sync.mapping import Mapping
from sync.stages import PersonView
from sync.timeutil import parse_timestamp

# Properties and fields the engine reads whatever the mapping says.
BASE_MA_PROPERTIES = (
    "email",
    "lifecyclestage",
    "hubspotscore",
    "hs_analytics_source",
    "hs_analytics_source_data_1",
    "hs_lead_status",
    "lastmodifieddate",
    "createdate",
)
BASE_LEAD_FIELDS = (
    "Email",
    "Status",
    "OwnerId",
    "IsConverted",
    "ConvertedContactId",
    "ConvertedOpportunityId",
    "ConvertedDate",
    "LastModifiedDate",
    "CreatedDate",
)
BASE_CONTACT_FIELDS = ("Email", "OwnerId", "AccountId", "LastModifiedDate", "CreatedDate")
BASE_OPPORTUNITY_FIELDS = (
    "StageName",
    "IsClosed",
    "IsWon",
    "Amount",
    "CloseDate",
    "OwnerId",
    "LastModifiedDate",
    "CreatedDate",
)


@dataclass
class PersonState:
    """Everything known about one person right now, from both systems."""

    common_id: str
    hubspot_id: str | None = None
    ma: dict[str, Any] | None = None
    ma_updated_at: datetime | None = None
    lead: dict[str, Any] | None = None
    contact: dict[str, Any] | None = None
    opportunities: list[dict[str, Any]] = field(default_factory=list)

    @property
    def opportunity(self) -> dict[str, Any] | None:
        """The primary opportunity: the most recently created one."""
        if not self.opportunities:
            return None
        return max(self.opportunities, key=lambda o: str(o.get("CreatedDate") or ""))

    def record(self, sobject: str | None) -> dict[str, Any] | None:
        """The person's Lead, Contact or primary Opportunity."""
        return {"Lead": self.lead, "Contact": self.contact, "Opportunity": self.opportunity}.get(
            sobject or ""
        )

    def view(self) -> PersonView:
        """The read-only view the stage engine and mapping evaluate."""
        return PersonView(ma=self.ma, lead=self.lead, contact=self.contact, opportunity=self.opportunity)

    def sfa_target(self) -> tuple[str, dict[str, Any]] | None:
        """Where person fields are written in Salesforce: the Contact once converted, else the Lead."""
        if self.contact is not None:
            return "Contact", self.contact
        if self.lead is not None and not _truthy(self.lead.get("IsConverted")):
            return "Lead", self.lead
        return None

    def sfa_updated_at(self) -> datetime | None:
        """The newest modification time among the person's Salesforce records."""
        times = [
            parse_timestamp(rec.get("LastModifiedDate"))
            for rec in (self.lead, self.contact, *self.opportunities)
            if rec is not None
        ]
        valid = [t for t in times if t is not None]
        return max(valid) if valid else None


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "attributes"}


class StateReader:
    """Reads the fresh state of many people at once."""

    def __init__(self, mapping: Mapping, hubspot: HubSpotConnector, salesforce: SalesforceConnector) -> None:
        self.mapping = mapping
        self.hubspot = hubspot
        self.salesforce = salesforce
        self.ext_field = mapping.identity.sfa_field
        self.ma_properties = sorted(
            set(BASE_MA_PROPERTIES) | mapping.ma_properties() | _closed_loop_props(mapping)
        )
        self.lead_fields = sorted(set(BASE_LEAD_FIELDS) | mapping.sfa_fields("Lead") | {self.ext_field})
        self.contact_fields = sorted(
            set(BASE_CONTACT_FIELDS) | mapping.sfa_fields("Contact") | {self.ext_field}
        )
        self.opp_fields = sorted(set(BASE_OPPORTUNITY_FIELDS) | mapping.sfa_fields("Opportunity"))

    def read(self, common_ids: Sequence[str], links: dict[str, list[RecordRef]]) -> dict[str, PersonState]:
        """State per common ID; records are found by common ID first, then by linked record IDs."""
        states = {cid: PersonState(common_id=cid) for cid in common_ids}
        self._read_hubspot(states, links)
        self._read_salesforce(states, links)
        return states

    def _read_hubspot(self, states: dict[str, PersonState], links: dict[str, list[RecordRef]]) -> None:
        owner: dict[str, str] = {}
        for cid in states:
            for ref in links.get(cid, []):
                if ref.system == "hubspot":
                    owner[ref.record_id] = cid
        if not owner:
            return
        contacts = self.hubspot.read(list(owner), self.ma_properties)
        for hid, contact in contacts.items():
            state = states[owner[hid]]
            # Several HubSpot records for one person: keep the most recently modified.
            if state.ma_updated_at is None or (
                contact.updated_at and contact.updated_at > state.ma_updated_at
            ):
                state.hubspot_id = hid
                state.ma = contact.properties
                state.ma_updated_at = contact.updated_at

    def _owner(
        self, record: dict[str, Any], linked: dict[str, str], states: dict[str, PersonState]
    ) -> str | None:
        """Whose record this is: by the common ID it carries, else by a known link."""
        ext = record.get(self.ext_field)
        if isinstance(ext, str) and ext in states:
            return ext
        return linked.get(str(record["Id"]))

    def _read_salesforce(self, states: dict[str, PersonState], links: dict[str, list[RecordRef]]) -> None:
        cids = list(states)
        linked: dict[str, dict[str, str]] = {"Lead": {}, "Contact": {}, "Opportunity": {}}
        for cid in cids:
            for ref in links.get(cid, []):
                if ref.system == "salesforce" and ref.object_type in linked:
                    linked[ref.object_type][ref.record_id] = cid

        leads = self.salesforce.select_in("Lead", self.lead_fields, self.ext_field, cids)
        missing = [i for i in linked["Lead"] if i not in {r["Id"] for r in leads}]
        if missing:
            leads += self.salesforce.select_in("Lead", self.lead_fields, "Id", missing)
        for lead in leads:
            lead_owner = self._owner(lead, linked["Lead"], states)
            if lead_owner is not None:
                states[lead_owner].lead = _strip(lead)
                converted = lead.get("ConvertedContactId")
                if converted:
                    linked["Contact"].setdefault(converted, lead_owner)

        contacts = self.salesforce.select_in("Contact", self.contact_fields, self.ext_field, cids)
        missing = [i for i in linked["Contact"] if i not in {r["Id"] for r in contacts}]
        if missing:
            contacts += self.salesforce.select_in("Contact", self.contact_fields, "Id", missing)
        contact_owner: dict[str, str] = {}
        for contact in contacts:
            person = self._owner(contact, linked["Contact"], states)
            if person is not None:
                states[person].contact = _strip(contact)
                contact_owner[contact["Id"]] = person

        opp_owner: dict[str, str] = dict(linked["Opportunity"])
        if contact_owner:
            roles = self.salesforce.select_in(
                "OpportunityContactRole", ["OpportunityId", "ContactId"], "ContactId", list(contact_owner)
            )
            for role in roles:
                opp_owner.setdefault(role["OpportunityId"], contact_owner[role["ContactId"]])
        for state in states.values():
            converted_opp = (state.lead or {}).get("ConvertedOpportunityId")
            if converted_opp:
                opp_owner.setdefault(converted_opp, state.common_id)
        if opp_owner:
            for opp in self.salesforce.select_in("Opportunity", self.opp_fields, "Id", list(opp_owner)):
                states[opp_owner[opp["Id"]]].opportunities.append(_strip(opp))


def _closed_loop_props(mapping: Mapping) -> set[str]:
    return {entry.ma for entry in mapping.closed_loop}
