"""The Marketo sandbox as the scripted sales team and the verifier see a marketing tool.

Both were written against HubSpot contacts (``contacts()``, ``get_contact``, ``update_contact``
with HubSpot property names). This view shows each Marketo lead under those names: its score as
``hubspotscore``, the name of its acquisition program as ``hs_analytics_source_data_1`` (the
campaign), and Closedloop's own ``closedloop_*`` fields as they are. The team's one marketing-side
action, recycling (HubSpot lead status ``BAD_TIMING``), becomes the Marketo lead status
``Recycled``, which is what ``mappings/marketo-salesforce.yaml`` reads.
"""

from __future__ import annotations

from typing import Any

from sandboxes.marketo import MarketoSandbox, Source
from sandboxes.sales_team import RECYCLE_LEAD_STATUS

RECYCLED_STATUS = "Recycled"
SALES_SOURCE = Source("Sales Insight", reason="Recycled by sales")


class MarketoPeople:
    """HubSpot-shaped contacts over the Marketo sandbox's leads (for the sales team and verify)."""

    def __init__(self, sandbox: MarketoSandbox) -> None:
        self.sandbox = sandbox

    def _programs(self) -> dict[int, str]:
        return {p.id: p.name for p in self.sandbox.programs()}

    def _properties(self, lead: dict[str, Any], programs: dict[int, str]) -> dict[str, Any]:
        props = {k: v for k, v in lead.items() if k.startswith("closedloop_")}
        program = lead.get("acquisitionProgramId")
        props.update(
            {
                "email": lead.get("email"),
                "hubspotscore": lead.get("leadScore"),
                "hs_analytics_source_data_1": programs.get(int(program)) if program else None,
                "hs_lead_status": lead.get("leadStatus"),
            }
        )
        return props

    def contacts(self) -> list[dict[str, Any]]:
        programs = self._programs()
        return [
            {"id": str(lead["id"]), "archived": False, "properties": self._properties(lead, programs)}
            for lead in self.sandbox.leads()
        ]

    def get_contact(self, contact_id: str) -> dict[str, Any] | None:
        lead = self.sandbox.get_lead(int(contact_id))
        return self._properties(lead, self._programs()) if lead is not None else None

    def update_contact(self, contact_id: str, properties: dict[str, str | None]) -> None:
        """Only recycling is a marketing-side action of the team."""
        if properties != {"hs_lead_status": RECYCLE_LEAD_STATUS}:
            raise ValueError(f"the Marketo view only recycles leads, not {sorted(properties)}")
        self.sandbox.update_lead(int(contact_id), {"leadStatus": RECYCLED_STATUS}, source=SALES_SOURCE)
