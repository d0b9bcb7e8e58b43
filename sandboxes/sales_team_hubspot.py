"""The scripted sales team working deals in HubSpot, for portals that are both marketing and sales.

When one HubSpot portal plays both roles there is no Salesforce Lead: the handover marks the
contact for sales by setting its lead status to ``NEW``. The team discovers those contacts, plans
each fate exactly like the Salesforce team (same rates, same per-person random stream), and works
it the way reps click through HubSpot: the lead status for first touch, disqualification and
recycling; a deal in the sales pipeline, associated with the contact, for qualification, proposal,
negotiation and the win or loss (with ``closed_lost_reason``). Executed actions are recorded with
the same details as the Salesforce team's, so :class:`~sandboxes.ground_truth.GroundTruth` is
built the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from sandboxes.common import SimClock
from sandboxes.sales_team import (
    OPEN_STATUS,
    RECYCLE_LEAD_STATUS,
    ActionKind,
    ContactResolver,
    PlannedAction,
    ScriptedTeam,
    TeamRates,
    _Person,
)

HANDED_LEAD_STATUS = "NEW"  # set at the handover: the contact is sales' now
LEAD_STATUS_OF_ACTION: dict[ActionKind, str] = {
    "contact": "IN_PROGRESS",
    "disqualify": "UNQUALIFIED",
    "recycle": RECYCLE_LEAD_STATUS,
    "convert": "OPEN_DEAL",
}
# Stages of HubSpot's default "Sales Pipeline" each deal action moves the deal to.
DEFAULT_DEAL_STAGES: dict[ActionKind, str] = {
    "convert": "qualifiedtobuy",
    "propose": "presentationscheduled",
    "negotiate": "contractsent",
    "win": "closedwon",
    "lose": "closedlost",
}


class HubSpotDealsTarget(Protocol):
    """The part of ``HubSpotSandbox`` the HubSpot team uses."""

    def update_contact(self, contact_id: str, properties: dict[str, str | None]) -> None: ...

    def contacts(self) -> list[dict[str, Any]]: ...

    def get_contact(self, contact_id: str) -> dict[str, str | None] | None: ...

    def find_contacts(self, prop: str, value: str) -> list[str]: ...

    def property_history(self, object_type: str, record_id: str, name: str) -> list[tuple[str, datetime]]: ...

    def seed_deal(
        self, properties: dict[str, str | None], contact_ids: list[str] | tuple[str, ...] = ()
    ) -> str: ...

    def update_deal(self, deal_id: str, properties: dict[str, str | None]) -> None: ...


class HubSpotSalesTeam(ScriptedTeam):
    """Works every contact handed to sales in a HubSpot-only portal; see the module docstring."""

    def __init__(
        self,
        hubspot: HubSpotDealsTarget,
        clock: SimClock,
        seed: int,
        rates: TeamRates | None = None,
        contact_resolver: ContactResolver | None = None,
        pipeline: str = "default",
        stages: dict[ActionKind, str] | None = None,
    ) -> None:
        super().__init__(hubspot, clock, seed, rates, contact_resolver)
        self.portal = hubspot
        self.pipeline = pipeline
        self.stages = stages or DEFAULT_DEAL_STAGES

    def _new_leads(self) -> list[dict[str, Any]]:
        """Contacts whose lead status says "handed to sales", as Lead-shaped dicts, oldest first."""
        leads = []
        for contact_id in self.portal.find_contacts("hs_lead_status", HANDED_LEAD_STATUS):
            if contact_id in self._people:
                continue
            props = self.portal.get_contact(contact_id) or {}
            handed = [
                at for value, at in self.portal.property_history("contacts", contact_id, "hs_lead_status")
            ]
            leads.append(
                {
                    "Id": contact_id,
                    "Email": props.get("email"),
                    "Company": props.get("company"),
                    "Status": OPEN_STATUS,
                    "IsConverted": False,
                    "Closedloop_Id__c": props.get("closedloop_id"),
                    "CreatedDate": handed[-1].astimezone(UTC).isoformat() if handed else None,
                }
            )
        return sorted(leads, key=lambda lead: str(lead["CreatedDate"]))

    def _apply(self, person: _Person, action: PlannedAction, at: datetime) -> dict[str, Any]:
        kind = action.kind
        contact_id = person.lead_id
        if kind in ("contact", "disqualify", "recycle"):
            status = LEAD_STATUS_OF_ACTION[kind]
            self.portal.update_contact(contact_id, {"hs_lead_status": status})
            return {"hs_lead_status": status, "hubspot_id": contact_id}
        if kind == "convert":
            stage = self.stages["convert"]
            new_deal = self.portal.seed_deal(
                {
                    "dealname": f"{person.company} - New Business",
                    "pipeline": self.pipeline,
                    "dealstage": stage,
                    "closedate": action.details["expected_close"].isoformat(),
                },
                [contact_id],
            )
            person.opportunity_id = new_deal
            self.portal.update_contact(contact_id, {"hs_lead_status": LEAD_STATUS_OF_ACTION["convert"]})
            return {"stage_name": stage, "opportunity_id": new_deal, "contact_id": contact_id}
        if person.opportunity_id is None:
            raise LookupError(f"contact {contact_id} has no deal")
        deal_id: str = person.opportunity_id
        fields: dict[str, str | None] = {"dealstage": self.stages[kind]}
        amount = action.details.get("amount")
        if kind in ("propose", "negotiate", "win") and amount is not None:
            fields["amount"] = str(amount)
        if kind in ("win", "lose"):
            fields["closedate"] = at.date().isoformat()
        if kind == "lose":
            fields["closed_lost_reason"] = action.details["reason"]
        self.portal.update_deal(deal_id, fields)
        return {
            "stage_name": fields["dealstage"],
            "opportunity_id": deal_id,
            "amount": amount,
            "close_date": fields.get("closedate"),
            "loss_reason": fields.get("closed_lost_reason"),
        }
