"""The teams a mapping uses when it declares none (``teams:`` absent)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sync.mapping.conditions import SFA_OBJECTS, sfa_object_scope

if TYPE_CHECKING:
    from sync.mapping.model import Mapping, Team

MARKETING, INSIDE_SALES, FIELD_SALES, CUSTOMER_SUCCESS, SALES = (
    "marketing",
    "inside_sales",
    "field_sales",
    "customer_success",
    "sales",
)

# The four teams of the Salesforce default objects (Lead, Contact, Opportunity): docs in mappings/README.md.
SALESFORCE_TEAMS: tuple[dict[str, Any], ...] = (
    {"id": MARKETING, "label": {"en": "Marketing", "ja": "マーケティング"},
     "stages": ["lead", "mql", "recycled"]},
    {"id": INSIDE_SALES, "label": {"en": "Inside sales", "ja": "インサイドセールス"},
     "stages": ["sal", "sql", "disqualified"], "owner": "Lead.OwnerId"},
    {"id": FIELD_SALES, "label": {"en": "Field sales", "ja": "フィールドセールス"},
     "stages": ["opportunity", "won", "lost"], "owner": "Opportunity.OwnerId"},
    {"id": CUSTOMER_SUCCESS, "label": {"en": "Customer success", "ja": "カスタマーサクセス"},
     "stages": ["kickoff", "customer", "expansion", "churned"], "owner": "Account.OwnerId"},
)  # fmt: skip


def default_teams(mapping: Mapping) -> list[Team]:
    """Salesforce objects: the four standard teams (stages the mapping lacks left out, teams left empty
    dropped; any other success-path stage joins the team of the stage before it).
    Declared ``sfa_objects``: marketing up to the handover, sales after (no owner fields)."""
    from sync.mapping.model import Team

    if mapping.declared_sfa_objects is not None and mapping.declared_sfa_objects != SFA_OBJECTS:
        return _two_teams(mapping)
    known = set(mapping.stage_ids())
    specs = [dict(spec, stages=[s for s in spec["stages"] if s in known]) for spec in SALESFORCE_TEAMS]
    placed = {s for spec in specs for s in spec["stages"]}
    current = specs[0]
    for stage in mapping.success_path():
        holder = next((spec for spec in specs if stage in spec["stages"]), None)
        if holder is not None:
            current = holder
        elif stage not in placed:
            current["stages"].append(stage)
    with sfa_object_scope(mapping.sfa_objects(), mapping.related_objects()):
        return [Team.model_validate(spec) for spec in specs if spec["stages"]]


def _two_teams(mapping: Mapping) -> list[Team]:
    from sync.mapping.model import Team

    path = mapping.success_path()
    cut = path.index(mapping.handover.at) + 1 if mapping.handover.at in path else 1
    marketing, sales = path[:cut], path[cut:]
    for stage in mapping.stages:
        if stage.detour:
            (sales if stage.sfa is not None else marketing).append(stage.id)
    label = {MARKETING: {"en": "Marketing", "ja": "マーケティング"}, SALES: {"en": "Sales", "ja": "営業"}}
    return [
        Team.model_validate({"id": team_id, "label": label[team_id], "stages": stages})
        for team_id, stages in ((MARKETING, marketing), (SALES, sales))
        if stages
    ]
