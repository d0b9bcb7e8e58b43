"""The one HTTP edge to Salesforce: every call goes through simple-salesforce, budgeted and retried."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce import exceptions as sf_exc

from sync.config import Settings
from sync.connectors.errors import (
    PermanentError,
    RecordError,
    RetryPolicy,
    call_with_retries,
    category_for_sf_code,
    classify_salesforce,
    duplicate_match_ids,
)
from sync.connectors.ratelimit import DailyAllocation
from sync.timeutil import to_sf_datetime

T = TypeVar("T")

COLLECTION_LIMIT = 200  # sObject Collections take at most 200 records per call.
IN_CLAUSE_CHUNK = 200
COMPOSITE_QUERIES = 5  # Composite: up to 25 subrequests, at most 5 of them queries.
REQUEST_TIMEOUT = 30.0


def soql_quote(value: str) -> str:
    """A SOQL string literal with quotes and backslashes escaped."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f"'{escaped}'"


def changed_since_soql(sobject: str, fields: Sequence[str], since: datetime | None) -> str:
    """SOQL for the records of ``sobject`` whose SystemModstamp is at or after ``since``, oldest first."""
    where = f" WHERE SystemModstamp >= {to_sf_datetime(since)}" if since else ""
    cols = ", ".join(dict.fromkeys(["Id", "SystemModstamp", *fields]))
    return f"SELECT {cols} FROM {sobject}{where} ORDER BY SystemModstamp ASC"


def soql_in(values: Sequence[str]) -> str:
    """``('a','b')`` for an IN clause."""
    return "(" + ",".join(soql_quote(v) for v in values) + ")"


class CABundleAdapter(HTTPAdapter):
    """Verifies TLS against one CA bundle, whatever REQUESTS_CA_BUNDLE says in the environment.

    requests lets that variable override ``Session.verify``; an explicit bundle must win.
    """

    def __init__(self, ca_bundle: str) -> None:
        super().__init__()
        self.ca_bundle = ca_bundle

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["verify"] = self.ca_bundle
        return super().send(request, **kwargs)


def make_salesforce_client(settings: Settings, session: requests.Session | None = None) -> Salesforce:
    """A simple-salesforce client for whichever credentials the settings hold."""
    http = session or requests.Session()
    if settings.salesforce_ca_bundle is not None:
        http.mount("https://", CABundleAdapter(str(settings.salesforce_ca_bundle)))
    version = settings.salesforce_api_version
    mode = settings.salesforce_auth_mode
    if mode == "session":
        assert settings.salesforce_session_id is not None
        return Salesforce(
            instance_url=settings.salesforce_instance_url,
            session_id=settings.salesforce_session_id.get_secret_value(),
            session=http,
            version=version,
        )
    if mode == "jwt":
        return Salesforce(
            username=settings.salesforce_username,
            consumer_key=settings.salesforce_consumer_key,
            privatekey_file=str(settings.salesforce_private_key_file),
            domain=settings.salesforce_domain,
            session=http,
            version=version,
        )
    if mode == "password":
        assert settings.salesforce_password is not None
        token = settings.salesforce_security_token
        return Salesforce(
            username=settings.salesforce_username,
            password=settings.salesforce_password.get_secret_value(),
            security_token=token.get_secret_value() if token else "",
            domain=settings.salesforce_domain,
            session=http,
            version=version,
        )
    raise PermanentError("salesforce", "no Salesforce credentials configured", category="auth")


class SalesforceConnector:
    """SOQL reads and sObject Collections writes, within our share of the daily allocation."""

    def __init__(
        self,
        client: Salesforce,
        allocation: DailyAllocation,
        policy: RetryPolicy,
        on_call: Callable[[str, str], None] | None = None,
    ) -> None:
        self._sf = client
        self._allocation = allocation
        self._policy = policy
        self._on_call = on_call

    def _call(self, endpoint: str, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            self._allocation.check()
            try:
                return fn()
            finally:
                usage = self._sf.api_usage.get("api-usage")
                if usage is not None:
                    self._allocation.update(usage.used, usage.total)

        def record(status: str) -> None:
            if self._on_call is not None:
                self._on_call(endpoint, status)

        return call_with_retries(attempt, classify_salesforce, self._policy, f"salesforce {endpoint}", record)

    # -- reads -------------------------------------------------------------------------------------

    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record of a SOQL query, following ``nextRecordsUrl`` page by page."""
        page = self._call("query", lambda: self._sf.query(soql, timeout=REQUEST_TIMEOUT))
        yield from self._pages(page)

    def query_together(self, soqls: Sequence[str]) -> list[list[dict[str, Any]]]:
        """The records of several SOQL queries, read through Composite: one API call per 5 queries.

        Composite takes up to 25 subrequests, at most 5 of them queries, and counts as one call
        against the org's allocation; a result larger than a page continues with ``queryMore``.
        """
        out: list[list[dict[str, Any]]] = []
        for start in range(0, len(soqls), COMPOSITE_QUERIES):
            chunk = list(soqls[start : start + COMPOSITE_QUERIES])
            body = {
                "allOrNone": False,
                "compositeRequest": [
                    {"method": "GET", "url": f"{self._path}/query/?q={quote(soql)}", "referenceId": f"q{i}"}
                    for i, soql in enumerate(chunk)
                ],
            }
            answer = self._call("composite", partial(self._sf.restful, "composite", method="POST", json=body))
            for sub in (answer or {}).get("compositeResponse", []):
                status, page = int(sub.get("httpStatusCode", 500)), sub.get("body")
                if status >= 300 or not isinstance(page, dict):
                    # The same classification as any other call: retried only if transient.
                    raise classify_salesforce(
                        sf_exc.SalesforceGeneralError(
                            f"composite {sub.get('referenceId')}", status, "query", page
                        )
                    )
                out.append(list(self._pages(page)))
        return out

    def _pages(self, page: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            yield from page.get("records", [])
            nxt = page.get("nextRecordsUrl")
            if page.get("done", True) or not nxt:
                return
            page = self._call(
                "query", partial(self._sf.query_more, nxt, identifier_is_url=True, timeout=REQUEST_TIMEOUT)
            )

    @property
    def _path(self) -> str:
        """The REST path prefix of this org's API version, for Composite subrequests."""
        return f"/services/data/v{self._sf.sf_version}"

    def count(self, sobject: str, where: str = "") -> int:
        """``SELECT COUNT() FROM sobject [WHERE ...]`` (one call; for progress display)."""
        soql = f"SELECT COUNT() FROM {sobject}" + (f" WHERE {where}" if where else "")
        page = self._call("query", lambda: self._sf.query(soql, timeout=REQUEST_TIMEOUT))
        return int(page.get("totalSize", 0))

    def select_in(
        self, sobject: str, fields: Sequence[str], key: str, values: Sequence[str], extra_where: str = ""
    ) -> list[dict[str, Any]]:
        """Records whose ``key`` is in ``values`` (chunked so the SOQL stays short)."""
        cols = ", ".join(dict.fromkeys(["Id", *fields]))
        out: list[dict[str, Any]] = []
        unique = list(dict.fromkeys(v for v in values if v))
        for start in range(0, len(unique), IN_CLAUSE_CHUNK):
            chunk = unique[start : start + IN_CLAUSE_CHUNK]
            where = f"{key} IN {soql_in(chunk)}" + (f" AND {extra_where}" if extra_where else "")
            out.extend(self.query(f"SELECT {cols} FROM {sobject} WHERE {where}"))
        return out

    def describe_fields(self, sobject: str) -> dict[str, dict[str, Any]]:
        """Field name → describe entry for ``sobject``."""
        result = self._call("describe", lambda: getattr(self._sf, sobject).describe())
        return {f["name"]: f for f in result.get("fields", [])}

    # -- writes ------------------------------------------------------------------------------------

    def upsert(
        self, sobject: str, external_field: str, records: Sequence[dict[str, Any]]
    ) -> tuple[dict[str, str], list[RecordError]]:
        """Upsert by External ID through sObject Collections, 200 per call.

        Returns (external ID → record Id, per-record failures).
        """
        ids: dict[str, str] = {}
        errors: list[RecordError] = []
        for start in range(0, len(records), COLLECTION_LIMIT):
            chunk = records[start : start + COLLECTION_LIMIT]
            body = {
                "allOrNone": False,
                "records": [{"attributes": {"type": sobject}, **rec} for rec in chunk],
            }
            results = self._call(
                "composite/sobjects/upsert",
                partial(
                    self._sf.restful,
                    f"composite/sobjects/{sobject}/{external_field}",
                    method="PATCH",
                    json=body,
                    timeout=REQUEST_TIMEOUT,
                ),
            )
            for rec, res in zip(chunk, results or [], strict=False):
                key = str(rec.get(external_field))
                if res.get("success"):
                    ids[key] = str(res.get("id"))
                else:
                    errors.append(_record_error(key, res))
        return ids, errors

    def update(self, sobject: str, records: Sequence[dict[str, Any]]) -> list[RecordError]:
        """Update records by Id through sObject Collections, 200 per call."""
        errors: list[RecordError] = []
        for start in range(0, len(records), COLLECTION_LIMIT):
            chunk = records[start : start + COLLECTION_LIMIT]
            body = {
                "allOrNone": False,
                "records": [{"attributes": {"type": sobject}, **rec} for rec in chunk],
            }
            results = self._call(
                "composite/sobjects/update",
                partial(
                    self._sf.restful, "composite/sobjects", method="PATCH", json=body, timeout=REQUEST_TIMEOUT
                ),
            )
            for rec, res in zip(chunk, results or [], strict=False):
                if not res.get("success"):
                    errors.append(_record_error(str(rec.get("Id")), res))
        return errors

    def create(
        self, sobject: str, records: Sequence[dict[str, Any]]
    ) -> tuple[list[str | None], list[RecordError]]:
        """Create records through sObject Collections, 200 per call."""
        ids: list[str | None] = []
        errors: list[RecordError] = []
        for start in range(0, len(records), COLLECTION_LIMIT):
            chunk = records[start : start + COLLECTION_LIMIT]
            body = {
                "allOrNone": False,
                "records": [{"attributes": {"type": sobject}, **rec} for rec in chunk],
            }
            results = self._call(
                "composite/sobjects/create",
                partial(
                    self._sf.restful, "composite/sobjects", method="POST", json=body, timeout=REQUEST_TIMEOUT
                ),
            )
            for index, res in enumerate(results or []):
                if res.get("success"):
                    ids.append(str(res.get("id")))
                else:
                    ids.append(None)
                    errors.append(_record_error(str(start + index), res))
        return ids, errors

    @property
    def allocation(self) -> DailyAllocation:
        return self._allocation


def _record_error(key: str, result: dict[str, Any]) -> RecordError:
    errs = result.get("errors") or [{}]
    first = errs[0] if isinstance(errs[0], dict) else {}
    code = str(first.get("statusCode") or first.get("errorCode") or "UNKNOWN")
    message = str(first.get("message") or "rejected")
    fields = first.get("fields")
    if fields:
        message = f"{message} (fields: {', '.join(map(str, fields))})"
    category = category_for_sf_code(code)
    return RecordError(
        key=key,
        code=code,
        message=message,
        category=category,
        transient=category == "transient",
        matched_ids=duplicate_match_ids(first),
    )
