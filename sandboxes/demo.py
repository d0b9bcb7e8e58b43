"""``closedloop demo``: the whole closed loop on the embedded default, in about a minute.

Both sandboxes, a SQLite store and Celery with its in-memory broker run in this process. A seeded
marketing population becomes MQLs in HubSpot, Closedloop hands them to Salesforce as Leads, the
scripted sales team works them to outcomes, and Closedloop brings the outcomes and loss reasons
back to HubSpot. The demo ends with the funnel report, some contacts' closed-loop properties, SLA
compliance and the path of the HTML report.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from sandboxes.scenario import Scenario, ScenarioConfig
from sandboxes.verify import verify
from sync import operations
from sync.funnel.figures import FunnelReport
from sync.funnel.report.html import render_html
from sync.funnel.report.i18n import Locale
from sync.funnel.report.table import render_table
from sync.mapping import Mapping
from sync.owner_names import owner_names
from sync.reporting import funnel_report
from sync.sla_hooks import sla_rules
from sync.store.models import Person

CLOSED_LOOP_PROPERTIES = (
    "closedloop_stage",
    "closedloop_outcome",
    "closedloop_sfa_status",
    "closedloop_amount",
    "closedloop_close_date",
    "closedloop_loss_reason",
)


MA_NAMES = {"hubspot": ("HubSpot", "contacts"), "marketo": ("Marketo", "leads")}
# Simulated time runs thousands of times faster than real time: the Marketo sandbox and Closedloop
# agree on a wider window than Marketo's 100 calls per 20 s (the contract tests keep the real one).
DEMO_MARKETO_WINDOW = 2000


def run_demo(
    people: int = 2000,
    seed: int = 7,
    keep_running: bool = False,
    workdir: Path = Path("var/demo"),
    sfa: Literal["salesforce", "hubspot"] = "salesforce",
    ma: Literal["hubspot", "marketo"] = "hubspot",
) -> int:
    """Run the demo with ``ma`` as the marketing tool and ``sfa`` as the sales tool (``sfa="hubspot"``:
    one HubSpot portal in both roles); returns a process exit code."""
    if ma == "marketo" and sfa == "hubspot":
        raise ValueError("the demo pairs Marketo with Salesforce only")
    console = Console()
    if workdir.exists():
        shutil.rmtree(workdir)
    tool, records = MA_NAMES[ma]
    console.rule("[bold]Closedloop demo")
    sales_side = "working deals in the same HubSpot portal" if sfa == "hubspot" else "in a Salesforce sandbox"
    console.print(
        f"{people:,} marketing {records} in a {tool} sandbox, a scripted sales team {sales_side},\n"
        "Closedloop syncing both ways (SQLite store, Celery with an in-process broker)."
    )
    began = time.monotonic()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("simulating", total=None, info="starting sandboxes")

        def progress(event: str, data: dict[str, Any]) -> None:
            if event == "step":
                info = (
                    f"{data['now'][:10]}  {records} {data['seeded']:,}  handed over {data['leads']:,}  "
                    f"sales actions {data['actions']:,}"
                )
                bar.update(task, info=info)

        config = ScenarioConfig(
            workdir=workdir,
            ma=ma,
            sfa=sfa,
            people=people,
            seed=seed,
            hubspot_search_per_second=50,
            marketo_window_limit=DEMO_MARKETO_WINDOW,
        )
        scenario = Scenario(config, progress)
        scenario.start()
        try:
            scenario.run()
            bar.update(task, info="done")
        except BaseException:
            scenario.stop()
            raise
    try:
        assert scenario.runtime is not None and scenario.boxes is not None
        now = scenario.clock.now()
        breaches = operations.detect_sla_breaches(now=now)
        operations.refresh_owner_names(now=now)
        mapping, _ = scenario.runtime.mappings.get()
        report = funnel_report(scenario.runtime.store, mapping, now=now)
        loc = Locale.of(scenario.runtime.settings.language, mapping)
        console.print("\n[bold]The funnel, measured by Closedloop from its transition log[/bold]")
        render_table(report, console, loc)
        _show_teams(console, scenario, report, mapping, loc)
        _show_contacts(console, scenario, tool, records)
        truth = scenario.ground_truth()
        salesforce = scenario.boxes.salesforce if sfa == "salesforce" else None
        verdict = verify(truth, scenario.runtime.store, scenario.marketing, salesforce)
        outcomes = ", ".join(f"{count:,} {name}" for name, count in sorted(truth.outcome_counts().items()))
        console.print(f"\nWhat the sales team really did (ground truth): {outcomes}.")
        console.print(
            f"Closedloop's stages, transition times and {tool} fields vs that ground truth: "
            + ("[green]" if verdict.ok else "[red]")
            + verdict.summary()
            + f"[/]\nSLA breaches detected at the end: {breaches:,}."
        )
        html = workdir / "funnel-report.html"
        html.write_text(render_html(report, loc), encoding="utf-8")
        calls = scenario.boxes.hubspot.counter.total() + scenario.boxes.salesforce.counter.total()
        if scenario.boxes.marketo is not None:
            calls += scenario.boxes.marketo.counter.total()
        console.print(
            f"\nHTML report: [bold]{html.resolve()}[/bold]\n"
            f"Simulated {scenario.stats.steps} steps in {time.monotonic() - began:.0f}s wall time, "
            f"{calls:,} API calls in all."
        )
        if keep_running:
            _keep_running(console, scenario)
    finally:
        scenario.stop()
    return 0 if verdict.ok else 1


def _show_teams(
    console: Console, scenario: Scenario, report: FunnelReport, mapping: Mapping, loc: Locale
) -> None:
    """Each team with its stages, the people in them now, its named owners and its SLAs' compliance."""
    assert scenario.runtime is not None
    current = {row.stage: row.current for row in report.stages}
    with scenario.runtime.store.session() as session:
        team_of = {stage: team.id for team in mapping.teams() for stage in team.stages}
        per_team: dict[str, set[str]] = {}  # who owns the people now in the team's stages
        rows = session.execute(select(Person.stage, Person.owners).where(Person.owners.is_not(None)))
        for stage, owners in rows:
            owning = team_of.get(stage or "")
            if owning is not None and (owners or {}).get(owning):
                per_team.setdefault(owning, set()).add(str(owners[owning]))
        names = owner_names(session)
    rules = sla_rules(mapping)
    table = Table(title="The four teams: their stages, people, owners and SLAs")
    for column in ("team", "stages", "people now", "owners", "SLAs (kept on time)"):
        table.add_column(column)
    for team in mapping.teams():
        slas = [
            f"{s.sla_id} ({s.allowance}): {loc.pct(s.compliance_rate) if s.compliance_rate is not None else '-'}"
            for s in report.sla
            if any(rule.id == s.sla_id and rule.team == team.id for rule in rules)
        ]
        table.add_row(
            loc.team(team.id),
            ", ".join(loc.stage(stage) for stage in team.stages),
            f"{sum(current.get(stage, 0) for stage in team.stages):,}",
            ", ".join(sorted(names.get(o, o) for o in per_team.get(team.id, ()))) or "-",
            "\n".join(slas) or "-",
        )
    console.print(table)


def _show_contacts(console: Console, scenario: Scenario, tool: str, records: str) -> None:
    """A few marketing records as a marketer sees them: with their closed-loop fields."""
    assert scenario.boxes is not None
    shown: dict[str, dict[str, Any]] = {}
    for contact in scenario.marketing.contacts():
        props = contact["properties"]
        outcome = props.get("closedloop_outcome")
        if outcome and outcome not in shown:
            shown[outcome] = props
    table = Table(title=f"{tool} {records} with their closed-loop fields (what marketing sees)")
    table.add_column("email")
    for name in CLOSED_LOOP_PROPERTIES:
        table.add_column(name.replace("closedloop_", ""))
    for props in shown.values():
        table.add_row(str(props.get("email")), *[str(props.get(n) or "") for n in CLOSED_LOOP_PROPERTIES])
    console.print(table)


def _keep_running(console: Console, scenario: Scenario) -> None:
    assert scenario.boxes is not None
    info = scenario.boxes.info()
    console.print("\nSandboxes and the service keep running; press Ctrl-C to stop.")
    for key, value in info.items():
        console.print(f"  {key}: {value}")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
