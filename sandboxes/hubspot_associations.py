"""Associations v4 between contacts and deals for the HubSpot sandbox.

Association types are directional and numbered per portal
(https://developers.hubspot.com/docs/api/crm/associations, "Association type ID values"): the
unlabeled HUBSPOT_DEFINED contact→deal type is 4 and deal→contact is 3. Custom labels
(USER_DEFINED) get a type id for each direction; associating with a label also creates the
unlabeled default, and the inverse direction always exists with the matching type.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from sandboxes.hubspot_errors import HubSpotError

HUBSPOT_DEFINED = "HUBSPOT_DEFINED"
USER_DEFINED = "USER_DEFINED"
OBJECT_TYPE_IDS = {"contacts": "0-1", "deals": "0-3", "tasks": "0-27"}
_ALIASES = {
    "contact": "contacts",
    "contacts": "contacts",
    "0-1": "contacts",
    "deal": "deals",
    "deals": "deals",
    "0-3": "deals",
    "task": "tasks",
    "tasks": "tasks",
    "0-27": "tasks",
}
MAX_LABEL_LENGTH = 50


def object_type(raw: str) -> str:
    """``contacts`` or ``deals`` for any accepted spelling (name, singular, type id), else a 400."""
    name = _ALIASES.get(raw.lower())
    if name is None:
        raise HubSpotError(400, f"Unable to infer object type from: {raw}")
    return name


@dataclass(frozen=True)
class AssociationType:
    from_type: str
    to_type: str
    type_id: int
    category: str
    label: str | None
    name: str | None = None

    def spec(self) -> dict[str, Any]:
        """``AssociationSpecWithLabel`` as the v4 API renders it."""
        return {"category": self.category, "typeId": self.type_id, "label": self.label}


class Associations:
    """Association type definitions (labels) and the links between records."""

    def __init__(self) -> None:
        self.types: dict[int, AssociationType] = {}
        self.inverse: dict[int, int] = {}
        self._add_pair(
            AssociationType("contacts", "deals", 4, HUBSPOT_DEFINED, None),
            AssociationType("deals", "contacts", 3, HUBSPOT_DEFINED, None),
        )
        self._add_pair(  # https://developers.hubspot.com/docs/api/crm/tasks (task to contact: 204)
            AssociationType("tasks", "contacts", 204, HUBSPOT_DEFINED, None),
            AssociationType("contacts", "tasks", 203, HUBSPOT_DEFINED, None),
        )
        self._next_type = itertools.count(100)
        # (from_type, from_id, to_type) -> {to_id: {type_id, ...}}; both directions are stored.
        self.links: dict[tuple[str, str, str], dict[str, set[int]]] = {}

    def _add_pair(self, forward: AssociationType, backward: AssociationType) -> None:
        self.types[forward.type_id] = forward
        self.types[backward.type_id] = backward
        self.inverse[forward.type_id] = backward.type_id
        self.inverse[backward.type_id] = forward.type_id

    # ----- definitions ------------------------------------------------------------------------

    def labels(self, from_type: str, to_type: str) -> list[AssociationType]:
        """Every type from ``from_type`` to ``to_type``, HubSpot's first."""
        found = [t for t in self.types.values() if (t.from_type, t.to_type) == (from_type, to_type)]
        return sorted(found, key=lambda t: (t.category != HUBSPOT_DEFINED, t.type_id))

    def default_type(self, from_type: str, to_type: str) -> AssociationType:
        for t in self.labels(from_type, to_type):
            if t.category == HUBSPOT_DEFINED and t.label is None:
                return t
        raise HubSpotError(400, f"No default association between {from_type} and {to_type}")

    def create_label(
        self, from_type: str, to_type: str, label: str, name: str, inverse_label: str | None
    ) -> list[AssociationType]:
        """A USER_DEFINED label (paired when ``inverse_label`` is given); returns both directions."""
        if not label.strip() or len(label) > MAX_LABEL_LENGTH:
            raise HubSpotError(400, f"Invalid input: label must be 1 to {MAX_LABEL_LENGTH} characters")
        if not name.strip():
            raise HubSpotError(400, "Invalid input: name is required")
        if any(t.name == name for t in self.labels(from_type, to_type)):
            raise HubSpotError(409, f"An association label named {name} already exists", "CONFLICT")
        forward = AssociationType(from_type, to_type, next(self._next_type), USER_DEFINED, label, name)
        backward = AssociationType(
            to_type, from_type, next(self._next_type), USER_DEFINED, inverse_label or label, name
        )
        self._add_pair(forward, backward)
        return [forward, backward]

    def resolve_types(self, from_type: str, to_type: str, raw: Any) -> list[int]:
        """Validated type ids from an ``AssociationSpec`` list."""
        if not isinstance(raw, list) or not raw:
            raise HubSpotError(400, "Invalid input: types must be a non-empty list of association specs")
        ids: list[int] = []
        for spec in raw:
            if not isinstance(spec, dict):
                raise HubSpotError(400, "Invalid input: each association spec must be an object")
            try:
                type_id = int(spec.get("associationTypeId"))  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                raise HubSpotError(400, "Invalid input: associationTypeId must be an integer") from exc
            found = self.types.get(type_id)
            if (
                found is None
                or (found.from_type, found.to_type) != (from_type, to_type)
                or spec.get("associationCategory") != found.category
            ):
                raise HubSpotError(
                    400,
                    f"{spec.get('associationCategory')} {type_id} is not a valid association type "
                    f"from {from_type} to {to_type}",
                )
            ids.append(type_id)
        return ids

    # ----- links ------------------------------------------------------------------------------

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: list[int]) -> bool:
        """Add links (plus the unlabeled default and the inverse direction); True if anything was new."""
        wanted = {*type_ids, self.default_type(from_type, to_type).type_id}
        have = self.links.setdefault((from_type, from_id, to_type), {}).setdefault(to_id, set())
        back = self.links.setdefault((to_type, to_id, from_type), {}).setdefault(from_id, set())
        new = wanted - have
        have |= wanted
        back |= {self.inverse[t] for t in wanted}
        return bool(new)

    def remove(self, from_type: str, from_id: str, to_type: str, to_id: str) -> bool:
        """Remove every link between the two records; True if there was one."""
        had = self.links.get((from_type, from_id, to_type), {}).pop(to_id, None)
        self.links.get((to_type, to_id, from_type), {}).pop(from_id, None)
        return bool(had)

    def of(self, from_type: str, from_id: str, to_type: str) -> dict[str, set[int]]:
        """Associated ``to_type`` ids of a record with their type ids (to ids in numeric order)."""
        out = self.links.get((from_type, from_id, to_type), {})
        return dict(sorted(out.items(), key=lambda kv: int(kv[0])))

    def render(self, to_id: str, type_ids: set[int]) -> dict[str, Any]:
        """A ``MultiAssociatedObjectWithLabel``."""
        return {
            "toObjectId": int(to_id),
            "associationTypes": [self.types[t].spec() for t in sorted(type_ids)],
        }
