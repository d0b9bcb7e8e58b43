"""The scripted sales organisation's named reps: inside sales, field sales and customer success.

Each rep is a Salesforce User the team creates once (found again by its Username on a later run),
so owner fields hold real User Ids and a report by owner can show the rep's name.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Team = Literal["inside_sales", "field_sales", "customer_success"]
DEPARTMENTS: dict[Team, str] = {
    "inside_sales": "Inside Sales",
    "field_sales": "Field Sales",
    "customer_success": "Customer Success",
}
TITLES: dict[Team, str] = {
    "inside_sales": "Inside Sales Representative",
    "field_sales": "Account Executive",
    "customer_success": "Customer Success Manager",
}


@dataclass(frozen=True)
class Rep:
    """One rep; ``name`` is the User's Name as Salesforce composes it (first name, last name)."""

    first_name: str
    last_name: str
    team: Team

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def username(self) -> str:
        return f"{self.first_name}.{self.last_name}@closedloop-sales.example.com".lower()

    @property
    def alias(self) -> str:
        return (self.first_name[:1] + self.last_name).lower()[:8]


# Mixed Japanese and English names, three inside sales, two field sales, two customer success.
REPS: tuple[Rep, ...] = (
    Rep("Haruka", "Tanaka", "inside_sales"),
    Rep("Emily", "Carter", "inside_sales"),
    Rep("Kenji", "Watanabe", "inside_sales"),
    Rep("Daisuke", "Yamamoto", "field_sales"),
    Rep("Olivia", "Bennett", "field_sales"),
    Rep("Yuki", "Nakamura", "customer_success"),
    Rep("James", "Miller", "customer_success"),
)


def reps_of(team: Team) -> tuple[Rep, ...]:
    """The reps of one team, in a fixed order."""
    return tuple(r for r in REPS if r.team == team)


def pick(rng: random.Random, team: Team) -> Rep:
    """One rep of ``team``, drawn from ``rng`` (deterministic per person stream)."""
    return rng.choice(reps_of(team))


class UserDirectory(Protocol):
    """The part of the Salesforce sandbox needed to create Users."""

    def insert(self, sobject: str, fields: dict[str, Any]) -> str: ...

    def records(self, sobject: str) -> list[dict[str, Any]]: ...


def ensure_users(salesforce: UserDirectory, reps: tuple[Rep, ...] = REPS) -> dict[Rep, str]:
    """Each rep's User Id, creating the Users not there yet (idempotent: matched by Username)."""
    existing = {
        str(u.get("Username") or "").lower(): str(u["Id"])
        for u in salesforce.records("User")
        if not u.get("IsDeleted")
    }
    ids: dict[Rep, str] = {}
    for rep in reps:
        found = existing.get(rep.username)
        ids[rep] = found or salesforce.insert(
            "User",
            {
                "Username": rep.username,
                "FirstName": rep.first_name,
                "LastName": rep.last_name,
                "Email": rep.username,
                "Alias": rep.alias,
                "Title": TITLES[rep.team],
                "Department": DEPARTMENTS[rep.team],
            },
        )
    return ids
