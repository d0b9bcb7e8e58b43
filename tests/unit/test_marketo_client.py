"""The Marketo edge with marketorestpython over `responses`: classification, token refresh, batches, feed."""

from __future__ import annotations

import json
import traceback
from typing import Any

import pytest
import requests
import responses
from marketorestpython.helper.exceptions import MarketoException
from responses import matchers

from sync.connectors.errors import PermanentError, RetryPolicy, TransientError
from sync.connectors.marketo_client import (
    MarketoEdge,
    classify_marketo,
    make_marketo_client,
    record_error,
)

BASE = "https://123-abc-456.mktorest.com"
SECRET = "s3cr3t-client-secret"
TOKEN_URL = f"{BASE}/identity/oauth/token"
FAST = RetryPolicy(max_attempts=4, base_seconds=0.001, max_seconds=0.001)


def _token(value: str, expires_in: int = 3599) -> dict[str, Any]:
    return {
        "access_token": value,
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": "api@example.com",
    }


def _error(code: str, message: str = "error") -> dict[str, Any]:
    return {"requestId": "a1#b2", "success": False, "errors": [{"code": code, "message": message}]}


def _ok(**extra: Any) -> dict[str, Any]:
    return {"requestId": "a1#b2", "success": True, **extra}


def _field(field_id: int, label: str, data_type: str, rest: str, read_only: bool) -> dict[str, Any]:
    rest_part = {"name": rest, "readOnly": read_only}
    return {"id": field_id, "displayName": label, "dataType": data_type, "rest": rest_part}


DESCRIBE = _ok(
    result=[
        _field(1, "Id", "integer", "id", True),
        _field(9, "Lead Status", "string", "leadStatus", False),
        _field(10, "Lead Score", "score", "leadScore", False),
        {"id": 77, "displayName": "Internal", "dataType": "string"},  # no REST access
    ]
)
TYPES = _ok(
    result=[
        {"id": 12, "name": "New Lead", "description": "", "attributes": []},
        {"id": 13, "name": "Change Data Value", "description": "", "attributes": []},
        {"id": 22, "name": "Change Score", "description": "", "attributes": []},
    ]
)


def edge(policy: RetryPolicy = FAST, **kwargs: Any) -> MarketoEdge:
    return MarketoEdge(make_marketo_client(BASE, "client-id", SECRET, **kwargs), policy)


def bearer(call: Any) -> str:
    return str(call.request.headers.get("Authorization"))


# ----- classification --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "transient", "category", "retry_after"),
    [
        ("606", True, "transient", 20.0),
        ("615", True, "transient", 2.0),
        ("607", True, "budget", None),
        ("604", True, "transient", None),
        ("608", True, "transient", None),
        ("601", False, "auth", None),
        ("603", False, "auth", None),
        ("609", False, "rejected", None),
        ("1006", False, "missing_field", None),
        ("1003", False, "validation", None),
    ],
)
def test_marketo_codes_are_classified(
    code: str, transient: bool, category: str, retry_after: float | None
) -> None:
    error = classify_marketo(MarketoException({"code": code, "message": "m"}))
    assert error.transient is transient
    assert error.category == category
    assert error.retry_after == retry_after
    assert error.code == code
    assert error.system == "marketo"


def test_execute_style_errors_network_errors_and_gateway_pages_are_classified() -> None:
    assert classify_marketo(Exception({"message": "Max rate limit", "code": "606"})).retry_after == 20.0
    assert classify_marketo(requests.exceptions.ConnectionError("reset")).category == "network"
    assert classify_marketo(requests.exceptions.ReadTimeout("slow")).category == "network"
    gateway = classify_marketo(requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0))
    assert gateway.transient and gateway.category == "transient"
    assert not classify_marketo(KeyError("result")).transient


def test_skipped_reasons_become_record_errors() -> None:
    assert record_error("cl-1", [{"code": "1005", "message": "Lead already exists"}]).category == "duplicate"
    assert record_error("cl-2", [{"code": "1004", "message": "Lead not found"}]).category == "deleted"
    unknown = record_error("cl-3", None)
    assert unknown.code == "unknown" and unknown.category == "rejected" and not unknown.transient


def test_bad_settings_are_clear_errors_without_secrets() -> None:
    with pytest.raises(PermanentError, match="http"):
        make_marketo_client("ftp://example.com", "id", SECRET)
    with pytest.raises(PermanentError, match="required"):
        make_marketo_client(BASE, "id", "")


# ----- tokens ----------------------------------------------------------------------------------


@responses.activate
def test_an_expired_token_is_refreshed_and_the_same_call_resent() -> None:
    responses.add(responses.GET, TOKEN_URL, json=_token("token-A"))
    responses.add(responses.GET, TOKEN_URL, json=_token("token-B"))
    responses.add(
        responses.GET, f"{BASE}/rest/v1/leads/describe.json", json=_error("602", "Access token expired")
    )
    responses.add(responses.GET, f"{BASE}/rest/v1/leads/describe.json", json=DESCRIBE)
    fields = edge().describe()
    assert [f.name for f in fields] == ["id", "leadStatus", "leadScore"]
    assert [f.updateable for f in fields] == [False, True, True]
    describe_calls = [c for c in responses.calls if "describe" in c.request.url]
    assert [bearer(c) for c in describe_calls] == ["Bearer token-A", "Bearer token-B"]
    token_calls = [c for c in responses.calls if "identity" in c.request.url]
    assert len(token_calls) == 2
    assert all("access_token" not in c.request.url for c in describe_calls)


@responses.activate
def test_a_token_refused_twice_is_an_auth_failure() -> None:
    responses.add(responses.GET, TOKEN_URL, json=_token("token-A"))
    responses.add(
        responses.GET, f"{BASE}/rest/v1/leads/describe.json", json=_error("601", "Access token invalid")
    )
    with pytest.raises(PermanentError) as excinfo:
        edge().describe()
    assert excinfo.value.category == "auth"
    assert len([c for c in responses.calls if "describe" in c.request.url]) == 2


@responses.activate
def test_bad_credentials_are_an_auth_error_that_does_not_echo_the_secret() -> None:
    responses.add(
        responses.GET,
        TOKEN_URL,
        json={"error": "invalid_client", "error_description": "Bad client credentials"},
        status=401,
    )
    with pytest.raises(PermanentError) as excinfo:
        edge().describe()
    assert excinfo.value.category == "auth"
    assert SECRET not in str(excinfo.value)
    assert not [c for c in responses.calls if "describe" in c.request.url]


# ----- limits ----------------------------------------------------------------------------------


@responses.activate
def test_rate_limit_in_a_200_body_is_waited_out_and_retried() -> None:
    responses.add(responses.GET, TOKEN_URL, json=_token("token-A"))
    url = f"{BASE}/rest/v1/activities/types.json"
    responses.add(responses.GET, url, json=_error("606", "Max rate limit '100' exceeded with in '20' secs"))
    responses.add(responses.GET, url, json=_error("615", "Concurrent access limit reached"))
    responses.add(responses.GET, url, json=TYPES)
    outcomes: list[str] = []
    marketo = edge()
    marketo.on_call = lambda _endpoint, status: outcomes.append(status)
    assert marketo.activity_type_ids(["Change Score"]) == {"Change Score": 22}
    assert outcomes == ["transient", "transient", "ok"]
    assert all(bearer(c) == "Bearer token-A" for c in responses.calls if "types" in c.request.url)


@responses.activate
def test_daily_quota_is_not_retried() -> None:
    responses.add(responses.GET, TOKEN_URL, json=_token("token-A"))
    responses.add(
        responses.GET, f"{BASE}/rest/v1/activities/types.json", json=_error("607", "Daily quota reached")
    )
    with pytest.raises(TransientError) as excinfo:
        edge().activity_type_ids(["New Lead"])
    assert excinfo.value.category == "budget"
    assert len([c for c in responses.calls if "types" in c.request.url]) == 1


@responses.activate
def test_the_call_hook_sees_every_rest_request_but_not_identity() -> None:
    seen: list[str] = []
    responses.add(responses.GET, TOKEN_URL, json=_token("token-A"))
    responses.add(responses.GET, f"{BASE}/rest/v1/leads/describe.json", json=DESCRIBE)
    edge(before_call=seen.append).describe()
    assert seen == ["/rest/v1/leads/describe.json"]


# ----- writes ----------------------------------------------------------------------------------


@responses.activate
def test_upsert_sends_batches_of_300_and_maps_each_record() -> None:
    responses.add(responses.GET, TOKEN_URL, json=_token("token-A"))
    bodies: list[dict[str, Any]] = []

    def sync(request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        bodies.append(body)
        result = []
        for record in body["input"]:
            if record["closedloopId"].endswith("7"):
                result.append(
                    {"status": "skipped", "reasons": [{"code": "1006", "message": "Field 'x' not found"}]}
                )
            else:
                result.append({"id": 1000 + int(record["closedloopId"][3:]), "status": "created"})
        return 200, {}, json.dumps(_ok(result=result))

    responses.add_callback(responses.POST, f"{BASE}/rest/v1/leads.json", callback=sync)
    records = [{"closedloopId": f"cl-{i}", "leadStatus": "MQL"} for i in range(650)]
    results = edge().upsert(records, "closedloopId")
    assert [len(b["input"]) for b in bodies] == [300, 300, 50]
    assert {b["lookupField"] for b in bodies} == {"closedloopId"}
    assert {b["action"] for b in bodies} == {"createOrUpdate"}
    assert [r.index for r in results] == list(range(650))
    assert results[5].lead_id == 1005 and results[5].status == "created" and results[5].error is None
    skipped = results[17]
    assert skipped.status == "skipped" and skipped.lead_id is None
    assert skipped.error is not None
    assert (skipped.error.key, skipped.error.code, skipped.error.category) == (
        "cl-17",
        "1006",
        "missing_field",
    )


@responses.activate
def test_leads_by_value_are_queried_300_values_at_a_time() -> None:
    responses.add(responses.GET, TOKEN_URL, json=_token("token-A"))
    sent: list[dict[str, str]] = []

    def query(request: Any) -> tuple[int, dict[str, str], str]:
        from urllib.parse import parse_qsl

        form = dict(parse_qsl(request.body))
        sent.append(form)
        values = form["filterValues"].split(",")
        return 200, {}, json.dumps(_ok(result=[{"id": i, "email": v} for i, v in enumerate(values)]))

    responses.add_callback(responses.POST, f"{BASE}/rest/v1/leads.json", callback=query)
    emails = [f"p{i}@example.com" for i in range(301)] + ["p0@example.com", ""]
    leads = edge().leads_by("email", emails, ["id", "email"])
    assert len(leads) == 301
    assert [len(f["filterValues"].split(",")) for f in sent] == [300, 1]
    assert {f["_method"] for f in sent} == {"GET"}
    assert {f["fields"] for f in sent} == {"id,email"}


# ----- change feed -----------------------------------------------------------------------------


@responses.activate
def test_activities_follow_pages_and_return_the_cursor() -> None:
    responses.add(responses.GET, TOKEN_URL, json=_token("token-A"))
    responses.add(responses.GET, f"{BASE}/rest/v1/activities/types.json", json=TYPES)
    responses.add(responses.GET, f"{BASE}/rest/v1/leads/describe.json", json=DESCRIBE)
    url = f"{BASE}/rest/v1/activities.json"
    change = {
        "id": 501,
        "leadId": 7,
        "activityDate": "2026-03-02T09:15:00Z",
        "activityTypeId": 13,
        "primaryAttributeValueId": 9,
        "primaryAttributeValue": "Lead Status",
        "attributes": [{"name": "New Value", "value": "MQL"}, {"name": "Old Value", "value": "Open"}],
    }
    responses.add(
        responses.GET,
        url,
        json=_ok(nextPageToken="T1", moreResult=True),
        match=[
            matchers.query_param_matcher(
                {"activityTypeIds": "13,22", "nextPageToken": "T0", "batchSize": "300"}
            )
        ],
    )
    responses.add(
        responses.GET,
        url,
        json=_ok(nextPageToken="T2", moreResult=False, result=[change]),
        match=[
            matchers.query_param_matcher(
                {"activityTypeIds": "13,22", "nextPageToken": "T1", "batchSize": "300"}
            )
        ],
    )
    marketo = edge()
    batch = marketo.activities_since("T0", ["Change Data Value", "Change Score"])
    assert batch.next_token == "T2" and batch.more is False and batch.calls == 2
    (activity,) = batch.activities
    assert (activity.type_name, activity.field, activity.new_value, activity.old_value) == (
        "Change Data Value",
        "leadStatus",
        "MQL",
        "Open",
    )
    assert activity.at.isoformat() == "2026-03-02T09:15:00+00:00"

    responses.add(
        responses.GET,
        url,
        json=_ok(nextPageToken="T2", moreResult=False),
        match=[
            matchers.query_param_matcher(
                {"activityTypeIds": "13,22", "nextPageToken": "T2", "batchSize": "300"}
            )
        ],
    )
    before = len(responses.calls)
    idle = marketo.activities_since("T2", ["Change Data Value", "Change Score"])
    assert idle.activities == [] and idle.next_token == "T2" and idle.calls == 1
    assert len(responses.calls) - before == 1  # types and describe are cached


@responses.activate
def test_unknown_activity_type_names_fail_before_any_page_is_read() -> None:
    responses.add(responses.GET, TOKEN_URL, json=_token("token-A"))
    responses.add(responses.GET, f"{BASE}/rest/v1/activities/types.json", json=TYPES)
    with pytest.raises(PermanentError, match="Merge Leads"):
        edge().activities_since("T0", ["Merge Leads"])
    with pytest.raises(PermanentError):
        edge().activities_since("T0", [f"type {i}" for i in range(11)])


@responses.activate
def test_identity_network_errors_do_not_carry_the_secret_in_the_url() -> None:
    refused = requests.exceptions.ConnectionError(
        f"Max retries exceeded with url: {TOKEN_URL}?client_secret={SECRET}"
    )
    responses.add(responses.GET, TOKEN_URL, body=refused)
    marketo = edge(RetryPolicy(max_attempts=2, base_seconds=0.001, max_seconds=0.001))
    with pytest.raises(TransientError) as excinfo:
        marketo.describe()
    assert excinfo.value.category == "network"
    assert SECRET not in "".join(traceback.format_exception(excinfo.value))
    assert len(responses.calls) == 2  # retried, then given up
