"""The YAML mapping language: models, loading and lint, projection, closed-loop values, preview, schema."""

from sync.mapping.errors import LintError, MappingError
from sync.mapping.loader import lint_paths, lint_text, load_mapping, parse_mapping_data, parse_mapping_text
from sync.mapping.model import (
    Calendar,
    ClosedLoopEntry,
    EnteredAt,
    FieldMap,
    Handover,
    Identity,
    Mapping,
    SfaRef,
    Sla,
    Stage,
)
from sync.mapping.preview import preview
from sync.mapping.project import closed_loop_values, outcome, project
from sync.mapping.schema import json_schema
from sync.mapping.transforms import normalise_key, parse_datetime

__all__ = [
    "Calendar",
    "ClosedLoopEntry",
    "EnteredAt",
    "FieldMap",
    "Handover",
    "Identity",
    "LintError",
    "Mapping",
    "MappingError",
    "SfaRef",
    "Sla",
    "Stage",
    "closed_loop_values",
    "json_schema",
    "lint_paths",
    "lint_text",
    "load_mapping",
    "normalise_key",
    "outcome",
    "parse_datetime",
    "parse_mapping_data",
    "parse_mapping_text",
    "preview",
    "project",
]
