"""The one HTTP edge to Marketo: every call goes through marketorestpython, classified and retried.

Marketo answers most failures with HTTP 200 and ``success: false`` ("Error Codes",
https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/error-codes); the
client raises those as ``MarketoException(code, message)`` and :func:`classify_marketo` sorts
them into the categories of :mod:`sync.connectors.errors`:

- retry: 502, 604, 608, 611, 614, 713 and gateway pages that are not JSON;
- rate-limited with a wait: 606 (100 calls per 20 s) and 615 (10 concurrent calls);
- budget: 607 (daily quota) — not retried now, replayed later;
- re-authenticate: 600/601/602 — the edge fetches a new token and resends the same call once;
- fail the call: every other response-level code (603, 609, 610, 701, 1003 on a request, ...);
- fail the record: record-level ``skipped`` results with their reasons (1001, 1004, 1005, ...).

Two properties of marketorestpython shape this module: its own backoff resends arguments from
which the first attempt already popped the access token (a 606 retry comes back as 600), so it
is switched off (``max_retry_time=0``) and retries happen here; and its ``authenticate`` trusts
its own clock, so after a 601/602 the edge forgets the token's expiry before asking again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from marketorestpython.client import MarketoClient
from marketorestpython.helper.exceptions import MarketoException

from sync.connectors.errors import (
    ConnectorError,
    PermanentError,
    RecordError,
    RetryPolicy,
    TransientError,
    call_with_retries,
)
from sync.connectors.ratelimit import BudgetExhausted
from sync.timeutil import parse_timestamp

T = TypeVar("T")

SYSTEM = "marketo"
MAX_BATCH = 300  # Lead Database batch size ("Marketo Integration Best Practices")
MAX_ACTIVITY_TYPES = 10  # activityTypeIds per Get Lead Activities call ("Activities")
MAX_CREATE_FIELDS = 100  # custom fields per Create Lead Fields call ("Leads", Create Fields)
REQUEST_TIMEOUT = 30.0

AUTH_CODES = {"600", "601", "602"}
RETRY_CODES = {"502", "604", "608", "611", "614", "713"}
RATE_WAIT_SECONDS = {"606": 20.0, "615": 2.0}  # the window is 20 s; concurrency frees in seconds
RECORD_CATEGORIES = {
    "1001": "validation",
    "1002": "validation",
    "1003": "validation",
    "1004": "deleted",
    "1005": "duplicate",
    "1006": "missing_field",
    "1007": "duplicate",
    "1011": "missing_field",
    "1013": "deleted",
    "1017": "duplicate",
    "1036": "duplicate",
}
TRANSIENT_RECORD_CODES = {"1022", "1029"}  # object in use, too many jobs in queue


class MarketoApiClient(MarketoClient):  # type: ignore[misc]
    """marketorestpython's client pointed at ``base_url``, with single-page reads and a call hook.

    ``before_call(endpoint)`` runs before every REST call (not identity calls, which Marketo does
    not count), so a shared budget sees each HTTP request, including pages the library follows;
    ``gate()`` is held around each one (the shared limit of calls in flight).
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        munchkin_id: str = "000-AAA-000",
        timeout: float = REQUEST_TIMEOUT,
        before_call: Callable[[str], None] | None = None,
        gate: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        super().__init__(munchkin_id, client_id, client_secret, max_retry_time=0, requests_timeout=timeout)
        self.host = base_url.rstrip("/")
        self.before_call = before_call
        self.gate = gate

    def _api_call(self, method: str, endpoint: str, *args: Any, **kwargs: Any) -> Any:
        if "/identity/" in endpoint:
            return super()._api_call(method, endpoint, *args, **kwargs)
        if self.before_call is not None:
            self.before_call(endpoint[len(self.host) :])
        with self.gate() if self.gate is not None else nullcontext():
            return super()._api_call(method, endpoint, *args, **kwargs)

    def forget_token(self) -> None:
        """Make the next ``authenticate`` fetch a new token whatever the client's clock says."""
        self.valid_until = None
        self.token = None

    def activities_page(
        self,
        type_ids: Sequence[int],
        next_page_token: str,
        batch_size: int = MAX_BATCH,
        lead_ids: Sequence[int] = (),
    ) -> dict[str, Any]:
        """One Get Lead Activities page: ``result`` (maybe absent), ``nextPageToken``, ``moreResult``."""
        self.authenticate()
        args: dict[str, Any] = {
            "access_token": self.token,
            "activityTypeIds": ",".join(str(i) for i in type_ids),
            "nextPageToken": next_page_token,
            "batchSize": batch_size,
        }
        if lead_ids:
            args["leadIds"] = ",".join(str(i) for i in lead_ids)
        return dict(self._api_call("get", self.host + "/rest/v1/activities.json", args))

    def deleted_leads_page(self, next_page_token: str, batch_size: int = MAX_BATCH) -> dict[str, Any]:
        """One Get Deleted Leads page."""
        self.authenticate()
        args = {"access_token": self.token, "nextPageToken": next_page_token, "batchSize": batch_size}
        return dict(self._api_call("get", self.host + "/rest/v1/activities/deletedleads.json", args))

    def lead_fields_page(
        self, next_page_token: str | None = None, batch_size: int = MAX_BATCH
    ) -> dict[str, Any]:
        """One Get Lead Fields page (``/rest/v1/leads/schema/fields.json``)."""
        self.authenticate()
        args: dict[str, Any] = {"access_token": self.token, "batchSize": batch_size}
        if next_page_token:
            args["nextPageToken"] = next_page_token
        return dict(self._api_call("get", self.host + "/rest/v1/leads/schema/fields.json", args))

    def create_lead_fields(self, fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create Lead Fields: one result (created / skipped with reasons) per input."""
        self.authenticate()
        args = {"access_token": self.token}
        result = self._api_call(
            "post", self.host + "/rest/v1/leads/schema/fields.json", args, {"input": fields}
        )
        return list(result.get("result", []))


def make_marketo_client(
    base_url: str,
    client_id: str,
    client_secret: str,
    munchkin_id: str | None = None,
    timeout: float = REQUEST_TIMEOUT,
    before_call: Callable[[str], None] | None = None,
    gate: Callable[[], AbstractContextManager[Any]] | None = None,
) -> MarketoApiClient:
    """A client for the REST base URL (``https://<munchkin>.mktorest.com`` or a sandbox)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PermanentError(SYSTEM, "Marketo base URL must be an http(s) URL", category="config")
    if not client_id or not client_secret:
        raise PermanentError(SYSTEM, "Marketo client id and secret are required", category="auth")
    return MarketoApiClient(
        base_url, client_id, client_secret, munchkin_id or "000-AAA-000", timeout, before_call, gate
    )


def _code_message(exc: BaseException) -> tuple[str | None, str]:
    if isinstance(exc, MarketoException):
        return (str(exc.code) if exc.code is not None else None), str(exc.message or "")
    # MarketoClient.execute re-raises as Exception({"message", "code"}).
    arg = exc.args[0] if exc.args else None
    if isinstance(arg, dict) and "code" in arg:
        return str(arg["code"]), str(arg.get("message", ""))
    return None, str(exc)


def classify_marketo(exc: BaseException) -> ConnectorError:
    """Turn a marketorestpython / requests exception into a classified error."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, BudgetExhausted):
        return TransientError(SYSTEM, str(exc), category="budget")
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        # Not Marketo's JSON: the gateway in front of it (502/503 pages) or a cut-off body.
        return TransientError(SYSTEM, "response was not JSON (gateway error)", category="transient")
    if isinstance(exc, requests.exceptions.Timeout | requests.exceptions.ConnectionError):
        return TransientError(SYSTEM, f"network error: {type(exc).__name__}", category="network")
    code, message = _code_message(exc)
    if code is None:
        return PermanentError(SYSTEM, f"{type(exc).__name__}: {message}"[:500], category="unknown")
    text = f"Marketo {code}: {message}"
    if code in RATE_WAIT_SECONDS:
        return TransientError(
            SYSTEM, text, code=code, category="transient", retry_after=RATE_WAIT_SECONDS[code]
        )
    if code == "607":
        return TransientError(SYSTEM, text, code=code, category="budget")
    if code in RETRY_CODES:
        return TransientError(SYSTEM, text, code=code, category="transient")
    if code in AUTH_CODES or code == "603":
        return PermanentError(SYSTEM, text, code=code, category="auth")
    return PermanentError(SYSTEM, text, code=code, category=RECORD_CATEGORIES.get(code, "rejected"))


def record_error(key: str, reasons: Sequence[dict[str, Any]] | None) -> RecordError:
    """A skipped record's first reason as a :class:`RecordError`."""
    first = (reasons or [{}])[0]
    code = str(first.get("code", "unknown"))
    return RecordError(
        key=key,
        code=code,
        message=str(first.get("message", "skipped"))[:500],
        category=RECORD_CATEGORIES.get(code, "rejected"),
        transient=code in TRANSIENT_RECORD_CODES,
    )


@dataclass(frozen=True)
class LeadField:
    """A lead field from describe: REST name, label, type, writable or not."""

    id: int
    name: str
    display_name: str
    data_type: str
    updateable: bool


@dataclass(frozen=True)
class FieldSpec:
    """A custom lead field Closedloop writes: REST name, label, Marketo data type."""

    name: str
    display_name: str
    data_type: str = "string"
    description: str | None = None

    def payload(self) -> dict[str, Any]:
        out = {"name": self.name, "displayName": self.display_name, "dataType": self.data_type}
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class UpsertResult:
    """One input record's outcome: created/updated with the lead id, or skipped with an error."""

    index: int
    status: str
    lead_id: int | None
    error: RecordError | None = None


@dataclass(frozen=True)
class Activity:
    """An activity with its type name and, for field changes, the field's REST name."""

    id: int
    lead_id: int
    at: datetime
    type_name: str
    field: str | None
    new_value: Any
    old_value: Any
    attributes: dict[str, Any]


@dataclass
class ActivityBatch:
    """Activities after a paging token; ``next_token`` is the cursor to store."""

    activities: list[Activity]
    next_token: str
    more: bool
    calls: int = 0


@dataclass
class MarketoEdge:
    """Budgeted, classified, retried Marketo calls (leads, activities, programs)."""

    client: MarketoApiClient
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    on_call: Callable[[str, str], None] | None = None
    _fields: list[LeadField] | None = field(default=None, init=False)
    _types: dict[str, int] | None = field(default=None, init=False)

    def _call(self, endpoint: str, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            self._authenticate()  # no call unless the client's token is near its end
            try:
                return fn()
            except MarketoException as exc:
                if str(exc.code) not in AUTH_CODES:
                    raise
            # The token was refused (expired, revoked, missing): fetch a new one and resend the
            # same call once; a second refusal is a real auth failure.
            self.client.forget_token()
            self._authenticate()
            return fn()

        def record(status: str) -> None:
            if self.on_call is not None:
                self.on_call(endpoint, status)

        return call_with_retries(attempt, classify_marketo, self.policy, f"marketo {endpoint}", record)

    def _authenticate(self) -> None:
        # The identity call carries the client secret in its query string, and requests puts the
        # URL into its exception messages: those are replaced, not chained.
        try:
            self.client.authenticate()
        except MarketoException:
            raise
        except requests.exceptions.JSONDecodeError:
            raise TransientError(SYSTEM, "identity response was not JSON (gateway error)") from None
        except requests.RequestException as exc:
            message = f"identity: network error: {type(exc).__name__}"
            raise TransientError(SYSTEM, message, category="network") from None
        except Exception as exc:  # noqa: BLE001 - the client raises bare Exception(error_description)
            reason = "unexpected identity response" if isinstance(exc, KeyError) else str(exc)[:200]
            message = f"Marketo identity refused the credentials: {reason}"
            raise PermanentError(SYSTEM, message, category="auth") from None

    # -- metadata ----------------------------------------------------------------------------------

    def describe(self) -> list[LeadField]:
        """Lead fields with REST names (cached for this edge)."""
        if self._fields is None:
            raw = self._call("leads/describe", self.client.describe)
            self._fields = [
                LeadField(
                    int(f["id"]),
                    f["rest"]["name"],
                    str(f.get("displayName", "")),
                    str(f.get("dataType", "")),
                    not f["rest"].get("readOnly", False),
                )
                for f in raw
                if isinstance(f.get("rest"), dict)
            ]
        return self._fields

    def lead_field_names(self) -> set[str]:
        """REST names of every lead field (Get Lead Fields, all pages)."""
        names: set[str] = set()
        token: str | None = None
        while True:
            page = self._call("leads/schema/fields", partial(self.client.lead_fields_page, token))
            names.update(str(f["name"]) for f in page.get("result") or [])
            token = page.get("nextPageToken")
            if not page.get("moreResult") or not token:
                return names

    def create_fields(self, specs: Sequence[FieldSpec]) -> dict[str, RecordError | None]:
        """Create custom lead fields (100 per call); per name, None when created or the reason."""
        outcome: dict[str, RecordError | None] = {}
        for start in range(0, len(specs), MAX_CREATE_FIELDS):
            chunk = list(specs[start : start + MAX_CREATE_FIELDS])
            payload = [spec.payload() for spec in chunk]
            raw = self._call("leads/schema/fields/create", partial(self.client.create_lead_fields, payload))
            for spec, result in zip(chunk, raw, strict=False):
                created = result.get("status") == "created"
                outcome[spec.name] = None if created else record_error(spec.name, result.get("reasons"))
        self._fields = None  # describe changes with new fields
        return outcome

    def activity_type_ids(self, names: Iterable[str]) -> dict[str, int]:
        """Ids of the named activity types, as this instance's types.json lists them."""
        if self._types is None:
            raw = self._call("activities/types", self.client.get_activity_types)
            self._types = {str(t["name"]): int(t["id"]) for t in raw}
        wanted = list(names)
        missing = [n for n in wanted if n not in self._types]
        if missing:
            raise PermanentError(SYSTEM, f"activity types not in this instance: {missing}", category="config")
        return {n: self._types[n] for n in wanted}

    # -- leads -------------------------------------------------------------------------------------

    def leads_by(
        self, filter_type: str, values: Sequence[str], fields: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Leads whose ``filter_type`` is one of ``values`` (300 values per call)."""
        unique = list(dict.fromkeys(str(v) for v in values if v not in (None, "")))
        out: list[dict[str, Any]] = []
        for start in range(0, len(unique), MAX_BATCH):
            chunk = unique[start : start + MAX_BATCH]
            out.extend(
                self._call(
                    "leads/query",
                    partial(
                        self.client.get_multiple_leads_by_filter_type,
                        filter_type,
                        chunk,
                        fields=",".join(fields),
                        batchSize=MAX_BATCH,
                    ),
                )
            )
        return out

    def lead_by_id(self, lead_id: int, fields: Sequence[str]) -> dict[str, Any] | None:
        result = self._call("lead/id", lambda: self.client.get_lead_by_id(lead_id, fields=",".join(fields)))
        return dict(result[0]) if result else None

    def upsert(
        self,
        records: Sequence[dict[str, Any]],
        lookup_field: str,
        action: str = "createOrUpdate",
    ) -> list[UpsertResult]:
        """Sync Leads in batches of up to 300; one result per input record, in input order."""
        results: list[UpsertResult] = []
        for start in range(0, len(records), MAX_BATCH):
            chunk = list(records[start : start + MAX_BATCH])
            raw = self._call(
                "leads/sync",
                partial(self.client.create_update_leads, chunk, action=action, lookupField=lookup_field),
            )
            if len(raw) != len(chunk):
                raise PermanentError(SYSTEM, f"sync returned {len(raw)} results for {len(chunk)} records")
            for offset, (record, outcome) in enumerate(zip(chunk, raw, strict=True)):
                index = start + offset
                status = str(outcome.get("status", "skipped"))
                lead_id = outcome.get("id")
                error = None
                if status == "skipped":
                    key = str(record.get(lookup_field) or record.get("id") or index)
                    error = record_error(key, outcome.get("reasons"))
                results.append(
                    UpsertResult(index, status, int(lead_id) if lead_id is not None else None, error)
                )
        return results

    def merge(self, winner_id: int, loser_ids: Sequence[int]) -> None:
        self._call("leads/merge", lambda: self.client.merge_lead(winner_id, list(loser_ids)))

    def programs(self) -> list[dict[str, Any]]:
        """Every program (id, name, type, channel, ...)."""
        return list(self._call("programs", lambda: self.client.browse_programs(maxReturn=200)))

    def calls_today(self) -> int:
        """Calls counted against today's quota for this subscription (Get Daily Usage)."""
        days = self._call("stats/usage", self.client.get_daily_usage)
        return sum(int(day.get("total", 0)) for day in days or [])

    # -- change feed -------------------------------------------------------------------------------

    def paging_token(self, since: datetime) -> str:
        """A date-based paging token for activities at or after ``since``."""
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return str(self._call("activities/pagingtoken", lambda: self.client.get_paging_token(stamp)))

    def activities_since(
        self,
        token: str,
        type_names: Sequence[str],
        max_pages: int = 50,
        lead_ids: Sequence[int] = (),
        batch_size: int = MAX_BATCH,
    ) -> ActivityBatch:
        """Activities of the named types after ``token`` (of ``lead_ids`` only, at most 30, if given),
        following pages while more exist.

        An idle feed costs one call; the returned ``next_token`` is the new cursor.
        """
        if not 0 < len(type_names) <= MAX_ACTIVITY_TYPES:
            raise PermanentError(
                SYSTEM, f"1 to {MAX_ACTIVITY_TYPES} activity types per call", category="config"
            )
        ids = self.activity_type_ids(type_names)
        names_by_id = {v: k for k, v in ids.items()}
        fields_by_id = {f.id: f.name for f in self.describe()}
        batch = ActivityBatch([], token, True)
        while batch.more and batch.calls < max_pages:
            current = batch.next_token
            page = self._call(
                "activities",
                partial(
                    self.client.activities_page,
                    list(ids.values()),
                    current,
                    batch_size=batch_size,
                    lead_ids=list(lead_ids),
                ),
            )
            batch.calls += 1
            batch.activities.extend(
                parse_activity(a, names_by_id, fields_by_id) for a in page.get("result") or []
            )
            batch.next_token = str(page.get("nextPageToken") or current)
            batch.more = bool(page.get("moreResult"))
        return batch

    def deleted_leads_since(self, token: str, max_pages: int = 50) -> tuple[list[int], str]:
        """Ids of leads deleted after ``token``, and the new cursor."""
        deleted: list[int] = []
        more, calls = True, 0
        while more and calls < max_pages:
            current = token
            page = self._call("activities/deletedleads", partial(self.client.deleted_leads_page, current))
            calls += 1
            deleted.extend(int(a["leadId"]) for a in page.get("result") or [])
            token = str(page.get("nextPageToken") or current)
            more = bool(page.get("moreResult"))
        return deleted, token


def parse_activity(
    raw: dict[str, Any], names_by_id: dict[int, str], fields_by_id: dict[int, str]
) -> Activity:
    """An activity record with its type name; for field and score changes, the changed field."""
    attributes = {str(a.get("name")): a.get("value") for a in raw.get("attributes") or []}
    type_name = names_by_id.get(int(raw["activityTypeId"]), str(raw["activityTypeId"]))
    field_name = None
    if type_name in ("Change Data Value", "Change Score") and raw.get("primaryAttributeValueId") is not None:
        field_name = fields_by_id.get(int(raw["primaryAttributeValueId"]))
    at = parse_timestamp(raw.get("activityDate"))
    if at is None:
        raise PermanentError(SYSTEM, f"activity {raw.get('id')} has no activityDate", category="rejected")
    return Activity(
        id=int(raw["id"]),
        lead_id=int(raw["leadId"]),
        at=at,
        type_name=type_name,
        field=field_name,
        new_value=attributes.get("New Value"),
        old_value=attributes.get("Old Value"),
        attributes=attributes,
    )
