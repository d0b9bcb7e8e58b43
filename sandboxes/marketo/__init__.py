"""Marketo sandbox: a REST API emulator served over real HTTP.

Point the real ``marketorestpython`` client at it by building ``MarketoClient(munchkin_id,
client_id, client_secret)`` and setting its ``host`` attribute to the server URL (the client
otherwise builds ``https://<munchkin>.mktorest.com``).

Pieces: :mod:`schema` (fields, activity types), :mod:`store` (leads, activity log, programs),
:mod:`limits` (tokens, 100/20 s window, daily quota, 10 concurrent calls), :mod:`api` (routes),
:mod:`webhooks` (trigger campaigns calling webhooks). The in-process helpers below act as
Marketo users, forms and smart campaigns would: they are neither counted nor rate limited, but
log activities like any other change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import FastAPI

from sandboxes.common import CallCounter, FaultPlan, SimClock, install_faults_and_counter
from sandboxes.marketo.api import build_app
from sandboxes.marketo.errors import error_response
from sandboxes.marketo.limits import Limits, TokenIssuer
from sandboxes.marketo.store import UI_SOURCE, LeadStore, Program, Source
from sandboxes.marketo.webhooks import TriggerCampaign, Webhook, WebhookCaller

__all__ = ["FLOW_SOURCE", "FORM_SOURCE", "UI_SOURCE", "MarketoSandbox", "Source", "Webhook"]

FORM_SOURCE = Source("Web form fillout")
FLOW_SOURCE = Source("Marketo Flow Action", reason="Smart campaign flow step")


class MarketoSandbox:
    """One emulated Marketo instance (subscription)."""

    def __init__(
        self,
        clock: SimClock | None = None,
        munchkin_id: str = "123-ABC-456",
        client_id: str = "sandbox-client-id",
        client_secret: str = "sandbox-client-secret",
        token_ttl: float = 3600.0,
        window_limit: int = 100,
        window_seconds: float = 20.0,
        daily_limit: int = 50_000,
        concurrency_limit: int = 10,
    ) -> None:
        self.clock = clock or SimClock()
        self.munchkin_id = munchkin_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = "closedloop@sandbox.example"
        self.store = LeadStore(self.clock)
        self.tokens = TokenIssuer(client_id, client_secret, token_ttl)
        self.limits = Limits(self.clock, window_limit, window_seconds, daily_limit, concurrency_limit)
        self.processing_seconds = 0.0  # server-side time each REST call takes, inside the concurrency gate
        self.counter = CallCounter()
        self.faults = FaultPlan()
        self.webhooks = WebhookCaller(self.store, self.clock.now)
        self.store.listeners.append(self.webhooks.on_activities)
        self.app: FastAPI = build_app(self)
        install_faults_and_counter(self.app, self.faults, self.counter, error_response)

    # ----- schema and programs ----------------------------------------------------------------

    def add_field(self, name: str, display_name: str, data_type: str = "string") -> None:
        """Create a custom lead field, as an admin does in Field Management."""
        with self.store.lock:
            self.store.add_field(name, display_name, data_type)

    def add_program(self, name: str, type_: str = "Default", channel: str = "Content") -> int:
        """Create a program; returns its id."""
        with self.store.lock:
            return self.store.add_program(name, type_, channel).id

    def programs(self) -> list[Program]:
        with self.store.lock:
            return list(self.store.programs.values())

    # ----- leads ------------------------------------------------------------------------------

    def create_lead(
        self, values: dict[str, Any], source: Source = FORM_SOURCE, at: datetime | None = None
    ) -> int:
        """Create a lead (a form fill-out by default); returns its id."""
        with self.store.lock:
            return self.store.create(self.store.validate(values), source, at).id

    def update_lead(
        self, lead_id: int, values: dict[str, Any], source: Source = UI_SOURCE, at: datetime | None = None
    ) -> None:
        """Change fields as a user, form or flow step would (each change logs an activity)."""
        with self.store.lock:
            lead = self.store.get(lead_id)
            if lead is None:
                raise KeyError(lead_id)
            self.store.update(lead, self.store.validate(values), source, at)

    def change_score(self, lead_id: int, delta: int, reason: str, field: str = "leadScore") -> None:
        """Add ``delta`` to a score field, as a scoring campaign's Change Score step does."""
        with self.store.lock:
            lead = self.store.get(lead_id)
            if lead is None:
                raise KeyError(lead_id)
            current = int(lead.values.get(field) or 0)
            source = Source("Marketo Flow Action", reason=reason)
            self.store.update(lead, {field: current + delta}, source)

    def delete_lead(self, lead_id: int) -> None:
        with self.store.lock:
            lead = self.store.get(lead_id)
            if lead is None:
                raise KeyError(lead_id)
            self.store.delete(lead)

    def merge_leads(self, winner_id: int, loser_ids: list[int]) -> None:
        """Merge duplicates from the UI: the winner keeps its values."""
        with self.store.lock:
            winner = self.store.get(winner_id)
            losers = [self.store.get(i) for i in loser_ids]
            if winner is None or any(loser is None for loser in losers):
                raise KeyError(f"{winner_id}/{loser_ids}")
            self.store.merge(winner, [loser for loser in losers if loser is not None], "Marketo UI")

    def get_lead(self, lead_id: int) -> dict[str, Any] | None:
        """Every set field of a live lead, plus id/createdAt/updatedAt."""
        with self.store.lock:
            lead = self.store.get(lead_id)
            if lead is None:
                return None
            return self.store.render(lead, ["id", "createdAt", "updatedAt", *lead.values])

    def leads(self) -> list[dict[str, Any]]:
        """Every live lead as :meth:`get_lead` renders it, by id."""
        with self.store.lock:
            return [
                self.store.render(lead, ["id", "createdAt", "updatedAt", *lead.values])
                for lead in sorted(self.store.live(), key=lambda lead: lead.id)
            ]

    def find_leads(self, field: str, value: Any) -> list[int]:
        with self.store.lock:
            return [lead.id for lead in self.store.find(field, value)]

    def lead_count(self) -> int:
        with self.store.lock:
            return sum(1 for _ in self.store.live())

    def activities(self, lead_id: int | None = None) -> list[dict[str, Any]]:
        """The activity log as the API renders it (all types)."""
        with self.store.lock:
            return [a.render() for a in self.store.activities if lead_id is None or a.lead_id == lead_id]

    # ----- tokens -----------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Make the current access token expire now (the client still believes it valid)."""
        self.tokens.expire_now()

    # ----- webhooks ---------------------------------------------------------------------------

    def add_trigger_campaign(
        self, name: str, trigger: str, webhook: Webhook, field: str | None = None
    ) -> int:
        """Activate a trigger campaign whose flow calls ``webhook``; returns the campaign id."""
        campaign = TriggerCampaign(1000 + len(self.webhooks.campaigns), name, trigger, webhook, field)
        self.webhooks.campaigns.append(campaign)
        return campaign.id

    def start_webhooks(self) -> None:
        self.webhooks.start()

    def stop_webhooks(self) -> None:
        self.webhooks.stop()
