"""The admin's mapping reference (mappings/README.md) names every key the mapping language accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sync.mapping.schema import json_schema

REFERENCE = Path(__file__).parents[2] / "mappings" / "README.md"


def _keys(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                found.update(value)
            _keys(value, found)
    elif isinstance(node, list):
        for item in node:
            _keys(item, found)
    return found


def test_reference_documents_every_schema_key() -> None:
    keys = _keys(json_schema(), set())
    assert len(keys) > 30  # the walk really found the language's keys
    text = REFERENCE.read_text(encoding="utf-8")
    missing = sorted(k for k in keys if k not in text)
    assert not missing, f"undocumented mapping keys: {missing}"
