"""Helpers shared by the benchmarks: machine description, tables, a running Closedloop on sandboxes.

Benchmarks print figures; they are not tests. Every figure of API calls comes from the sandboxes'
own :class:`~sandboxes.common.CallCounter`; records handed to the connectors are tallied by
:class:`WriteTally`, which wraps the runtime's connector write methods without changing them.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandboxes.common import CallCounter
from sandboxes.scenario import Scenario, ScenarioConfig
from sync.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
HUBSPOT_BATCH_MAX = 100
SALESFORCE_BATCH_MAX = 200
# Endpoint fragments of write calls, as the sandboxes' counters template them.
HUBSPOT_WRITE_MARKERS = ("/batch/update", "/batch/upsert", "/batch/create")
SALESFORCE_WRITE_MARKER = "/composite/sobjects"


def machine_info() -> dict[str, str]:
    """Where a benchmark ran: platform, Python, CPU count and the load at start."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return {
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpus": str(os.cpu_count()),
        "load average (1/5/15 min)": load,
    }


def print_machine(title: str) -> None:
    """The benchmark's title and the machine it runs on."""
    print(f"== {title}")
    for key, value in machine_info().items():
        print(f"   {key}: {value}")
    print(f"   command: {' '.join([Path(sys.executable).name, *sys.argv])}")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with right-aligned numbers."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(_is_number(row[i]) for row in rows) if rows else False for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)
        )

    out = [line(list(headers)), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    print(format_table(headers, rows))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def write_calls(counter: CallCounter, system: str) -> Counter[str]:
    """Write calls per endpoint template (every status: retried calls count against us too)."""
    out: Counter[str] = Counter()
    for row in counter.snapshot():
        endpoint = str(row["endpoint"])
        if system == "hubspot" and any(m in endpoint for m in HUBSPOT_WRITE_MARKERS):
            out[endpoint] += int(row["count"])
        elif system == "salesforce" and SALESFORCE_WRITE_MARKER in endpoint and row["method"] != "GET":
            out[f"{row['method']} {endpoint}"] += int(row["count"])
    return out


def calls_total(counter: CallCounter) -> int:
    return sum(int(row["count"]) for row in counter.snapshot())


@dataclass
class WriteTally:
    """Records Closedloop handed to each connector write method, keyed (system, object, operation)."""

    records: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def install(self, runtime: Runtime) -> None:
        """Wrap the runtime's connector writes (instance attributes; the classes are untouched)."""
        hs, sf = runtime.edges.ma, runtime.edges.sfa
        self._wrap(hs, "update", lambda a: ("hubspot", "contact", "update", len(a[0])))
        self._wrap(hs, "upsert", lambda a: ("hubspot", "contact", "upsert", len(a[1])))
        self._wrap(sf, "upsert", lambda a: ("salesforce", a[0], "upsert", len(a[2])))
        self._wrap(sf, "update", lambda a: ("salesforce", a[0], "update", len(a[1])))
        self._wrap(sf, "create", lambda a: ("salesforce", a[0], "create", len(a[1])))

    def _wrap(
        self, target: Any, name: str, key: Callable[[tuple[Any, ...]], tuple[str, str, str, int]]
    ) -> None:
        original = getattr(target, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            system, obj, op, n = key(args)
            self.records[(system, obj, op)] += n
            return original(*args, **kwargs)

        setattr(target, name, wrapped)

    def total(self, system: str) -> int:
        return sum(n for (s, _o, _op), n in self.records.items() if s == system)

    def reset(self) -> None:
        self.records.clear()


@contextmanager
def running_closedloop(workdir: Path | None = None, **config: Any) -> Iterator[Scenario]:
    """Sandboxes + migrated SQLite store + runtime + embedded Celery worker, with no population.

    Keyword arguments go to :class:`ScenarioConfig` (``people`` defaults to 0: benchmarks seed
    their own records).
    """
    own = workdir is None
    base = Path(tempfile.mkdtemp(prefix="closedloop-bench-")) if workdir is None else workdir
    config.setdefault("people", 0)
    config.setdefault("mappings", ROOT / "mappings")
    scenario = Scenario(ScenarioConfig(workdir=base, **config))
    try:
        scenario.start()
        yield scenario
    finally:
        scenario.stop()
        if own:
            shutil.rmtree(base, ignore_errors=True)
