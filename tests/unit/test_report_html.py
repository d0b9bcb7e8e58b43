"""The HTML report, rendered by a real headless Chromium: charts present, self-contained, readable.

Needs the Debian package ``chromium`` (``apt-get install -y chromium``); the test fails if it is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sync.funnel.customer_success import CohortChurn, CsStages, CustomerSuccess, Nps
from sync.funnel.figures import (
    CampaignRow,
    Conversion,
    FunnelReport,
    ReasonBreakdown,
    ReasonCount,
    ScoreBand,
    StageCount,
    Velocity,
)
from sync.funnel.report import render_html
from sync.funnel.sla_stats import SlaGroup, SlaSummary

CHARTS = {
    "chart-funnel": "People reaching each funnel stage in the period",
    "chart-campaigns": "Share of each campaign's MQLs that became SQLs and won deals",
    "chart-loss-reasons": "Why deals were lost",
    "chart-disqualification-reasons": "Why leads were disqualified",
    "chart-score": "Win rate by lead score at the time of MQL",
    "chart-sla": "SLA compliance: agreed response times between teams",
}


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("headless Chromium is required for this test: apt-get install -y chromium")
    return found


def dump_dom(path: Path) -> str:
    """The DOM after Chromium has loaded and parsed the file, offline."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom", path.as_uri()],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
    assert "<svg" in result.stdout, result.stderr[-2000:]
    return result.stdout


class Dom(HTMLParser):
    """Collects each svg's id, its <title> text, and any scripts or external references."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: dict[str, str] = {}
        self.rects: dict[str, int] = {}
        self.scripts = 0
        self.external: list[str] = []
        self._svg: str | None = None
        self._in_title = False
        self._depth = 0
        self.items: list[str] = []
        self._in_li = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if a.get(key, "") and "://" in (a[key] or ""):
                self.external.append(a[key] or "")
        if tag == "link":
            self.external.append(a.get("href") or "")
        if tag == "svg":
            self._svg, self._depth = a.get("id") or "", 0
            self.svgs[self._svg] = ""
            self.rects[self._svg] = 0
        elif self._svg is not None:
            self._depth += 1
            if tag == "title" and self._depth == 1:
                self._in_title = True
            if tag == "rect":
                self.rects[self._svg] += 1
        if tag == "li":
            self._in_li = True
            self.items.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = None
        elif self._svg is not None:
            self._depth -= 1
        if tag == "title":
            self._in_title = False
        if tag == "li":
            self._in_li = False

    def handle_data(self, data: str) -> None:
        if self._in_title and self._svg is not None:
            self.svgs[self._svg] += data
        if self._in_li:
            self.items[-1] += data


def report(**overrides: object) -> FunnelReport:
    """A hand-made report: the DOMAIN.md KPI-tree month (170 MQLs, 34 SQLs, 10 wins)."""
    fields: dict[str, object] = dict(
        since=datetime(2026, 10, 1, tzinfo=UTC),
        until=datetime(2026, 11, 1, tzinfo=UTC),
        generated_at=datetime(2026, 11, 2, 8, tzinfo=UTC),
        success_path=("lead", "mql", "sal", "sql", "opportunity", "won"),
        detours=("lost", "disqualified", "recycled"),
        stages=[StageCount(s, n, n // 2, n, n // 3) for s, n in
                [("lead", 340), ("mql", 170), ("sal", 90), ("sql", 34), ("opportunity", 30), ("won", 10),
                 ("lost", 12), ("disqualified", 40), ("recycled", 15)]],
        conversion=[Conversion("mql", "sql", None, 170, 34), Conversion("sql", "won", None, 34, 10)],
        velocity=[Velocity("mql", "sal", 90, 5.5, 30.0), Velocity("sql", "won", 10, 400.0, 900.0)],
        by_campaign=[
            CampaignRow("Webinar <live>", 100, 24, 7, Decimal(7_000_000), 0.7),
            CampaignRow("Search ads", 70, 10, 3, Decimal(3_000_000), 0.3),
        ],
        loss_reasons=ReasonBreakdown([ReasonCount("Price", 8), ReasonCount("Timing", 4)],
                                     {"Search ads": [ReasonCount("Price", 8)]}),
        disqualification_reasons=ReasonBreakdown([ReasonCount("No budget", 40)], {}),
        score_validation=[ScoreBand("50-59", 50, 60, 100, 3, 10), ScoreBand("90+", 90, None, 70, 7, 2)],
        sla=[SlaSummary("first_touch", "mql", "sal", "24h", 170, 150, 10, 5, 5, 2)],
    )  # fmt: skip
    fields.update(overrides)
    return FunnelReport(**fields)  # type: ignore[arg-type]


def render(tmp_path: Path, rep: FunnelReport) -> Dom:
    page = tmp_path / "report.html"
    page.write_text(render_html(rep), encoding="utf-8")
    dom = Dom()
    dom.feed(dump_dom(page))
    return dom


def test_charts_render_in_a_real_browser(tmp_path: Path) -> None:
    dom = render(tmp_path, report())
    for chart_id, title in CHARTS.items():
        assert dom.svgs.get(chart_id) == title, (chart_id, dom.svgs)
        assert dom.rects[chart_id] > 0, chart_id
    assert dom.scripts == 0
    assert dom.external == []


def test_summary_speaks_plainly(tmp_path: Path) -> None:
    dom = render(tmp_path, report())
    assert dom.items[0] == (
        "Of the 170 people who became MQLs between 1 Oct 2026 and 31 Oct 2026, 34 have since become SQLs "
        "(20%) and 10 won deals (5.9%), worth 10,000,000 in total."
    )
    text = "\n".join(dom.items)
    assert "“Webinar <live>”: 7 of the 10 wins" in text  # escaped in the file, shown as typed
    assert "“Price” (8 of 12)" in text
    assert "kept 94% of the time; 2 missed and still waiting" in text  # 150 / (150 + 10)


def test_legend_defines_the_jargon(tmp_path: Path) -> None:
    html = render_html(report())
    for term in ("MQL", "SAL", "SQL", "SLA"):
        assert f"<dt>{term}</dt>" in html


def test_empty_period_still_renders(tmp_path: Path) -> None:
    empty = report(
        stages=[StageCount(s, 0, 0, 0, 0) for s in ("lead", "mql", "won")],
        conversion=[], velocity=[], by_campaign=[], score_validation=[], sla=[],
        loss_reasons=ReasonBreakdown([], {}), disqualification_reasons=ReasonBreakdown([], {}),
    )  # fmt: skip
    dom = render(tmp_path, empty)
    assert {"chart-funnel", "chart-campaigns", "chart-loss-reasons", "chart-score"} <= set(dom.svgs)
    assert dom.items == ["No one became an MQL between 1 Oct 2026 and 31 Oct 2026."]


def cs_report() -> FunnelReport:
    """The hand-made month with customer-success figures and owner names."""
    cs = CustomerSuccess(
        stages=CsStages(),
        won_to_kickoff=Velocity("won", "kickoff", 9, 30.0, 700.0),
        kickoff_sla=SlaSummary("kickoff", "won", "kickoff", "3 business days", 10, 7, 2, 0, 1, 1),
        churn_by_cohort=[CohortChurn("2026-10", 8, 2)],
        customers=8,
        expanded=3,
        nps=Nps(5, 3, 1),
    )
    groups = [SlaGroup("owner", "005C", "*", 1, 4), SlaGroup("team", "customer_success", "*", 7, 2)]
    return report(customer_success=cs, owner_names={"005C": "佐藤 花子"}, sla_groups=groups)


def test_customer_success_and_owner_names_in_a_real_browser(tmp_path: Path) -> None:
    page = tmp_path / "cs.html"
    page.write_text(render_html(cs_report()), encoding="utf-8")
    text = dump_dom(page)
    dom = Dom()
    dom.feed(text)
    assert '<section id="customer-success">' in text and "Churn by the month people became customers" in text
    for cell in (">78%</td>", ">38%</td>", "+40 (5 responses: 3 promoters, 1 detractors)", "2026-10"):
        assert cell in text, cell  # kickoff SLA 7/9, expansion 3/8, NPS 60% - 20%
    assert "佐藤 花子" in text and "005C" not in text  # the owner's name, not the id
    summary = "\n".join(dom.items)
    assert "The funnel loses most time between SQL and Won: half take longer than 16.7 days." in summary
    assert "Half of the won deals had their kickoff within 30.0 h (9 in 10 within 29.2 days)." in summary
    assert "Of the 8 new customers, 25% churned and 38% expanded." in summary
    assert "Net Promoter Score: +40 from 5 responses." in summary
    assert "The team whose SLAs fail most: Customer success, 2 missed, 78% kept." in summary
