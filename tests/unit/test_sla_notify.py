"""Breach notifications posted to a local incoming-webhook receiver: once per breach, retried, never leaked."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML
from sqlalchemy import select
from structlog.testing import capture_logs

from sync.config import Settings
from sync.funnel.notify import ATTEMPTS, SENT, NotifyFailed, post_json
from sync.mapping import lint_text, parse_mapping_data
from sync.sla_hooks import SlaHooks
from sync.store.db import Store
from sync.store.models import SlaTimer

DEFAULT_MAPPING = Path(__file__).parents[2] / "mappings" / "default.yaml"
T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)  # a Monday
SECRET_PATH = "/services/T0000/B0000/xK9s3cretW3bhookT0ken"
TIMEOUT = 0.5


class Receiver:
    """A tiny incoming-webhook endpoint on 127.0.0.1: answers 200, 500, or too late, as told."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.accepted: list[dict[str, Any]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.attempts += 1
                mode = receiver.mode  # as when the request arrived: the test moves on meanwhile
                ok = self.path == SECRET_PATH and self.headers.get("Content-Type") == "application/json"
                if mode == "slow":
                    time.sleep(TIMEOUT * 3)
                status = 200 if mode == "ok" and ok else 500
                if status == 200:
                    receiver.accepted.append(json.loads(body))
                try:
                    self.send_response(status)
                    self.end_headers()
                    self.wfile.write(b"ok" if status == 200 else b"error")
                except BrokenPipeError:  # the client gave up waiting (the "slow" mode)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    first, second = Receiver(), Receiver()
    yield first, second
    first.close()
    second.close()


class Sink:
    """The Salesforce task / HubSpot flag feedback, recorded (the vendors are not under test here)."""

    def __init__(self) -> None:
        self.tasks: list[str] = []

    def create_sfa_task(self, common_id: str, sla_id: str, due_at: datetime) -> None:
        self.tasks.append(common_id)

    def set_ma_property(self, common_id: str, sla_id: str, breached_at: datetime) -> None:
        pass


def hooks_with_notify() -> SlaHooks:
    """The default mapping, with first_touch notifying the default URL and kickoff another variable's."""
    data = YAML(typ="safe").load(DEFAULT_MAPPING.read_text(encoding="utf-8"))
    for sla in data["slas"]:
        if sla["id"] == "first_touch":
            sla["notify"] = {}
        if sla["id"] == "kickoff":
            sla["notify"] = {"url_env": "SALES_TEAM_SLA_WEBHOOK"}
    return SlaHooks(parse_mapping_data(data))


def settings(url: str) -> Settings:
    return Settings(sla_webhook_url=url, sla_webhook_timeout=TIMEOUT)


def breach(store: Store, hooks: SlaHooks, people: list[str], stage: str = "mql") -> None:
    with store.session() as session:
        for cid in people:
            hooks.on_transition(session, cid, stage, T0)


def run(store: Store, hooks: SlaHooks, now: datetime, config: Settings, sink: Sink) -> Any:
    """What the detection task does: mark breaches and apply feedback, commit, then notify."""
    with store.session() as session:
        hooks.detect(session, now, sink)
    return hooks.notify(store.session, now, config)


def feedback(store: Store) -> dict[str, dict[str, Any]]:
    with store.session() as session:
        return {t.common_id: dict(t.feedback) for t in session.scalars(select(SlaTimer))}


def texts(receiver: Receiver) -> list[str]:
    return [body["text"] for body in receiver.accepted]


def test_each_breach_is_posted_once_across_runs(
    store: Store, receivers: tuple[Receiver, Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook, other = receivers
    monkeypatch.setenv("SALES_TEAM_SLA_WEBHOOK", other.url)
    hooks = hooks_with_notify()
    breach(store, hooks, ["p1", "p2", "p3"])
    breach(store, hooks, ["q1"], stage="won")
    config, sink = settings(hook.url), Sink()
    for hours in (25, 26, 30, 24 * 10, 24 * 11):  # first_touch breaches at 24 h, kickoff within 10 days
        run(store, hooks, T0 + timedelta(hours=hours), config, sink)
    assert len(hook.accepted) == 3
    for cid in ("p1", "p2", "p3"):
        [text] = [t for t in texts(hook) if f"person {cid}:" in t]
        assert text.startswith("SLA breached: first_touch (mql → sal within 24h)")
    assert [t.split(" (")[0] for t in texts(other)] == ["SLA breached: kickoff"]
    assert "person q1:" in texts(other)[0]
    assert sink.tasks == ["p1", "p2", "p3", "q1"]  # the Salesforce task feedback is unaffected
    assert all(SENT in fb and fb[ATTEMPTS] == 1 for fb in feedback(store).values())


def test_a_failing_receiver_delays_nothing_else_and_is_retried_later(
    store: Store, receivers: tuple[Receiver, Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook, other = receivers
    monkeypatch.setenv("SALES_TEAM_SLA_WEBHOOK", other.url)
    hooks = hooks_with_notify()
    breach(store, hooks, ["p1", "p2", "p3"])
    breach(store, hooks, ["q1"], stage="won")
    config, sink = settings(hook.url), Sink()
    now = T0 + timedelta(days=10)  # every timer is overdue (kickoff skips the 3 Nov holiday)

    hook.mode = "slow"  # each answer comes after three timeouts
    started = time.monotonic()
    first = run(store, hooks, now, config, sink)
    elapsed = time.monotonic() - started
    # one timeout for the dead receiver, not one per breach; the other SLA's receiver got its post
    assert elapsed < TIMEOUT * 2.5, elapsed
    assert (len(first.sent), len(first.failed), len(first.deferred)) == (1, 1, 2)
    assert len(other.accepted) == 1 and sorted(sink.tasks) == ["p1", "p2", "p3", "q1"]

    hook.mode = "error"  # 500s now; the failed one waits for its backoff, a deferred one is tried
    second = run(store, hooks, now + timedelta(seconds=30), config, sink)
    assert (len(second.sent), len(second.failed)) == (0, 1)
    assert hook.accepted == []

    hook.mode = "ok"
    run(store, hooks, now + timedelta(minutes=30), config, sink)
    run(store, hooks, now + timedelta(minutes=31), config, sink)
    assert sorted(t.split("person ")[1][:2] for t in texts(hook)) == ["p1", "p2", "p3"]
    assert len(other.accepted) == 1 and sorted(sink.tasks) == ["p1", "p2", "p3", "q1"]
    states = feedback(store)
    assert all(SENT in states[cid] for cid in ("p1", "p2", "p3", "q1"))
    assert max(states[cid][ATTEMPTS] for cid in ("p1", "p2", "p3")) == 2


def test_an_unset_url_is_recorded_and_retried(store: Store, receivers: tuple[Receiver, Receiver]) -> None:
    hook, _ = receivers
    hooks = hooks_with_notify()
    breach(store, hooks, ["p1"])
    now = T0 + timedelta(hours=25)
    result = run(store, hooks, now, Settings(sla_webhook_url=None), Sink())
    assert len(result.failed) == 1
    assert feedback(store)["p1"]["notify_error"] == "no webhook URL: CLOSEDLOOP_SLA_WEBHOOK_URL is not set"
    run(store, hooks, now + timedelta(minutes=5), settings(hook.url), Sink())
    assert len(hook.accepted) == 1 and SENT in feedback(store)["p1"]


def test_the_url_appears_in_no_log_line_record_or_output(
    store: Store,
    receivers: tuple[Receiver, Receiver],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hook, _ = receivers
    hooks = hooks_with_notify()
    breach(store, hooks, ["p1", "p2"])
    config = settings(hook.url)
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        for mode, minutes in (("error", 0), ("slow", 120), ("ok", 240)):
            hook.mode = mode
            run(store, hooks, T0 + timedelta(hours=25, minutes=minutes), config, Sink())
    assert len(hook.accepted) == 2
    events = [entry["event"] for entry in logs]
    assert "sla_notify_failed" in events and "sla_notified" in events
    breached = [entry for entry in logs if entry["event"] == "sla_breached"]
    assert len(breached) == 2 and not any("missing_fields" in entry for entry in breached)  # time SLAs
    out = capsys.readouterr()
    seen = json.dumps(logs, default=str) + caplog.text + out.out + out.err + json.dumps(feedback(store))
    seen += json.dumps(config.masked(), default=str) + repr(config)
    assert "xK9s3cret" not in seen and hook.url not in seen
    assert config.masked()["sla_webhook_url"] == "***"


def test_a_bad_webhook_setting_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(sla_webhook_url="ftp://hooks.example/xK9s3cret")
    assert "must start with https://" in str(raised.value.errors()[0]["msg"])
    assert "xK9s3cret" not in raised.value.errors()[0]["msg"]


def test_a_url_pasted_into_the_mapping_is_refused_at_its_position_without_echoing_it() -> None:
    text = DEFAULT_MAPPING.read_text(encoding="utf-8")
    line = "  - {id: first_touch, from: mql, to: sal, within: 24h, on_breach: [log, sfa_task]}"
    assert line in text
    pasted = line[:-1] + ', notify: {url_env: "https://hooks.example/xK9s3cret"}}'
    model, errors = lint_text(text.replace(line, pasted), "default.yaml")
    row = text.splitlines().index(line) + 1
    assert model is None
    assert [str(e) for e in errors] == [
        f"default.yaml:{row}:{pasted.index('https')}: slas[0].notify.url_env: expected an environment "
        "variable name in upper case, e.g. CLOSEDLOOP_SLA_WEBHOOK_URL"
    ]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:1/xK9s3cret", "network error (ConnectionRefusedError)"),  # nothing listens
        ("http://[::1/xK9s3cret", "invalid URL"),
        ("http://127.0.0.1:notaport/xK9s3cret", "invalid URL"),
        ("file:///etc/xK9s3cret", "not an http(s) URL"),
    ],
)
def test_a_failed_post_says_why_without_the_url(url: str, kind: str) -> None:
    with pytest.raises(NotifyFailed) as raised:
        post_json(url, {"text": "x"}, TIMEOUT)
    assert raised.value.kind == kind and "xK9s3cret" not in str(raised.value)
