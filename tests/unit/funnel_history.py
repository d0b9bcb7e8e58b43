"""A funnel history made the engine's way, for reporting tests: simulated people walk the default
mapping with its own stage rules (``decide_transition``: skipped stages logged, recycle jumps logged
alone) and the real SLA timer code, and are stored as the engine stores them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert

from sync.funnel.sla import detect_breaches, on_transition
from sync.mapping import load_mapping
from sync.sla_hooks import sla_calendar, sla_rules
from sync.stages import decide_transition
from sync.store.db import Store
from sync.store.models import Person, RecordLink, Transition

MAPPING = Path(__file__).parents[2] / "mappings"
CAMPAIGNS = ("ウェビナー秋", "Search ads", "展示会2026", None)

# computed stages a person's records may show next, from each stage (None = first sighting)
NEXT: dict[str | None, tuple[str, ...]] = {
    None: ("lead", "lead", "mql", "sql"),
    "lead": ("mql", "mql", "mql", "recycled"),
    "mql": ("sal", "sal", "sql", "disqualified", "recycled", "won"),
    "sal": ("sql", "sql", "disqualified", "opportunity"),
    "sql": ("opportunity", "opportunity", "lost", "won"),
    "opportunity": ("won", "lost", "lost"),
    "recycled": ("mql", "sql", "won", "mql"),
    "lost": ("won", "recycled"),
    "disqualified": ("recycled", "sql"),
    "won": (),
}


def simulate(store: Store, n: int, seed: int) -> None:
    """People walking the default funnel, stored the way the engine stores them, SLA timers included."""
    mapping = load_mapping(MAPPING)
    rules, calendar = sla_rules(mapping), sla_calendar(mapping)
    path, detours = mapping.success_path(), mapping.detours()
    rng = random.Random(seed)
    now = datetime(2026, 11, 25, tzinfo=UTC)
    with store.session() as session:
        for i in range(n):
            cid = f"c{i:04d}"
            campaign = rng.choice(CAMPAIGNS)
            owner = rng.choice(("005A", "005B"))
            at = datetime(2026, 9, 10, tzinfo=UTC) + timedelta(minutes=rng.randrange(0, 60 * 24 * 45))
            current: str | None = None
            rows = []
            while NEXT[current] and at < now and rng.random() < 0.85:
                computed = rng.choice(NEXT[current])
                for stage in decide_transition(mapping, current, computed):
                    amount = Decimal(rng.randrange(1, 50) * 10_000) if stage == "won" else None
                    reason = (
                        rng.choice(("価格", "Timing", None)) if stage in ("lost", "disqualified") else None
                    )
                    rows.append(
                        dict(common_id=cid, from_stage=current, to_stage=stage, occurred_at=at, recorded_at=at,
                             campaign=campaign, owner=owner, reason=reason, amount=amount,
                             score=Decimal(rng.randrange(30, 100)), cause="poll")
                    )  # fmt: skip
                    on_transition(session, cid, stage, at, rules, calendar, path, detours)
                    current = stage
                at += timedelta(hours=rng.choice((0.5, 3, 20, 30, 70, 200)), minutes=rng.randrange(60))
            session.add(
                Person(common_id=cid, stage=current, campaign=campaign, owner=owner, source="web",
                       attributes={}, created_at=now, updated_at=now,
                       merged_into="c0000" if i % 97 == 5 else None)
            )  # fmt: skip
            session.add(
                RecordLink(common_id=cid, role="ma", connector="hubspot", object_type="contact",
                           record_id=str(1000 + i), created_at=now)
            )  # fmt: skip
            if rows:
                session.execute(insert(Transition), rows)
        session.flush()
        detect_breaches(session, now, rules, None)
