"""JSON Schema (draft 2020-12) of the mapping language, for editor completion and validation."""

from __future__ import annotations

from typing import Any

from sync.mapping.conditions import COMBINATORS, SFA_OBJECTS, SFA_RELATED
from sync.mapping.duration import _RX as _DURATION_RX
from sync.mapping.model import REF, Mapping

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean", "null"]}
_VALUE: dict[str, Any] = {"type": ["string", "number", "boolean"]}
_LIST: dict[str, Any] = {"type": "array", "items": _VALUE, "minItems": 1}
_NAME = "[A-Za-z_][A-Za-z0-9_]*"
# Any object the mapping's sfa_objects or sfa_related declare (by default these six); the linter
# checks which.
_OBJECT: dict[str, Any] = {
    "type": "string",
    "pattern": f"^{_NAME}$",
    "examples": [*SFA_OBJECTS, *SFA_RELATED],
    "description": "One of the mapping's sfa_objects (default Lead, Contact, Opportunity) or "
    "sfa_related (default Account, Event, Task)",
}


def _ops() -> dict[str, Any]:
    ordered = {"type": ["string", "number"]}
    return {
        "field": {"type": "string", "minLength": 1, "description": "Property / field name"},
        "eq": _VALUE,
        "ne": _VALUE,
        "in": _LIST,
        "not_in": _LIST,
        "gt": ordered,
        "gte": ordered,
        "lt": ordered,
        "lte": ordered,
        "present": {"type": "boolean"},
        "contains": {"type": ["string", "number"]},
        "matches": {"type": "string", "format": "regex"},
    }


def _condition(ref: str, extra: dict[str, Any]) -> dict[str, Any]:
    """Leaf or one combinator; ``extra`` adds top-level keys (sfa's ``object``)."""
    leaf = {
        "type": "object",
        "properties": {**_ops(), **extra},
        "required": ["field", *extra],
        "additionalProperties": False,
        "minProperties": 2 + len(extra),
    }
    combs = []
    for comb in COMBINATORS:
        arg = (
            {"$ref": "#/$defs/Condition"}
            if comb == "not"
            else {"type": "array", "items": {"$ref": "#/$defs/Condition"}, "minItems": 1}
        )
        combs.append(
            {
                "type": "object",
                "properties": {comb: arg, **extra},
                "required": [comb, *extra],
                "additionalProperties": False,
            }
        )
    return {"title": ref, "oneOf": [leaf, *combs]}


def json_schema() -> dict[str, Any]:
    """The mapping language's JSON Schema (draft 2020-12)."""
    schema = _resolve_refs(Mapping.model_json_schema(by_alias=True, mode="validation"))
    defs = schema.setdefault("$defs", {})
    defs["Condition"] = _condition("Condition", {})
    defs["MaCondition"] = _condition("MaCondition", {})
    defs["SfaCondition"] = _condition("SfaCondition", {"object": _OBJECT})
    defs["Scalar"] = _SCALAR
    defs["Duration"] = {
        "type": "string",
        "pattern": _DURATION_RX.pattern.replace("(?i)", ""),
        "description": "24h, 90m, 2d, 3bd or '3 business days'",
    }
    defs["SfaFieldRef"] = {
        "type": "string",
        "pattern": rf"^{_NAME}\.{_NAME}$",
        "description": "Object.Field, the object one of the mapping's sfa_objects (stage times and "
        "reasons, SLA fields: or of its sfa_related)",
    }
    defs["Transform"] = {
        "oneOf": [
            {"enum": ["trim", "lower", "upper", "nfkc"]},
            {
                "type": "object",
                "properties": {"truncate": {"type": "integer", "minimum": 1}},
                "required": ["truncate"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"date": {"type": "string", "minLength": 1}},
                "required": ["date"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["number"],
                "additionalProperties": False,
                "properties": {
                    "number": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "properties": {"decimals": {"type": "integer", "minimum": 0}},
                    }
                },
            },
        ]
    }
    return {
        "$schema": DIALECT,
        "$id": "https://closedloop.dev/schema/mapping-v1.json",
        **schema,
        "title": "Closedloop mapping",
    }


def _resolve_refs(node: Any) -> Any:
    if isinstance(node, dict):
        if REF in node:
            return {"$ref": f"#/$defs/{node[REF]}"}
        return {k: _resolve_refs(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_refs(v) for v in node]
    return node
