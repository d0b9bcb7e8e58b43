"""`closedloop demo` as a user runs it: embedded default, exits 0, shows the closed loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]


def test_demo_runs_the_closed_loop(tmp_path: Path) -> None:
    env_keys = {"PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT"}
    env = {
        k: v for k, v in __import__("os").environ.items() if k in env_keys or not k.startswith("CLOSEDLOOP_")
    }
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "demo", "--people", "120", "--seed", "5"],
        cwd=tmp_path,
        env={**env, "CLOSEDLOOP_MAPPINGS": str(ROOT / "mappings"), "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "all 120 people match the ground truth" in out
    assert "closedloop_" not in out or "loss_reason" in out
    html = tmp_path / "var" / "demo" / "funnel-report.html"
    assert html.is_file() and "<svg" in html.read_text()
    assert "Conversion" in out or "conversion" in out


@pytest.mark.slow  # the one-portal loop runs end to end in make test too (test_hubspot_only_end_to_end)
def test_demo_runs_the_closed_loop_in_one_hubspot_portal(tmp_path: Path) -> None:
    env_keys = {"PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT"}
    env = {
        k: v for k, v in __import__("os").environ.items() if k in env_keys or not k.startswith("CLOSEDLOOP_")
    }
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "demo", "--people", "120", "--seed", "5", "--sfa", "hubspot"],
        cwd=tmp_path,
        env={**env, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "working deals in the same HubSpot portal" in out
    assert "all 120 people match the ground truth" in out
    assert (tmp_path / "var" / "demo" / "funnel-report.html").is_file()


@pytest.mark.slow  # Marketo + Salesforce runs end to end in make test too (test_marketo_end_to_end)
def test_demo_runs_the_closed_loop_with_marketo(tmp_path: Path) -> None:
    env_keys = {"PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT"}
    env = {
        k: v for k, v in __import__("os").environ.items() if k in env_keys or not k.startswith("CLOSEDLOOP_")
    }
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "demo", "--ma", "marketo", "--people", "60", "--seed", "5"],
        cwd=tmp_path,
        env={**env, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "all 60 people match the ground truth" in out
    assert "Marketo leads with their closed-loop fields" in out
    assert (tmp_path / "var" / "demo" / "funnel-report.html").is_file()
