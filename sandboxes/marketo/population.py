"""The seeded population of :mod:`sandboxes.population`, written into the Marketo sandbox.

The planned contacts are the same people, campaigns, scores and MQL times as for HubSpot; this
adapter plays the part of ``HubSpotSeedTarget`` so :class:`sandboxes.population.PopulationSeeder`
drives Marketo unchanged. In Marketo terms:

- each campaign is a program (type and channel from its source), and a lead's
  ``acquisitionProgramId`` is the program whose form created it (campaign attribution);
- a lead is created by a form fill-out with its first score in ``leadScore`` and ``leadStatus``
  "New" (or "MQL" when it qualifies at once);
- a later MQL is a scoring campaign's Change Score followed by the MQL campaign setting
  ``leadStatus`` to "MQL", both at the planned time.
"""

from __future__ import annotations

from collections.abc import Sequence

from sandboxes.common import SimClock
from sandboxes.marketo import FLOW_SOURCE, FORM_SOURCE, MarketoSandbox
from sandboxes.population import CAMPAIGNS, Campaign, PlannedContact, PopulationSeeder

MQL_STATUS = "MQL"
NEW_STATUS = "New"
# HubSpot's stock source -> (Marketo person source, program type, program channel)
_SOURCES = {
    "PAID_SEARCH": ("Paid Search", "Default", "Online Advertising"),
    "ORGANIC_SEARCH": ("Organic Search", "Default", "Content"),
    "EMAIL_MARKETING": ("Email", "Email", "Email Send"),
    "SOCIAL_MEDIA": ("Social Media", "Default", "Social Media"),
    "REFERRALS": ("Referral", "Default", "Referral"),
    "OFFLINE": ("Tradeshow", "Event", "Tradeshow"),
    "DIRECT_TRAFFIC": ("Website", "Default", "Web Content"),
}


class MarketoSeedTarget:
    """Receives HubSpot-shaped seed writes and makes them Marketo form fills and flow steps."""

    def __init__(self, sandbox: MarketoSandbox, campaigns: Sequence[Campaign] = CAMPAIGNS) -> None:
        self.sandbox = sandbox
        self.program_ids: dict[str, int] = {}
        for campaign in campaigns:
            _label, program_type, channel = _SOURCES.get(campaign.source, ("Other", "Default", "Content"))
            if campaign.name.startswith("webinar"):
                program_type, channel = "Event", "Webinar"
            self.program_ids[campaign.name] = sandbox.add_program(campaign.name, program_type, channel)

    def seed_contact(self, properties: dict[str, str | None]) -> str:
        """A form fill-out creating the lead, acquired by the campaign's program."""
        source = properties.get("hs_analytics_source") or ""
        program = self.program_ids.get(properties.get("hs_analytics_source_data_1") or "")
        mql = properties.get("lifecyclestage") == "marketingqualifiedlead"
        values = {
            "email": properties.get("email"),
            "firstName": properties.get("firstname"),
            "lastName": properties.get("lastname"),
            "company": properties.get("company"),
            "title": properties.get("jobtitle"),
            "phone": properties.get("phone"),
            "leadSource": _SOURCES.get(source, ("Other",))[0],
            "acquisitionProgramId": program,
            "leadScore": properties.get("hubspotscore"),
            "leadStatus": MQL_STATUS if mql else NEW_STATUS,
        }
        return str(self.sandbox.create_lead(values, source=FORM_SOURCE))

    def update_contact(self, contact_id: str, properties: dict[str, str | None]) -> None:
        """The later MQL: the score crosses the threshold, then the MQL campaign sets the status."""
        lead_id = int(contact_id)
        score = properties.get("hubspotscore")
        if score is not None:
            current = int((self.sandbox.get_lead(lead_id) or {}).get("leadScore") or 0)
            self.sandbox.change_score(lead_id, int(score) - current, "Behaviour scoring")
        if properties.get("lifecyclestage") == "marketingqualifiedlead":
            self.sandbox.update_lead(lead_id, {"leadStatus": MQL_STATUS}, source=FLOW_SOURCE)


def seed_marketo(
    sandbox: MarketoSandbox, contacts: Sequence[PlannedContact], clock: SimClock
) -> tuple[MarketoSeedTarget, dict[str, str]]:
    """Seed every contact (and its later MQL), advancing ``clock``; returns target and key -> lead id.

    For seeding alongside a running sync use ``PopulationSeeder(MarketoSeedTarget(...), ...)``.
    """
    target = MarketoSeedTarget(sandbox)
    return target, PopulationSeeder(target, contacts, clock).run_all()
