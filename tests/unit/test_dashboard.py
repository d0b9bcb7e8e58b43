"""``/dashboard`` in a real headless Chromium, in English and Japanese, against a live store; and its
gate: off without a credential, 401 without the right one, strict security headers.

Needs the Debian package ``chromium`` (as the HTML report test does). Expected figures are counted
here with plain SQL over the stored history, not taken from the report code.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from sandboxes.common import ServerThread
from sync.config import Settings
from sync.owner_names import save_owner_names
from sync.store.db import Store, upgrade
from sync.web.app import create_app
from tests.unit.funnel_history import MAPPING, simulate
from tests.unit.test_report_html import chromium

USER, PASSWORD, TOKEN = "ana", "s3cret-pass", "tok-" + "x" * 28
PERIOD = {"since": "2026-10-01", "until": "2026-10-31"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'store.db'}"
    upgrade(url)
    s = Store(url)
    simulate(s, 300, seed=5)
    with s.session() as session:  # as read from the sales side by the owner-names task
        save_owner_names(session, {"005A": "Haruka Tanaka"}, datetime(2026, 11, 1, tzinfo=UTC))
    yield s
    s.dispose()


def settings(store: Store, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(database_url=store.url, mappings=MAPPING)
    values.update(overrides)
    return Settings(**values)


def with_basic(store: Store, **overrides: Any) -> Settings:
    return settings(store, dashboard_user=USER, dashboard_password=SecretStr(PASSWORD), **overrides)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def people_count(store: Store, stage: str, campaign: str | None = None, owner: str | None = None) -> int:
    """Different people with a move into ``stage`` in October 2026, optionally of one campaign/owner."""
    sql = (
        "SELECT COUNT(DISTINCT t.common_id) FROM transitions t JOIN people p ON p.common_id = t.common_id "
        "WHERE t.to_stage = :stage AND t.occurred_at >= :since AND t.occurred_at < :until"
    )
    params: dict[str, Any] = {
        "stage": stage,
        "since": datetime(2026, 10, 1, tzinfo=UTC),
        "until": datetime(2026, 11, 1, tzinfo=UTC),
    }
    if campaign:
        sql += " AND p.campaign = :campaign"
        params["campaign"] = campaign
    if owner:
        sql += " AND p.owner = :owner"
        params["owner"] = owner
    with store.session() as session:
        return int(session.execute(text(sql), params).scalar() or 0)


class Browser:
    """The dashboard served on a real socket, opened by headless Chromium with basic auth."""

    def __init__(self, app: Any) -> None:
        self.loads = 0

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            async def watch(message: Any) -> None:
                if message["type"] == "http.response.start" and message["status"] == 200:
                    self.loads += scope["path"] == "/dashboard"
                await send(message)

            await app(scope, receive, watch)

        self.server = ServerThread(counting).start()

    def url(self, query: dict[str, str]) -> str:
        base = self.server.url.replace("http://", f"http://{USER}:{PASSWORD}@")
        return f"{base}/dashboard?{urlencode(query)}"

    def args(self, profile: str) -> list[str]:
        return [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}"]  # fmt: skip

    def dump(self, query: dict[str, str]) -> tuple[str, str]:
        """The DOM after load, and Chromium's log (where CSP violations are reported)."""
        with tempfile.TemporaryDirectory() as profile:
            result = subprocess.run(
                [*self.args(profile), "--dump-dom", self.url(query)],
                capture_output=True, text=True, timeout=90, check=True,
            )  # fmt: skip
        return result.stdout, result.stderr

    def stay(self, query: dict[str, str], seconds: float) -> str:
        """Keep the page open like a wall screen for ``seconds``; Chromium's log."""
        with tempfile.TemporaryDirectory() as profile:
            proc = subprocess.Popen(
                [*self.args(profile), "--remote-debugging-port=0", self.url(query)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                time.sleep(seconds)
            finally:
                proc.terminate()
                _, log = proc.communicate(timeout=30)
        return log

    def close(self) -> None:
        self.server.stop()


def summary(dom: str) -> list[str]:
    block = re.search(r'<section class="summary" id="summary">(.*?)</section>', dom, re.S)
    assert block, dom[:2000]
    return [unescape(item) for item in re.findall(r"<li>(.*?)</li>", block[1], re.S)]


def stage_cell(dom: str, label: str) -> int:
    """The 'reached in period' figure of one stage row of the funnel table, as shown."""
    funnel = re.search(r'<section id="funnel">(.*?)</section>', dom, re.S)
    assert funnel
    row = re.search(rf'<td class="text">{re.escape(label)}</td><td>([\d,]+)</td>', funnel[1])
    assert row, (label, funnel[1][-1500:])
    return int(row[1].replace(",", ""))


def assert_strict_page(dom: str, log: str) -> None:
    assert "<script" not in dom.lower()
    assert not re.search(r'(src|href)="[a-z]+://', dom), "no external scripts, fonts or styles"
    assert "Content Security Policy" not in log, log[-3000:]
    assert dom.count("<svg") >= 6


@pytest.mark.parametrize("language", ["en", "ja"])
def test_dashboard_in_a_real_browser(store: Store, language: str) -> None:
    app = create_app(with_basic(store, language=language), store, lambda ids: None)
    browser = Browser(app)
    try:
        dom, log = browser.dump(PERIOD)
        mqls, sqls = people_count(store, "mql"), people_count(store, "sql")
        assert mqls > 20 and sqls > 10
        lines = summary(dom)
        if language == "en":
            assert '<html lang="en">' in dom
            assert "Live funnel dashboard — 1 Oct 2026 – 31 Oct 2026" in dom
            assert lines[0].startswith(
                f"Of the {mqls:,} people who became MQLs between 1 Oct 2026 and 31 Oct 2026, "
            )
            assert stage_cell(dom, "SQL") == sqls
        else:
            assert '<html lang="ja">' in dom
            assert "ファネル ライブダッシュボード — 2026年10月1日 – 2026年10月31日" in dom
            assert lines[0].startswith(f"2026年10月1日から2026年10月31日までにMQLになった{mqls:,}人のうち、")
            assert stage_cell(dom, "商談化") == sqls  # the mapping's label: {ja: 商談化}
            assert "期間中に各ステージに到達した人数" in dom
        assert_strict_page(dom, log)

        campaign, owner = "展示会2026", "005A"
        narrowed = {**PERIOD, "campaign": campaign, "owner": owner}
        dom, log = browser.dump(narrowed)
        n_mql = people_count(store, "mql", campaign, owner)
        n_sql = people_count(store, "sql", campaign, owner)
        assert 0 < n_mql < mqls
        first = summary(dom)[0]
        assert f" {n_mql:,} " in first if language == "en" else f"{n_mql:,}人のうち" in first
        assert stage_cell(dom, "SQL" if language == "en" else "商談化") == n_sql
        assert f'<option value="{campaign}" selected="">' in dom
        assert f'<option value="{owner}" selected="">Haruka Tanaka</option>' in dom  # a name, not an id
        assert_strict_page(dom, log)
    finally:
        browser.close()


def test_dashboard_refreshes_itself(store: Store) -> None:
    app = create_app(with_basic(store, dashboard_refresh_seconds=5), store, lambda ids: None)
    browser = Browser(app)
    try:
        log = browser.stay(PERIOD, seconds=13)
    finally:
        browser.close()
    assert browser.loads >= 2, "the page did not reload itself"
    assert "Content Security Policy" not in log


def test_dashboard_is_off_without_a_credential(store: Store) -> None:
    client = TestClient(create_app(settings(store), store, lambda ids: None))
    assert client.get("/dashboard").status_code == 404
    assert client.get("/dashboard", headers=basic("", "")).status_code == 404


def test_without_credentials_gets_401(store: Store) -> None:
    client = TestClient(create_app(with_basic(store), store, lambda ids: None))
    response = client.get("/dashboard")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Basic realm="Closedloop dashboard"')
    assert "default-src 'none'" in response.headers["content-security-policy"]
    for wrong in (
        basic(USER, "guess"),
        basic("eve", PASSWORD),
        basic(USER, ""),
        {"Authorization": "Basic %%%"},
    ):
        assert client.get("/dashboard", headers=wrong).status_code == 401
    assert client.get("/dashboard", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
    ok = client.get("/dashboard", params=PERIOD, headers=basic(USER, PASSWORD))
    assert ok.status_code == 200 and "chart-funnel" in ok.text


def test_token_sign_in_sets_a_cookie_that_is_not_the_token(store: Store) -> None:
    client = TestClient(
        create_app(settings(store, dashboard_token=SecretStr(TOKEN)), store, lambda ids: None)
    )
    refused = client.get("/dashboard")
    assert refused.status_code == 401 and 'name="token"' in refused.text
    assert "www-authenticate" not in refused.headers
    assert client.get("/dashboard", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/dashboard", headers={"Authorization": f"Bearer {TOKEN[:-1]}"}).status_code == 401
    bad = client.post("/dashboard/login", data={"token": "nope"}, follow_redirects=False)
    assert bad.status_code == 401 and "That token is not right." in bad.text
    client.cookies.clear()
    good = client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == "/dashboard"
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert TOKEN not in cookie
    assert client.get("/dashboard", params=PERIOD).status_code == 200  # the cookie alone lets in
    too_big = client.post("/dashboard/login", content=b"token=" + b"a" * 10_000,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert too_big.status_code == 413


def test_security_headers_and_a_csp_that_allows_only_the_pages_own_style(store: Store) -> None:
    client = TestClient(create_app(with_basic(store), store, lambda ids: None))
    response = client.get("/dashboard", params=PERIOD, headers=basic(USER, PASSWORD))
    headers = response.headers
    policy = headers["content-security-policy"]
    style = re.search(r"<style>(.*?)</style>", response.text, re.S)
    assert style
    digest = base64.b64encode(hashlib.sha256(style[1].encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    assert "unsafe-inline" not in policy and "script-src" not in policy  # default-src 'none' covers it
    assert "frame-ancestors 'none'" in policy and "form-action 'self'" in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert ' style="' not in response.text  # no inline style attributes for the CSP to refuse


def test_bad_filters_get_a_clear_400(store: Store) -> None:
    client = TestClient(create_app(with_basic(store), store, lambda ids: None))
    auth = basic(USER, PASSWORD)
    bad = client.get("/dashboard", params={"since": "yesterday"}, headers=auth)
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text
    backwards = client.get("/dashboard", params={"since": "2026-10-31", "until": "2026-10-01"}, headers=auth)
    assert backwards.status_code == 400 and "ends before it starts" in backwards.text


def test_settings_refuse_half_a_basic_auth_pair(tmp_path: Path) -> None:
    from sync.config import check_settings

    half = Settings(mappings=MAPPING, dashboard_user="ana")
    _, problems = check_settings(half)
    assert any("DASHBOARD_USER" in p for p in problems)
    assert not half.dashboard_enabled
    masked = Settings(mappings=MAPPING, dashboard_token=SecretStr(TOKEN)).masked()
    assert masked["dashboard_token"] == "***" and TOKEN not in str(masked)


def test_default_period_is_the_last_30_days(store: Store) -> None:
    client = TestClient(create_app(with_basic(store), store, lambda ids: None))
    before = datetime.now(UTC).date()
    page = client.get("/dashboard", headers=basic(USER, PASSWORD)).text
    after = datetime.now(UTC).date()
    since = re.search(r'name="since" value="([0-9-]+)"', page)
    until = re.search(r'name="until" value="([0-9-]+)"', page)
    assert since and until
    assert until[1] in {before.isoformat(), after.isoformat()}
    assert (date.fromisoformat(until[1]) - date.fromisoformat(since[1])).days == 29
