"""Fresh state of a batch of people, read from both roles' systems in as few calls as the APIs allow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sync.connectors.contract import HistoryEvent, MarketingConnector, RoleState, SalesConnector, WriteTarget
from sync.identity import RecordRef
from sync.stages import PersonView


@dataclass
class PersonState:
    """Everything known about one person right now, from both roles' systems."""

    common_id: str
    ma_state: RoleState | None = None
    sfa_state: RoleState = field(default_factory=RoleState)

    @property
    def ma(self) -> dict[str, Any] | None:
        """The marketing-side person record's fields, or None when there is none."""
        if self.ma_state is None:
            return None
        return next(iter(self.ma_state.records.values()), None)

    @property
    def ma_id(self) -> str | None:
        return self.ma_state.primary_id if self.ma_state is not None else None

    @property
    def ma_updated_at(self) -> datetime | None:
        return self.ma_state.updated_at if self.ma_state is not None else None

    @property
    def sfa_updated_at(self) -> datetime | None:
        return self.sfa_state.updated_at

    @property
    def has_sfa(self) -> bool:
        return bool(self.sfa_state.records)

    def record(self, sfa_object: str | None) -> dict[str, Any] | None:
        """A sales-side record by object name (the primary one of an outcome object)."""
        return self.sfa_state.record(sfa_object) if sfa_object else None

    def view(self) -> PersonView:
        """The read-only view the stage engine and mapping evaluate."""
        return PersonView(ma=self.ma, sfa=self.sfa_state.records, related=self.sfa_state.related)


class StateReader:
    """Reads the fresh state of many people at once, through the two role connectors."""

    def __init__(self, ma: MarketingConnector, sfa: SalesConnector) -> None:
        self.ma = ma
        self.sfa = sfa

    def read(
        self, common_ids: Sequence[str], links: Mapping[str, Sequence[RecordRef]]
    ) -> dict[str, PersonState]:
        """State per common ID; records are found by common ID first, then by linked record IDs."""
        ma_states = self.ma.read_people(common_ids, links)
        sfa_states = self.sfa.read_people(common_ids, links)
        return {
            cid: PersonState(cid, ma_states.get(cid), sfa_states.get(cid) or RoleState())
            for cid in common_ids
        }

    def history(self, states: Mapping[str, PersonState]) -> dict[str, list[HistoryEvent]]:
        """Both systems' history of these people, as snapshots for replay."""
        out: dict[str, list[HistoryEvent]] = {cid: [] for cid in states}
        ma = {cid: s.ma_state for cid, s in states.items() if s.ma_state is not None}
        sfa = {cid: s.sfa_state for cid, s in states.items() if s.has_sfa}
        for connector, role_states in ((self.ma, ma), (self.sfa, sfa)):
            if role_states:
                for cid, events in connector.history(role_states).items():
                    out[cid] += events
        return out

    def write_target(self, state: PersonState) -> WriteTarget | None:
        """Where the person's mapped fields are written on the sales side now."""
        return self.sfa.write_target(state.sfa_state)
