"""The default standard funnel: an ordered success path plus detours."""

from __future__ import annotations

from collections.abc import Sequence

SUCCESS_PATH: tuple[str, ...] = ("lead", "mql", "sal", "sql", "opportunity", "won")
DETOURS: tuple[str, ...] = ("lost", "disqualified", "recycled")
LOST = "lost"
DISQUALIFIED = "disqualified"


def at_or_after(stage: str, target: str, success_path: Sequence[str]) -> bool:
    """True when ``stage`` is ``target`` or a later stage on the success path."""
    if stage == target:
        return True
    if stage not in success_path or target not in success_path:
        return False
    return list(success_path).index(stage) >= list(success_path).index(target)
