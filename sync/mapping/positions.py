"""Source positions: find a document path in a ruamel round-trip tree; turn pydantic errors into Issues."""

from __future__ import annotations

import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from sync.mapping.errors import At, Issue
from sync.mapping.model import Mapping
from sync.mapping.suggest import did_you_mean

Path = tuple[str | int, ...]


def locate(root: Any, path: Path, at: At) -> tuple[int, int]:
    """1-based (line, col) of the key or value at ``path``; the nearest existing ancestor if missing."""
    pos = (root.lc.line, root.lc.col) if isinstance(root, CommentedMap | CommentedSeq) else (0, 0)
    node = root
    for i, el in enumerate(path):
        last = i == len(path) - 1
        try:
            if isinstance(node, CommentedMap) and el in node:
                pos = node.lc.key(el) if (last and at == "key") else node.lc.value(el)
            elif isinstance(node, CommentedSeq) and isinstance(el, int) and 0 <= el < len(node):
                pos = node.lc.item(el)
            else:
                break
        except (KeyError, IndexError, TypeError):
            break
        node = node[el]
    return (pos[0] or 0) + 1, (pos[1] or 0) + 1


def dotted(path: Path) -> str:
    """``stages[2].sfa.object`` style rendering of a path."""
    out = ""
    for el in path:
        out += f"[{el}]" if isinstance(el, int) else (f".{el}" if out else str(el))
    return out


def _strip(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(path: Path) -> type[BaseModel] | None:
    tp: Any = Mapping
    for el in path:
        tp = _strip(tp)
        if isinstance(el, int):
            if get_origin(tp) is not list:
                return None
            tp = get_args(tp)[0]
            continue
        if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
            return None
        field = next((f for n, f in tp.model_fields.items() if (f.alias or n) == el), None)
        if field is None:
            return None
        tp = field.annotation
    tp = _strip(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def allowed_keys(path: Path) -> list[str]:
    """The keys a mapping at ``path`` may contain (empty if unknown)."""
    model = _model_at(path)
    return [f.alias or n for n, f in model.model_fields.items()] if model else []


_SIMPLE = {
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
}


def pydantic_issues(errors: list[dict[str, Any]]) -> list[Issue]:
    """Translate pydantic error dicts (``ValidationError.errors()``) into positioned Issues."""
    out: list[Issue] = []
    for err in errors:
        loc: Path = tuple(err["loc"])
        typ = err["type"]
        ctx = err.get("ctx") or {}
        if typ == "condition":
            out.extend((loc + sub, f"{dotted(loc + sub)}: {msg}", at) for sub, msg, at in ctx["issues"])
            continue
        at: At = "value"
        where = loc
        if typ == "extra_forbidden":
            at = "key"
            msg = f"unknown key {loc[-1]!r}{did_you_mean(loc[-1], allowed_keys(loc[:-1]))}"
            where = loc[:-1]
        elif typ == "missing":
            msg = f"missing required key {loc[-1]!r}"
            where = loc[:-1]
            loc = loc[:-1]
        elif typ == "literal_error":
            choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
            msg = (
                f"{err['input']!r} is not allowed; expected one of: {', '.join(choices)}"
                f"{did_you_mean(err['input'], choices)}"
            )
        elif typ == "too_short":
            msg = "must not be empty"
        elif typ in _SIMPLE:
            msg = f"{_SIMPLE[typ]}, got {type(err['input']).__name__} {err['input']!r}"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
        label = dotted(where)
        out.append((loc, f"{label}: {msg}" if label else msg, at))
    return out
