"""Human formatting shared by the table and HTML reports."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

STAGE_NAMES = {
    "lead": "Lead",
    "mql": "MQL",
    "sal": "SAL",
    "sql": "SQL",
    "opportunity": "Opportunity",
    "won": "Won",
    "lost": "Lost",
    "disqualified": "Disqualified",
    "recycled": "Recycled",
}

LEGEND = {
    "Lead": "A person we have contact details for (form, event, list).",
    "MQL": "Marketing qualified lead: met the scoring rule and was handed to sales.",
    "SAL": "Sales accepted lead: sales took the MQL and made first contact.",
    "SQL": "Sales qualified lead: qualified by inside sales (budget, authority, need, timeline).",
    "Opportunity": "A deal is being worked by field sales.",
    "Won / Lost": "The deal was signed / the deal was lost (sales records why).",
    "Disqualified": "Sales decided the lead is not a fit (e.g. no budget, a student).",
    "Recycled": "Sent back to marketing for nurturing; may come back as an MQL later.",
    "SLA": "Service-level agreement between teams, e.g. first contact within 24 hours of an MQL.",
}


def stage_name(stage: str) -> str:
    """Display name of a stage id."""
    return STAGE_NAMES.get(stage, stage.replace("_", " ").capitalize())


def campaign_name(value: str) -> str:
    """Display name of a campaign group (people without a campaign get a readable label)."""
    return "No campaign recorded" if value == "(none)" else value


def sla_name(sla_id: str) -> str:
    """``first_touch`` → ``First touch``."""
    return sla_id.replace("_", " ").replace("-", " ").capitalize()


def pct(rate: float | None) -> str:
    """``0.2`` → ``20%``, one decimal under 10%; ``—`` when there is no rate."""
    if rate is None:
        return "—"
    value = rate * 100
    return f"{value:.1f}%" if 0 < value < 10 else f"{value:.0f}%"


def duration(hours: float | None) -> str:
    """Hours as ``45 min``, ``6.5 h`` or ``3.2 days``."""
    if hours is None:
        return "—"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def money(amount: Decimal | float) -> str:
    """Thousands separators, no decimals for whole amounts."""
    value = Decimal(str(amount))
    return f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.2f}"


def day(value: datetime) -> str:
    """``1 Oct 2026``."""
    return f"{value.day} {value:%b %Y}"
