"""Narrowing a report to some people: by their campaign and owner (the people table's values)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_

from sync.store.models import Person

NO_VALUE = "(none)"


@dataclass(frozen=True)
class PeopleFilter:
    """Only people of this campaign and/or owner; ``(none)`` selects people without one."""

    campaign: str | None = None
    owner: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """SQL conditions on the people table (empty when nothing is filtered)."""
        out: list[ColumnElement[bool]] = []
        for column, value in ((Person.campaign, self.campaign), (Person.owner, self.owner)):
            if value is None:
                continue
            out.append(or_(column.is_(None), column == "") if value == NO_VALUE else column == value)
        return out


EVERYONE = PeopleFilter()
