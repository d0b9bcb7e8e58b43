"""Smart-campaign webhooks of the Marketo sandbox ("Webhooks",
https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/webhooks/webhooks).

An admin defines a webhook (URL, request type, payload template, request token encoding, custom
headers) and a trigger campaign whose flow step calls it. Tokens such as ``{{lead.Email Address}}``
are filled in the URL, the template and the headers; with JSON encoding, string tokens come out
as quoted JSON strings. Marketo waits up to 30 s for the service and does not retry a failed call.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from sandboxes.marketo.schema import ACTIVITY_TYPE_IDS, CHANGE_DATA_VALUE, CHANGE_SCORE, NEW_LEAD, iso_z
from sandboxes.marketo.store import Activity, Lead, LeadStore

TOKEN = re.compile(r"\{\{\s*([a-zA-Z]+)\.([^}]+?)\s*\}\}")
TIMEOUT_SECONDS = 30.0


@dataclass
class Webhook:
    """A webhook as defined under Admin > Webhooks."""

    name: str
    url: str
    payload_template: str
    custom_headers: dict[str, str] = field(default_factory=dict)
    request_type: str = "POST"
    token_encoding: str = "JSON"  # or "Form/Url"


@dataclass
class TriggerCampaign:
    """A trigger smart campaign whose only flow step is Call Webhook.

    ``trigger`` is "Person is Created", "Data Value Changes" (``field`` names the attribute) or
    "Score is Changed".
    """

    id: int
    name: str
    trigger: str
    webhook: Webhook
    field: str | None = None


@dataclass
class Delivery:
    campaign: str
    lead_id: int
    url: str
    body: str
    headers: dict[str, str]
    status: int | None
    error: str | None = None


class WebhookCaller:
    """Runs trigger campaigns on new activities and makes their webhook calls in a thread."""

    def __init__(self, store: LeadStore, now: Callable[[], datetime]) -> None:
        self.store = store
        self.now = now
        self.campaigns: list[TriggerCampaign] = []
        self.deliveries: list[Delivery] = []
        self._queue: list[tuple[TriggerCampaign, int]] = []
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._busy = 0

    def on_activities(self, activities: list[Activity]) -> None:
        """Store listener: queue a call for every campaign an activity triggers."""
        for activity in activities:
            for campaign in self.campaigns:
                if self._triggers(campaign, activity):
                    with self._cv:
                        self._queue.append((campaign, activity.lead_id))
                        self._cv.notify_all()

    def _triggers(self, campaign: TriggerCampaign, activity: Activity) -> bool:
        type_ids = ACTIVITY_TYPE_IDS
        if campaign.trigger == "Person is Created":
            return activity.type_id == type_ids[NEW_LEAD]
        if campaign.trigger == "Score is Changed":
            return activity.type_id == type_ids[CHANGE_SCORE]
        if campaign.trigger == "Data Value Changes" and activity.type_id == type_ids[CHANGE_DATA_VALUE]:
            definition = self.store.fields.get(campaign.field or "")
            return definition is not None and activity.primary_id == definition.id
        return False

    # ----- rendering --------------------------------------------------------------------------

    def render(self, campaign: TriggerCampaign, lead: Lead) -> tuple[str, str, dict[str, str]]:
        """(url, body, headers) with tokens filled for ``lead``."""
        hook = campaign.webhook
        encoding = "json" if hook.token_encoding == "JSON" else "form"
        url = self._fill(hook.url, campaign, lead, "raw")
        body = self._fill(hook.payload_template, campaign, lead, encoding)
        headers = {k: self._fill(v, campaign, lead, "raw") for k, v in hook.custom_headers.items()}
        return url, body, headers

    def _fill(self, template: str, campaign: TriggerCampaign, lead: Lead, encoding: str) -> str:
        """Replace tokens: ``json`` gives JSON literals, ``form`` percent-encodes, ``raw`` as is."""
        by_label = {f.display_name: f.name for f in self.store.fields.values()}

        def value(match: re.Match[str]) -> str:
            scope, name = match.group(1), match.group(2)
            found: Any = None
            if scope == "lead":
                rest_name = by_label.get(name, name)
                found = self.store.render(lead, [rest_name]).get(rest_name)
            elif scope == "campaign":
                found = {"name": campaign.name, "id": campaign.id}.get(name)
            elif scope == "system" and name == "dateTime":
                found = iso_z(self.now())
            if encoding == "json":
                return json.dumps(found, ensure_ascii=False)
            text = "" if found is None else str(found)
            return urllib.parse.quote_plus(text) if encoding == "form" else text

        return TOKEN.sub(value, template)

    # ----- delivery ---------------------------------------------------------------------------

    def start(self) -> None:
        with self._cv:
            if self._thread is not None:
                return
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="marketo-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued call was made (tests)."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._queue and not self._busy, timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._stop or bool(self._queue))
                if self._stop:
                    return
                campaign, lead_id = self._queue.pop(0)
                self._busy += 1
            try:
                self._call(campaign, lead_id)
            finally:
                with self._cv:
                    self._busy -= 1
                    self._cv.notify_all()

    def _call(self, campaign: TriggerCampaign, lead_id: int) -> None:
        with self.store.lock:
            lead = self.store.leads.get(lead_id)
            if lead is None:
                return
            url, body, headers = self.render(campaign, lead)
        content_type = (
            "application/json"
            if campaign.webhook.token_encoding == "JSON"
            else "application/x-www-form-urlencoded"
        )
        try:
            response = requests.request(
                campaign.webhook.request_type,
                url,
                data=body.encode(),
                headers={"Content-Type": content_type, **headers},
                timeout=TIMEOUT_SECONDS,
            )
            delivery = Delivery(campaign.name, lead_id, url, body, headers, response.status_code)
        except requests.RequestException as exc:
            delivery = Delivery(campaign.name, lead_id, url, body, headers, None, type(exc).__name__)
        self.deliveries.append(delivery)
