"""Lint errors and the exception that carries them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

At = Literal["key", "value"]
# A problem found before positions are known: path inside the document, message, and whether
# the key or the value of the last path element is at fault.
Issue = tuple[tuple[str | int, ...], str, At]


@dataclass(frozen=True, order=True)
class LintError:
    """One problem in a mapping file, at a 1-based line and column."""

    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class MappingError(Exception):
    """A mapping could not be loaded; ``errors`` lists every problem found."""

    def __init__(self, errors: list[LintError]) -> None:
        self.errors = errors
        shown = "\n".join(str(e) for e in errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} mapping error(s):\n{shown}{more}")
