"""Load and lint mapping files: YAML with positions (ruamel round-trip), structure, cross-references."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from sync.mapping import semantics
from sync.mapping.errors import Issue, LintError, MappingError
from sync.mapping.model import Mapping
from sync.mapping.positions import locate, pydantic_issues

SUFFIXES = (".yaml", ".yml")


def to_plain(node: Any) -> Any:
    """Deep-copy ruamel round-trip data into plain dict/list/str/int/float/bool."""
    if isinstance(node, dict):
        return {to_plain(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        # ruamel's ScalarBoolean subclasses int; it keeps bool-ness in its repr only.
        return bool(node) if type(node).__name__ == "ScalarBoolean" else int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _parse(text: str, where: str) -> tuple[Any, list[LintError]]:
    try:
        return YAML(typ="rt").load(text), []
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        detail = " ".join(p for p in (exc.context, exc.problem) if p)
        return None, [LintError(where, line, col, f"YAML syntax error: {detail}")]
    except YAMLError as exc:
        return None, [LintError(where, 1, 1, f"YAML error: {exc}")]


def _validate(root: Any, where: str) -> tuple[Mapping | None, list[LintError]]:
    data = to_plain(root)
    issues: list[Issue] = []
    model: Mapping | None = None
    try:
        model = Mapping.model_validate(data)
    except ValidationError as exc:
        issues += pydantic_issues([dict(e) for e in exc.errors(include_url=False)])
    issues += semantics.check(data)
    seen: set[LintError] = set()
    for path, message, at in issues:
        line, col = locate(root, path, at)
        seen.add(LintError(where, line, col, message))
    errors = sorted(seen)
    return (None if errors else model), errors


def lint_text(text: str, where: str = "<string>") -> tuple[Mapping | None, list[LintError]]:
    """Lint mapping YAML text; returns the model (None if any error) and every error, sorted."""
    root, errors = _parse(text, where)
    if errors:
        return None, errors
    if root is None:
        return None, [LintError(where, 1, 1, "empty mapping file")]
    if not isinstance(root, dict):
        return None, [LintError(where, 1, 1, "a mapping file must be a YAML mapping (key: value) at the top")]
    return _validate(root, where)


def parse_mapping_data(data: dict[str, Any], where: str = "<data>") -> Mapping:
    """Validate already-parsed mapping data (e.g. from tests or an API) with every lint check."""
    model, errors = _validate(data, where)
    if errors or model is None:
        raise MappingError(errors)
    return model


def parse_mapping_text(text: str, where: str = "<string>") -> Mapping:
    """Load a mapping from YAML text; MappingError with all errors if invalid."""
    model, errors = lint_text(text, where)
    if errors or model is None:
        raise MappingError(errors)
    return model


def _resolve(path: Path) -> Path:
    if not path.is_dir():
        return path
    default = path / "default.yaml"
    if default.is_file():
        return default
    found = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
    if len(found) != 1:
        what = "no mapping file" if not found else f"{len(found)} mapping files and no default.yaml"
        raise MappingError([LintError(str(path), 1, 1, f"{what} in this directory")])
    return found[0]


def _read(path: Path) -> tuple[str | None, list[LintError]]:
    try:
        return path.read_text(encoding="utf-8"), []
    except (OSError, UnicodeDecodeError) as exc:
        return None, [LintError(str(path), 1, 1, f"cannot read file: {exc.__class__.__name__}: {exc}")]


def load_mapping(path: str | Path) -> Mapping:
    """Load a file, or a directory's default.yaml (else its only *.yaml); MappingError lists all errors."""
    file = _resolve(Path(path))
    text, errors = _read(file)
    if text is None:
        raise MappingError(errors)
    return parse_mapping_text(text, str(file))


def lint_paths(paths: Sequence[str | Path]) -> list[LintError]:
    """Lint files and directories (every *.yaml / *.yml in them, recursively); all errors, sorted."""
    errors: list[LintError] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix in SUFFIXES and f.is_file())
            try:
                _resolve(p)  # the service loads default.yaml or the only file: no choice is an error
            except MappingError as exc:
                errors += exc.errors
        elif p.exists():
            files = [p]
        else:
            errors.append(LintError(str(p), 1, 1, "no such file or directory"))
            continue
        for f in files:
            text, read_errors = _read(f)
            errors += read_errors
            if text is not None:
                errors += lint_text(text, str(f))[1]
    return errors
