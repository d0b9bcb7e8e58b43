"""Bad input against the running service: each gets a clear error, harms nothing else, and nothing is lost.

One small scenario (PostgreSQL store, embedded workers, the web app on a real socket) runs while a
thread sends bad webhook requests. An admin's mapping without the Company truncation lets a few
long company names through to Salesforce, which rejects them (STRING_TOO_LONG): those people are
recorded per record with a category while everyone else syncs; ``closedloop replay`` after the data
is fixed hands them over. A mapping hot-reload that fails lint is reported with ``file:line:col`` and
the last good mapping keeps syncing. In the end everything equals the ground truth.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from sandboxes.common import ServerThread
from sandboxes.hubspot_webhooks import sign_v3
from sandboxes.scenario import Scenario, ScenarioConfig
from sandboxes.verify import verify
from sync.store.models import InboxEvent, SyncError
from sync.web.app import create_app
from tests.conftest import FULL_PROFILE
from tests.integration.harness import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(7200 if FULL_PROFILE else 300)]

PEOPLE = 400 if FULL_PROFILE else 60
SECRET = "bad-input-secret"
LONG_COMPANY = "Very Long Company Name " * 12  # 276 characters; Lead.Company holds 255


def _mapping_without_company_truncation(tmp_path: Path) -> Path:
    folder = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", folder)
    default = folder / "default.yaml"
    text = default.read_text(encoding="utf-8")
    assert "transform: [nfkc, trim, {truncate: 255}]" in text
    default.write_text(text.replace("transform: [nfkc, trim, {truncate: 255}]", "transform: [nfkc, trim]"))
    return folder


class BadRequests:
    """Sends every kind of bad webhook request in a loop; records the statuses it got."""

    def __init__(self, url: str, public_url: str) -> None:
        self.url = f"{url}/webhooks/hubspot"
        self.uri = f"{public_url}/webhooks/hubspot"
        self.seen: dict[str, Counter[int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _signed(self, body: str, ts_ms: int, secret: str = SECRET) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": sign_v3(secret, "POST", self.uri, body, str(ts_ms)),
            "X-HubSpot-Request-Timestamp": str(ts_ms),
        }

    def cases(self) -> dict[str, tuple[bytes, dict[str, str]]]:
        now = int(time.time() * 1000)
        event = json.dumps(
            [{"eventId": 1, "subscriptionType": "contact.creation", "objectId": 1, "portalId": 1}]
        )
        malformed = '[{"eventId": "not a number", "subscriptionType": 7}'
        oversized = json.dumps(
            [{"eventId": 2, "subscriptionType": "contact.creation", "pad": "x" * 1_100_000}]
        )
        return {
            "bad_signature": (event.encode(), self._signed(event, now, secret="wrong-secret")),
            "stale": (event.encode(), self._signed(event, now - 10 * 60 * 1000)),
            "future": (event.encode(), self._signed(event, now + 10 * 60 * 1000)),
            "unsigned": (event.encode(), {"Content-Type": "application/json"}),
            "malformed": (malformed.encode(), self._signed(malformed, now)),
            "oversized": (oversized.encode(), self._signed(oversized, now)),
            "wrong_type": (event.encode(), {**self._signed(event, now), "Content-Type": "text/plain"}),
        }

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            for name, (body, headers) in self.cases().items():
                status = session.post(self.url, data=body, headers=headers, timeout=30).status_code
                self.seen.setdefault(name, Counter())[status] += 1
            time.sleep(0.2)

    def __enter__(self) -> BadRequests:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _open_errors(scenario: Scenario) -> list[SyncError]:
    assert scenario.runtime is not None
    with scenario.runtime.store.session() as session:
        return list(
            session.scalars(
                select(SyncError).where(SyncError.status == "open", SyncError.operation != "webhook")
            )
        )


def test_bad_input_is_contained_and_nothing_is_lost(tmp_path: Path, pg_url: str) -> None:
    config = ScenarioConfig(
        workdir=tmp_path,
        people=PEOPLE,
        seed=41,
        database_url=pg_url,
        mappings=_mapping_without_company_truncation(tmp_path),
        hubspot_search_per_second=50,
        extra_settings={"hubspot_webhook_secret": SECRET, "public_base_url": "http://closedloop.test"},
    )
    scenario = Scenario(config)
    try:
        scenario.start()
        _exercise(scenario, config)
    finally:
        scenario.stop()


def _exercise(scenario: Scenario, config: ScenarioConfig) -> None:
    assert scenario.runtime is not None and scenario.boxes is not None
    runtime = scenario.runtime
    # A few people who will become MQLs carry a company name Salesforce cannot store.
    mqls = [c for c in scenario.seeder.contacts.values() if c.is_mql][:3]
    assert len(mqls) == 3
    for contact in mqls:
        scenario.seeder.contacts[contact.key] = replace(contact, company=LONG_COMPANY)
    bad_emails = {c.normalised_email for c in mqls}

    from workers.tasks import process_inbox

    web = ServerThread(
        create_app(runtime.settings, runtime.store, lambda ids: process_inbox.delay(list(ids)))
    ).start()
    try:
        with BadRequests(web.url, "http://closedloop.test") as bad:
            scenario.run()
        # every bad request got its own clear rejection, again and again, while the sync ran
        expected = {"bad_signature": 401, "stale": 401, "future": 401, "unsigned": 401}
        expected |= {"malformed": 400, "oversized": 413, "wrong_type": 415}
        for name, status in expected.items():
            assert set(bad.seen.get(name, {})) == {status}, (name, bad.seen.get(name))
        with runtime.store.session() as session:
            webhook_errors = list(session.scalars(select(SyncError).where(SyncError.operation == "webhook")))
            inbox = list(session.scalars(select(InboxEvent)))
        assert webhook_errors and {e.category for e in webhook_errors} == {"bad_event"}
        assert not inbox  # nothing bad reached the inbox

        # Salesforce rejected exactly the long company names, per record, with a category.
        errors = _open_errors(scenario)
        assert {(e.role, e.connector, e.category, e.code) for e in errors} == {
            ("sfa", "salesforce", "validation", "STRING_TOO_LONG")
        }
        people = {p.common_id: p.email for p in _people(scenario)}
        assert {people[e.common_id] for e in errors} == bad_emails
        leads = {(r.get("Email") or "").lower() for r in scenario.boxes.salesforce.records("Lead")}
        assert not bad_emails & leads
        assert len(leads) >= 5  # the rest of each batch went through

        # The admin fixes the data; `closedloop replay` hands the people over.
        for email in bad_emails:
            (hid,) = scenario.boxes.hubspot.find_contacts("email", email)
            scenario.boxes.hubspot.update_contact(hid, {"company": "Fixed Company KK"})
        replay = subprocess.run(
            [sys.executable, "-c", "from workers.cli import app; app()", "replay"],
            cwd=ROOT,
            env={**os.environ, **scenario.settings_env()},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert replay.returncode == 0, replay.stderr[-2000:]
        assert "retried 3 person(s)" in replay.stdout
        assert not _open_errors(scenario)
        by_email = {(r.get("Email") or "").lower(): r for r in scenario.boxes.salesforce.records("Lead")}
        assert all(by_email[e]["Company"] == "Fixed Company KK" for e in bad_emails)

        # A mapping edit that fails lint: rejected with file:line:col, the last good one keeps syncing.
        default = runtime.mappings.path / "default.yaml"
        good_text = default.read_text(encoding="utf-8")
        default.write_text(good_text.replace("sync: two_way", "sync: two_wya", 1), encoding="utf-8")
        os.utime(default, (time.time() + 5, time.time() + 5))
        mapping_before = runtime.mappings.mapping
        mapping, changed = runtime.mappings.get()
        assert mapping is mapping_before and not changed
        assert runtime.mappings.last_errors
        assert re.search(r"default\.yaml:\d+:\d+", runtime.mappings.last_errors[0]), (
            runtime.mappings.last_errors
        )
        scenario.run()  # the sales team's follow-ups for the replayed people sync on the last good mapping
        assert runtime.mappings.mapping is mapping_before

        verdict = verify(
            scenario.ground_truth(), runtime.store, scenario.boxes.hubspot, scenario.boxes.salesforce
        )
        assert verdict.ok, verdict.summary()
        assert verdict.checked_people == PEOPLE
    finally:
        web.stop()


def _people(scenario: Scenario) -> list:  # type: ignore[type-arg]
    from sync.store.models import Person

    assert scenario.runtime is not None
    with scenario.runtime.store.session() as session:
        return list(session.scalars(select(Person)))
