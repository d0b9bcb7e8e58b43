"""Provision what Closedloop needs in both roles' systems: each connector creates or checks its fields."""

from __future__ import annotations

from dataclasses import dataclass, field

from sync.connectors.contract import MarketingConnector, Provisioning, SalesConnector
from sync.mapping import Mapping


@dataclass
class SetupReport:
    """What setup created (or would create), what an admin must create, and other problems."""

    created: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def add(self, part: Provisioning) -> None:
        self.created += part.created
        self.missing += part.missing
        self.problems += part.problems
        self.notices += part.notices


def run_setup(
    mapping: Mapping, ma: MarketingConnector, sfa: SalesConnector, dry_run: bool = False
) -> SetupReport:
    """Create what the connectors may create and check the rest, in both systems. Idempotent."""
    report = SetupReport()
    for connector in (ma, sfa):
        report.add(connector.provision(mapping, dry_run))
    return report
