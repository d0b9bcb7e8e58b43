"""The Salesforce connector against `responses`: batching, error classes, retries, API budget."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses
from simple_salesforce import Salesforce

from sync.connectors.errors import PermanentError, RetryPolicy, TransientError, duplicate_match_ids
from sync.connectors.ratelimit import DailyAllocation
from sync.connectors.salesforce import SalesforceConnector, soql_quote

INSTANCE = "https://sandbox.my.salesforce.com"
BASE = f"{INSTANCE}/services/data/v59.0/"
FAST = RetryPolicy(max_attempts=3, base_seconds=0.0, max_seconds=0.0)


def _connector(share: float = 1.0) -> SalesforceConnector:
    client = Salesforce(
        instance_url=INSTANCE, session_id="00Dsecret!token", session=requests.Session(), version="59.0"
    )
    return SalesforceConnector(client, DailyAllocation(share=share), FAST)


def _ok(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"id": f"00Q{i:015d}", "success": True, "errors": [], "created": True} for i, _ in enumerate(records)
    ]


@responses.activate
def test_upsert_sends_200_per_call_and_maps_ids() -> None:
    calls: list[int] = []

    def handler(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body or b"{}")
        calls.append(len(body["records"]))
        assert body["allOrNone"] is False
        return 200, {"Sforce-Limit-Info": "api-usage=10/1000"}, json.dumps(_ok(body["records"]))

    responses.add_callback(
        responses.PATCH, BASE + "composite/sobjects/Lead/Closedloop_Id__c", callback=handler
    )
    records = [{"Closedloop_Id__c": f"cid{i}", "LastName": "X", "Company": "Y"} for i in range(450)]
    ids, errors = _connector().upsert("Lead", "Closedloop_Id__c", records)
    assert calls == [200, 200, 50]
    assert len(ids) == 450 and not errors


@responses.activate
def test_per_record_failures_are_categorised() -> None:
    result = [
        {"id": "00Q1", "success": True, "errors": []},
        {
            "success": False,
            "errors": [
                {
                    "statusCode": "REQUIRED_FIELD_MISSING",
                    "message": "Required fields are missing: [Company]",
                    "fields": ["Company"],
                }
            ],
        },
    ]
    responses.add(responses.PATCH, BASE + "composite/sobjects/Lead/Closedloop_Id__c", json=result)
    ids, errors = _connector().upsert(
        "Lead", "Closedloop_Id__c", [{"Closedloop_Id__c": "a"}, {"Closedloop_Id__c": "b"}]
    )
    assert ids == {"a": "00Q1"}
    assert errors[0].key == "b" and errors[0].category == "validation" and "Company" in errors[0].message


@responses.activate
def test_transient_errors_are_retried_then_succeed() -> None:
    responses.add(
        responses.GET,
        BASE + "query/",
        status=503,
        json=[{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}],
    )
    responses.add(
        responses.GET, BASE + "query/", json={"done": True, "totalSize": 1, "records": [{"Id": "1"}]}
    )
    assert list(_connector().query("SELECT Id FROM Lead")) == [{"Id": "1"}]
    assert len(responses.calls) == 2


@responses.activate
def test_transient_errors_give_up_after_the_policy() -> None:
    for _ in range(3):
        responses.add(
            responses.GET, BASE + "query/", status=500, json=[{"errorCode": "UNKNOWN", "message": "x"}]
        )
    with pytest.raises(TransientError):
        list(_connector().query("SELECT Id FROM Lead"))
    assert len(responses.calls) == 3


@responses.activate
def test_permanent_errors_are_not_retried_and_carry_no_secret() -> None:
    responses.add(
        responses.GET,
        BASE + "query/",
        status=400,
        json=[{"errorCode": "INVALID_FIELD", "message": "No such column 'Nope' on entity 'Lead'"}],
    )
    with pytest.raises(PermanentError) as info:
        list(_connector().query("SELECT Nope FROM Lead"))
    assert len(responses.calls) == 1
    assert info.value.category == "missing_field"
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        None,
        "DUPLICATES_DETECTED",
        [{"errorCode": "DUPLICATES_DETECTED"}],
        [{"duplicateResult": {"matchResults": "nope"}}],
        [{"duplicateResult": {"matchResults": [{"matchRecords": [{"record": {"Id": 7}}, "x", None]}]}}],
    ],
)
def test_duplicate_match_ids_tolerate_malformed_bodies(body: Any) -> None:
    assert duplicate_match_ids(body) == ()


@responses.activate
def test_query_follows_next_records_url() -> None:
    responses.add(
        responses.GET,
        BASE + "query/",
        json={
            "done": False,
            "nextRecordsUrl": "/services/data/v59.0/query/01g-2000",
            "records": [{"Id": "1"}],
        },
    )
    responses.add(
        responses.GET,
        INSTANCE + "/services/data/v59.0/query/01g-2000",
        json={"done": True, "records": [{"Id": "2"}]},
    )
    assert [r["Id"] for r in _connector().query("SELECT Id FROM Lead")] == ["1", "2"]


@responses.activate
def test_daily_share_is_enforced_from_sforce_limit_info() -> None:
    responses.add(
        responses.GET,
        BASE + "query/",
        json={"done": True, "records": []},
        headers={"Sforce-Limit-Info": "api-usage=600/1000"},
    )
    connector = _connector(share=0.5)
    list(connector.query("SELECT Id FROM Lead"))
    assert connector.allocation.used == 600
    with pytest.raises(TransientError) as info:
        list(connector.query("SELECT Id FROM Lead"))
    assert info.value.category == "budget"
    assert len(responses.calls) == 1


def test_soql_quote_escapes() -> None:
    assert soql_quote("O'Brien") == "'O\\'Brien'"
    assert soql_quote("back\\slash") == "'back\\\\slash'"
