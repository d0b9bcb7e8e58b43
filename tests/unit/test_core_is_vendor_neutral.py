"""The core speaks roles (MA, SFA) and the connector contract, never a vendor or a vendor's field names.

Vendor conventions live in the connectors (sync/connectors/) and the mapping (mappings/*.yaml).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SYNC = Path(__file__).parents[2] / "sync"
CORE = (
    "engine.py",
    "people.py",
    "poller.py",
    "backfill.py",
    "replay.py",
    "inbox_processor.py",
    "stages.py",
    "fieldsync.py",
    "identity.py",
    "facts.py",
)
VENDORS = re.compile(r"hubspot|salesforce|marketo|pardot|account engagement", re.IGNORECASE)
# Field and object names of the vendors' default data models (case-sensitive: "lead" is our vocabulary).
VENDOR_FIELDS = re.compile(
    r"\b(hs_\w+|hubspotscore|lifecyclestage|lastmodifieddate|createdate|LastModifiedDate|SystemModstamp|"
    r"CreatedDate|OwnerId|Loss_Reason__c|Closedloop_Id__c|Amount|StageName|IsConverted|IsWon|IsClosed|"
    r"Id|Lead|Contact|Opportunity|OpportunityContactRole|leadScore|leadStatus|acquisitionProgramId|dealstage)\b"
)


@pytest.mark.parametrize("name", CORE)
def test_core_module_names_no_vendor(name: str) -> None:
    text = (SYNC / name).read_text(encoding="utf-8")
    hits = [
        f"{name}:{number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), 1)
        if VENDORS.search(line) or VENDOR_FIELDS.search(line)
    ]
    assert not hits, "vendor names in the core:\n" + "\n".join(hits)


def test_the_check_finds_vendor_names() -> None:
    assert VENDORS.search('ref = RecordRef("hubspot", "contact", cid)')
    assert VENDOR_FIELDS.search('owner = record.get("OwnerId")')
    assert not VENDOR_FIELDS.search("the common lead ID of a contact")
