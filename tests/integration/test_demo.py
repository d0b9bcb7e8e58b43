"""`closedloop demo` as a user runs it: embedded default, exits 0, shows the closed loop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]


def _demo(tmp_path: Path, args: list[str], timeout: float, extra_env: dict[str, str] | None = None) -> str:
    """Run ``closedloop demo ARGS`` in a clean folder without the caller's CLOSEDLOOP_ settings; its stdout."""
    kept = {"PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT"}
    env = {k: v for k, v in os.environ.items() if k in kept or not k.startswith("CLOSEDLOOP_")}
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "demo", *args],
        cwd=tmp_path,
        env={**env, **(extra_env or {}), "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "var" / "demo" / "funnel-report.html").is_file()
    return result.stdout


def test_demo_runs_the_closed_loop(tmp_path: Path) -> None:
    out = _demo(
        tmp_path, ["--people", "120", "--seed", "5"], 240, {"CLOSEDLOOP_MAPPINGS": str(ROOT / "mappings")}
    )
    assert "all 120 people match the ground truth" in out
    assert "closedloop_" not in out or "loss_reason" in out
    html = tmp_path / "var" / "demo" / "funnel-report.html"
    assert "<svg" in html.read_text()
    assert "Conversion" in out or "conversion" in out


@pytest.mark.slow  # the one-portal loop runs end to end in make test too (test_hubspot_only_end_to_end)
def test_demo_runs_the_closed_loop_in_one_hubspot_portal(tmp_path: Path) -> None:
    out = _demo(tmp_path, ["--people", "120", "--seed", "5", "--sfa", "hubspot"], 300)
    assert "working deals in the same HubSpot portal" in out
    assert "all 120 people match the ground truth" in out


@pytest.mark.slow  # Marketo + Salesforce runs end to end in make test too (test_marketo_end_to_end)
def test_demo_runs_the_closed_loop_with_marketo(tmp_path: Path) -> None:
    out = _demo(tmp_path, ["--ma", "marketo", "--people", "60", "--seed", "5"], 400)
    assert "all 60 people match the ground truth" in out
    assert "Marketo leads with their closed-loop fields" in out
