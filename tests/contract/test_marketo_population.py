"""The seeded population in the Marketo sandbox, read back with marketorestpython."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

import pytest

from sandboxes.common import SimClock
from sandboxes.marketo.population import MQL_STATUS, seed_marketo
from sandboxes.population import generate_population, normalise_email
from tests.contract.marketo_fixtures import MarketoEnv, start_marketo

START = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def marketo() -> Iterator[MarketoEnv]:
    env = start_marketo(clock=SimClock(start=START), window_limit=100_000)
    yield env
    env.stop()


def _z(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("locale", ["en", "ja"])
def test_population_lands_as_leads_programs_scores_and_mqls(
    marketo: MarketoEnv, locale: Literal["en", "ja"]
) -> None:
    contacts = generate_population(60, seed=7, locale=locale, start=START, span_days=10)
    target, ids = seed_marketo(marketo.sandbox, contacts, marketo.sandbox.clock)
    client = marketo.client()
    fields = "id,email,leadStatus,leadScore,acquisitionProgramId"
    leads = {
        str(lead["id"]): lead
        for lead in client.get_multiple_leads_by_filter_type(
            "id", [ids[c.key] for c in contacts], fields=fields
        )
    }
    assert len(leads) == 60
    for contact in contacts:
        lead = leads[ids[contact.key]]
        assert normalise_email(lead["email"]) == contact.normalised_email
        assert lead["acquisitionProgramId"] == target.program_ids[contact.campaign]
        assert lead["leadScore"] == contact.score
        assert (lead.get("leadStatus") == MQL_STATUS) is contact.is_mql

    programs = {p["id"]: p["name"] for p in client.browse_programs()}
    assert {programs[pid] for pid in target.program_ids.values()} == set(target.program_ids)

    types = {t["name"]: t["id"] for t in client.get_activity_types()}
    changes = client.get_lead_activities([str(types["Change Data Value"])], sinceDatetime=_z(START))
    mql_at = {
        str(a["leadId"]): a["activityDate"]
        for a in changes
        if a["primaryAttributeValue"] == "Lead Status"
        and {x["name"]: x["value"] for x in a["attributes"]}["New Value"] == MQL_STATUS
    }
    late = [c for c in contacts if c.mql_at is not None and c.mql_at > c.created_at]
    assert late, "the population plans some later MQLs"
    assert {ids[c.key]: _z(c.mql_at) for c in late if c.mql_at} == mql_at
