"""Engine throughput: mapping projection (both ways) + compute_stage + decide_transition, one core.

Run: .venv/bin/python bench/engine.py [--people 100000] [--mapping mappings/default.yaml]
Target (DESIGN.md): >= 20,000 records/s per core.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

from sync.mapping import Mapping, load_mapping
from sync.mapping.project import closed_loop_values, project
from sync.stages import PersonView, compute_stage, decide_transition


def sfa_view(ma: Any = None, lead: Any = None, contact: Any = None, opportunity: Any = None) -> PersonView:
    """A person's view with the sales side given per Salesforce object."""
    sfa = {"Lead": lead, "Contact": contact, "Opportunity": opportunity}
    return PersonView(ma=ma, sfa={obj: rec for obj, rec in sfa.items() if rec is not None})


SOURCES = [
    "ORGANIC_SEARCH",
    "PAID_SEARCH",
    "EMAIL_MARKETING",
    "SOCIAL_MEDIA",
    "REFERRALS",
    "DIRECT_TRAFFIC",
    "OFFLINE",
    "OTHER_CAMPAIGNS",
]
LIFECYCLE = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"]
LEAD_STATUS = ["Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"]
OPP_STAGES = ["Prospecting", "Qualification", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review"]
LOSS = ["Price", "Competitor", "No budget", "Timing", None]


def _contact(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "email": f"  Person{i}@Example{i % 97}.co.jp ",
        "firstname": f"Ｔａｒｏ{i % 13}",
        "lastname": f"Yamada{i}",
        "company": f" Example {i % 997} K.K. ",
        "phone": f"+81-3-{i % 10000:04d}-{i % 7919:04d}",
        "jobtitle": rng.choice(["CTO", "マネージャー", "", "Head of Sales"]),
        "hs_analytics_source": rng.choice(SOURCES),
        "hubspotscore": str(rng.randint(0, 100)),
        "lifecyclestage": rng.choice(LIFECYCLE),
        "hs_lead_status": rng.choice(["NEW", "OPEN", "BAD_TIMING", ""]),
        "closedloop_id": f"01HX{i:022d}",
        "createdate": "1714521600000",
        "hs_lifecyclestage_marketingqualifiedlead_date": "1714608000000",
    }


def _lead(rng: random.Random, i: int, status: str) -> dict[str, Any]:
    return {
        "Id": f"00Q{i:015d}",
        "Email": f"person{i}@example{i % 97}.co.jp",
        "FirstName": f"Taro{i % 13}",
        "LastName": f"Yamada{i}",
        "Company": f"Example {i % 997} K.K.",
        "Phone": None,
        "Title": "CTO",
        "LeadSource": "Web",
        "Status": status,
        "IsConverted": status == "Closed - Converted",
        "ConvertedDate": "2024-05-10" if status == "Closed - Converted" else None,
        "Closedloop_Id__c": f"01HX{i:022d}",
    }


def _opportunity(rng: random.Random, i: int) -> dict[str, Any]:
    closed = rng.random() < 0.5
    won = closed and rng.random() < 0.3
    return {
        "Id": f"006{i:015d}",
        "IsClosed": closed,
        "IsWon": won,
        "StageName": ("Closed Won" if won else "Closed Lost") if closed else rng.choice(OPP_STAGES),
        "Amount": rng.choice([1_000_000, 2_500_000.5, None]),
        "CloseDate": "2024-06-30",
        "CreatedDate": "2024-05-11T09:00:00.000+0000",
        "Loss_Reason__c": None if won else rng.choice(LOSS),
    }


def people(n: int, seed: int = 7) -> list[tuple[PersonView, str | None]]:
    """Synthetic people (a realistic funnel mix) with a previously stored stage each."""
    rng = random.Random(seed)
    out: list[tuple[PersonView, str | None]] = []
    stored = [None, "lead", "mql", "sal", "sql", "opportunity", "recycled", "lost"]
    for i in range(n):
        roll = rng.random()
        lead = _lead(rng, i, rng.choice(LEAD_STATUS)) if roll > 0.4 else None
        opp = _opportunity(rng, i) if lead and lead["IsConverted"] else None
        out.append((sfa_view(ma=_contact(rng, i), lead=lead, opportunity=opp), rng.choice(stored)))
    return out


def run(mapping: Mapping, population: list[tuple[PersonView, str | None]]) -> dict[str, int]:
    """One pass of the engine over every person; returns a tally of computed stages."""
    tally: dict[str, int] = {}
    for view, current in population:
        assert view.ma is not None
        project(mapping, "ma", view.ma, "Lead")
        if (lead := view.record("Lead")) is not None:
            project(mapping, "sfa", lead, "Lead")
        stage = compute_stage(mapping, view)
        decide_transition(mapping, current, stage)
        closed_loop_values(mapping, view, stage)
        key = stage or "-"
        tally[key] = tally.get(key, 0) + 1
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--mapping", default=str(Path(__file__).parents[1] / "mappings" / "default.yaml"))
    args = parser.parse_args()
    mapping = load_mapping(args.mapping)
    t0 = time.perf_counter()
    population = people(args.people)
    gen = time.perf_counter() - t0
    run(mapping, population[:1000])  # warm the compiled caches
    t1 = time.perf_counter()
    tally = run(mapping, population)
    elapsed = time.perf_counter() - t1
    rate = len(population) / elapsed
    print(f"generated {len(population):,} people in {gen:.1f}s")
    print("stages: " + ", ".join(f"{k}={v:,}" for k, v in sorted(tally.items())))
    print(
        f"engine: {len(population):,} records in {elapsed:.2f}s = {rate:,.0f} records/s "
        f"({'meets' if rate >= 20_000 else 'BELOW'} the 20,000/s target)"
    )


if __name__ == "__main__":
    main()
