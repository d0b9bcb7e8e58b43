"""``/dashboard``: the HTML report's sections, read live from the store, filtered and self-refreshing.

The web process faces the internet for webhooks, so the dashboard exists only when a credential is
configured (a token, or a basic-auth user and password), compares credentials in constant time and
sends strict security headers. The page has no script at all: filters are a GET form and the page
reloads itself with ``<meta http-equiv="refresh">``, so the Content-Security-Policy allows nothing
but the page's own stylesheet (by hash) and form posts to itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute

from sync.config import Settings
from sync.funnel.figures import FunnelReport
from sync.funnel.filters import NO_VALUE, PeopleFilter
from sync.funnel.report.html import render_page
from sync.funnel.report.i18n import Locale
from sync.logs import get_logger
from sync.mapping import Mapping
from sync.owner_names import owner_names
from sync.reporting import funnel_report
from sync.store.db import Store
from sync.store.models import Person
from sync.timeutil import utcnow
from sync.web.body import RequestRejected, read_limited_body

log = get_logger(__name__)

PATH = "/dashboard"
COOKIE = "closedloop_dashboard"
_STYLE = re.compile(r"<style>(.*?)</style>", re.S)
_MAX_CHOICES = 500
DEFAULT_DAYS = 30


class BadFilter(ValueError):
    """A filter value the dashboard cannot use."""


@dataclass(frozen=True)
class Filters:
    """What the person asked to see: a period of whole UTC days, a campaign, an owner."""

    since: date | None = None
    until: date | None = None  # inclusive
    campaign: str | None = None
    owner: str | None = None

    @classmethod
    def parse(cls, query: dict[str, str]) -> Filters:
        """From the query string; BadFilter for a malformed date or an empty period."""

        def day(name: str) -> date | None:
            raw = (query.get(name) or "").strip()
            if not raw:
                return None
            try:
                return date.fromisoformat(raw)
            except ValueError:
                raise BadFilter(f"{name}: expected a date as YYYY-MM-DD, got {raw[:40]!r}") from None

        since, until = day("since"), day("until")
        if since and until and until < since:
            raise BadFilter("until: the period ends before it starts")
        return cls(since, until, (query.get("campaign") or None), (query.get("owner") or None))

    def period(self, today: date) -> tuple[datetime, datetime]:
        """``[since 00:00, day after until 00:00)`` in UTC; by default the last 30 days up to today.

        A default period keeps each reload cheap on a big store (the report streams every move of it).
        """
        last = self.until or today
        first = self.since or last - timedelta(days=DEFAULT_DAYS - 1)
        since = datetime(first.year, first.month, first.day, tzinfo=UTC)
        return since, datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter else ""


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of two texts (the time does not tell how much of a guess was right)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def session_value(token: str) -> str:
    """What the sign-in cookie holds: derived from the token, so the cookie never carries the token."""
    return hmac.new(token.encode("utf-8"), b"closedloop-dashboard-session", hashlib.sha256).hexdigest()


def authorised(request: Request, settings: Settings) -> bool:
    """A bearer token, the sign-in cookie, or basic-auth user and password, as configured."""
    token = _secret(settings.dashboard_token)
    password = _secret(settings.dashboard_password)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if token:
        if scheme == "bearer" and _same(value, token):
            return True
        cookie = request.cookies.get(COOKIE)
        if cookie and _same(cookie, session_value(token)):
            return True
    if settings.dashboard_user and password and scheme == "basic":
        try:
            user, sep, given = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user_ok = _same(user, settings.dashboard_user)
        password_ok = _same(given, password)  # both compared, whatever the first said
        return bool(sep) and user_ok and password_ok
    return False


def csp(style: str | None) -> str:
    """The policy: nothing by default; the page's own style block by hash; forms post to this origin."""
    source = "'none'"
    if style is not None:
        source = "'sha256-" + base64.b64encode(hashlib.sha256(style.encode("utf-8")).digest()).decode() + "'"
    return (
        f"default-src 'none'; style-src {source}; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def secure_headers(response: Response, request: Request, settings: Settings, page: str = "") -> Response:
    """The usual security headers, and the CSP that fits ``page``."""
    match = _STYLE.search(page)
    response.headers["Content-Security-Policy"] = csp(match[1] if match else None)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if _https(request, settings):
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


def _https(request: Request, settings: Settings) -> bool:
    if settings.public_base_url:
        return settings.public_base_url.startswith("https://")
    forwarded = request.headers.get("x-forwarded-proto", "") if settings.trust_forwarded_headers else ""
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"


def _login_page(loc: Locale, message: str = "") -> str:
    style = "body{font:15px sans-serif;max-width:420px;margin:60px auto}input,button{font:inherit}"
    note = f"<p>{escape(message)}</p>" if message else ""
    return (
        f'<!doctype html><html lang="{loc.language}"><head><meta charset="utf-8">'
        f'<meta name="robots" content="noindex"><title>{escape(loc.t("login"))}</title>'
        f"<style>{style}</style></head><body><h1>{escape(loc.t('login'))}</h1>{note}"
        f'<form method="post" action="{PATH}/login"><label>{escape(loc.t("token"))} '
        '<input type="password" name="token" autocomplete="current-password" required></label> '
        f"<button>{escape(loc.t('sign_in'))}</button></form></body></html>"
    )


@dataclass(frozen=True)
class _Choices:
    """What the filters offer: people's campaigns and owners, and the owners' names where known."""

    campaigns: list[str]
    owners: list[str]
    owner_names: dict[str, str]


def _choices(store: Store) -> _Choices:
    """Campaigns and owners to offer in the filters (people's values, ``(none)`` first if any)."""

    def values(column: InstrumentedAttribute[str | None]) -> list[str]:
        query = select(column).distinct().order_by(column).limit(_MAX_CHOICES)
        with store.session() as session:
            raw = list(session.scalars(query))
        named = [str(v) for v in raw if v not in (None, "")]
        return ([NO_VALUE] if len(named) < len(raw) else []) + named

    owners = values(Person.owner)
    with store.session() as session:
        names = owner_names(session, owners)
    return _Choices(values(Person.campaign), owners, names)


def _select(
    name: str, label: str, options: list[str], chosen: str | None, shown_as: Callable[[str], str]
) -> str:
    items = [f'<option value="">{escape(shown_as(""))}</option>']
    for value in options:
        selected = " selected" if value == chosen else ""
        shown = shown_as(value)
        items.append(f'<option value="{escape(value)}"{selected}>{escape(shown)}</option>')
    return f'<label>{escape(label)}<select name="{name}">{"".join(items)}</select></label>'


def _filters_form(
    report: FunnelReport, filters: Filters, choices: _Choices, loc: Locale, refresh: int
) -> str:
    last = (report.until - timedelta(seconds=1)).date()

    def campaign(value: str) -> str:
        return loc.campaign(value) if value else loc.t("all")

    def owner(value: str) -> str:  # a name where the sales side told us one, else the id
        return choices.owner_names.get(value, value) if value else loc.t("all")

    return (
        f'<form class="filters" method="get" action="{PATH}" aria-label="{escape(loc.t("filters"))}">'
        f'<label>{escape(loc.t("since"))}<input type="date" name="since" value="{report.since.date()}"></label>'
        f'<label>{escape(loc.t("until"))}<input type="date" name="until" value="{last}"></label>'
        + _select("campaign", loc.t("campaign"), choices.campaigns, filters.campaign, campaign)
        + _select("owner", loc.t("owner"), choices.owners, filters.owner, owner)
        + f"<button>{escape(loc.t('apply'))}</button></form>"
        + f'<p class="refresh">{escape(loc.t("refreshes", seconds=refresh, at=loc.moment(report.generated_at)))}</p>'
    )


def publish_dashboard_stages(store: Store, mapping: Callable[[], Mapping]) -> None:
    """Refresh the reporting schema's stage labels at start; a store not migrated yet only warns."""
    from sync.reporting_schema import has_reporting_schema, publish_stages

    try:
        if has_reporting_schema(store.engine):
            publish_stages(store, mapping())
    except Exception as exc:  # the webhooks must come up even if this fails
        log.warning("reporting_stages_not_published", error_type=type(exc).__name__)


def dashboard_router(settings: Settings, store: Store, mapping: Callable[[], Mapping]) -> APIRouter:
    """``GET /dashboard`` and ``POST /dashboard/login``; add it only when a credential is configured."""
    router = APIRouter()
    token = _secret(settings.dashboard_token)

    def locale() -> Locale:
        return Locale.of(settings.language, mapping())

    def refused(request: Request, message: str = "") -> Response:
        loc = locale()
        page = _login_page(loc, message) if token else ""
        response = HTMLResponse(page, status_code=401) if page else Response(status_code=401)
        if settings.dashboard_user:
            response.headers["WWW-Authenticate"] = 'Basic realm="Closedloop dashboard", charset="UTF-8"'
        return secure_headers(response, request, settings, page)

    def build(filters: Filters) -> tuple[FunnelReport, _Choices]:
        since, until = filters.period(utcnow().date())
        who = PeopleFilter(filters.campaign, filters.owner)
        report = funnel_report(store, mapping(), since=since, until=until, who=who)
        return report, _choices(store)

    @router.get(PATH)
    async def dashboard(request: Request) -> Response:
        if not authorised(request, settings):
            return refused(request)
        loc = locale()
        try:
            filters = Filters.parse(dict(request.query_params))
        except BadFilter as exc:
            return secure_headers(HTMLResponse(escape(str(exc)), status_code=400), request, settings)
        report, choices = await run_in_threadpool(build, filters)
        refresh = settings.dashboard_refresh_seconds
        head = f'<meta name="robots" content="noindex"><meta http-equiv="refresh" content="{refresh}">'
        top = _filters_form(report, filters, choices, loc, refresh)
        last = report.until - timedelta(seconds=1)
        title = f"{loc.t('dashboard')} — {loc.day(report.since)} – {loc.day(last)}"
        page = render_page(report, loc, title, head=head, top=top)
        return secure_headers(HTMLResponse(page), request, settings, page)

    @router.post(f"{PATH}/login")
    async def login(request: Request) -> Response:
        if not token:
            return refused(request)
        try:
            body = await read_limited_body(request, 4096)
        except RequestRejected as exc:
            return secure_headers(Response(exc.message, status_code=exc.status), request, settings)
        given = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
        if not _same(given, token):
            log.info("dashboard_login_refused")
            return refused(request, locale().t("bad_token"))
        response = RedirectResponse(PATH, status_code=303)
        response.set_cookie(
            COOKIE,
            session_value(token),
            httponly=True,
            samesite="strict",
            secure=_https(request, settings),
            path=PATH,
        )
        return secure_headers(response, request, settings)

    return router
