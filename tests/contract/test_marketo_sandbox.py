"""Contract tests: the real marketorestpython client against the Marketo sandbox over real HTTP.

Adobe's documentation the sandbox is held to (Experience League, "Marketo Developer Guide"):
- "Authentication": https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/authentication
- "Error Codes": https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/error-codes
- "Leads": https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/leads
- "Activities": https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/activities
- "Paging Tokens": https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/paging-tokens
- "Marketo Integration Best Practices" (limits):
  https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/marketo-integration-best-practices
- "Webhooks": https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/webhooks/webhooks
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from marketorestpython.helper.exceptions import MarketoException

from sandboxes.common import SimClock
from sandboxes.marketo import FLOW_SOURCE, Webhook
from tests.contract.hubspot_fixtures import WebhookReceiver
from tests.contract.marketo_fixtures import MarketoEnv, start_marketo

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def marketo_factory() -> Iterator[Callable[..., MarketoEnv]]:
    envs: list[MarketoEnv] = []

    def make(**kwargs: Any) -> MarketoEnv:
        # A clock that moves only when told (and by 1 ms per reading), so activity times are exact.
        kwargs.setdefault("clock", SimClock(start=START, speed=0.0))
        env = start_marketo(**kwargs)
        env.sandbox.add_field("closedloopId", "Closedloop ID")
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.stop()


@pytest.fixture
def marketo(marketo_factory: Callable[..., MarketoEnv]) -> MarketoEnv:
    """A sandbox with limits generous enough for functional tests (limit tests build their own)."""
    return marketo_factory(window_limit=100_000)


def _type_ids(client: Any) -> dict[str, int]:
    return {t["name"]: t["id"] for t in client.get_activity_types()}


def _raw(env: MarketoEnv, path: str, token: str | None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(env.url + path, params=params, headers=headers, timeout=10)


# ----- authentication --------------------------------------------------------------------------


def test_identity_issues_bearer_tokens_and_rejects_bad_credentials(marketo: MarketoEnv) -> None:
    """ "Authentication": GET <identity>/oauth/token?grant_type=client_credentials returns
    access_token, token_type "bearer", expires_in (at most 3600) and scope; a second request while
    the token lives returns the same token; bad credentials get HTTP 401 ("Error Codes")."""
    client = marketo.client()
    client.authenticate()
    assert client.token_type == "bearer"
    assert 3590 <= client.expires_in <= 3600
    assert client.scope
    again = marketo.client()
    again.authenticate()
    assert again.token == client.token

    with pytest.raises(Exception, match="Bad client credentials"):
        marketo.client(secret="wrong").authenticate()
    raw = requests.get(
        marketo.url + "/identity/oauth/token",
        params={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
        timeout=10,
    )
    assert raw.status_code == 401
    assert raw.json()["error"] == "invalid_client"


def test_token_errors_come_inside_http_200_bodies(marketo: MarketoEnv) -> None:
    """ "Error Codes": response-level errors are HTTP 200 with success false and errors[{code,
    message}]; 600 empty token, 601 invalid token; the access_token query parameter is no longer
    accepted ("Authentication": header only)."""
    client = marketo.client()
    client.authenticate()
    missing = _raw(marketo, "/rest/v1/leads/describe.json", None, access_token=client.token)
    invalid = _raw(marketo, "/rest/v1/leads/describe.json", "not-a-token")
    for response, code in ((missing, "600"), (invalid, "601")):
        assert response.status_code == 200
        body = response.json()
        assert body["success"] is False
        assert body["requestId"]
        assert body["errors"][0]["code"] == code
    client.token = "not-a-token"
    with pytest.raises(MarketoException) as excinfo:
        client.describe()
    assert excinfo.value.code == "601"


def test_expired_token_is_602_and_a_fresh_token_resumes_the_call(marketo: MarketoEnv) -> None:
    """ "Error Codes" 602 "Access token expired": recovered by re-authenticating and resending. The
    client still believes its token valid (its own clock says so), so only forgetting its expiry
    makes it fetch a new one; the issuer then hands out a different token."""
    client = marketo.client()
    client.describe()
    old_token = client.token
    marketo.sandbox.expire_tokens()
    with pytest.raises(MarketoException) as excinfo:
        client.describe()
    assert excinfo.value.code == "602"
    client.authenticate()  # valid_until is still in the future: nothing happens
    assert client.token == old_token
    client.valid_until = None
    client.authenticate()
    assert client.token != old_token
    assert any(f["rest"]["name"] == "email" for f in client.describe())


# ----- leads -----------------------------------------------------------------------------------


def test_describe_lists_fields_with_rest_names_and_write_access(marketo: MarketoEnv) -> None:
    """ "Leads" Describe: id, displayName, dataType, length, rest{name, readOnly}; describe2 lists
    searchableFields and updateable per field."""
    client = marketo.client()
    fields = {f["rest"]["name"]: f for f in client.describe()}
    assert fields["email"]["dataType"] == "email"
    assert fields["id"]["rest"]["readOnly"] is True
    assert fields["closedloopId"]["rest"]["readOnly"] is False
    assert fields["closedloopId"]["displayName"] == "Closedloop ID"
    (described,) = client.describe2()
    assert ["email"] in described["searchableFields"]
    assert ["closedloopId"] in described["searchableFields"]
    updateable = {f["name"]: f["updateable"] for f in described["fields"]}
    assert updateable["leadStatus"] is True
    assert updateable["createdAt"] is False


def test_create_or_update_a_batch_of_300_with_a_result_per_record(marketo: MarketoEnv) -> None:
    """ "Leads" Create and Update: up to 300 records per call ("Lead Database": max batch size
    300), one result per input in order, status created/updated with the lead id; 301 records
    fail the whole call."""
    client = marketo.client()
    batch = [{"email": f"p{i}@example.com", "closedloopId": f"cl-{i}"} for i in range(300)]
    created = client.create_update_leads(batch, action="createOrUpdate", lookupField="closedloopId")
    assert [r["status"] for r in created] == ["created"] * 300
    assert len({r["id"] for r in created}) == 300
    assert marketo.sandbox.lead_count() == 300

    changed = [{**record, "leadStatus": "Working"} for record in batch]
    updated = client.create_update_leads(changed, lookupField="closedloopId")
    assert [r["status"] for r in updated] == ["updated"] * 300
    assert [r["id"] for r in updated] == [r["id"] for r in created]
    assert marketo.sandbox.get_lead(created[7]["id"])["leadStatus"] == "Working"  # type: ignore[index]

    too_many = batch + [{"email": "extra@example.com", "closedloopId": "cl-extra"}]
    with pytest.raises(MarketoException) as excinfo:
        client.create_update_leads(too_many, lookupField="closedloopId")
    assert excinfo.value.code == "1003"
    assert marketo.sandbox.lead_count() == 300


def test_skipped_records_carry_marketo_reason_codes(marketo: MarketoEnv) -> None:
    """ "Error Codes" record level: status skipped with reasons[{code, message}] — 1001 bad type,
    1003 id with createOnly, 1004 lead not found (updateOnly), 1005 lead already exists
    (createOnly), 1006 field not found, 1007 several leads match; the others in the batch go
    through."""
    client = marketo.client()
    sandbox = marketo.sandbox
    sandbox.create_lead({"email": "dup@example.com", "closedloopId": "dup"})
    sandbox.create_lead({"email": "dup2@example.com", "closedloopId": "dup"})
    existing = sandbox.create_lead({"email": "old@example.com", "closedloopId": "old"})

    def reasons(records: list[dict[str, Any]], action: str) -> list[str | None]:
        results = client.create_update_leads(records, action=action, lookupField="closedloopId")
        return [r["reasons"][0]["code"] if r["status"] == "skipped" else r["status"] for r in results]

    assert reasons(
        [
            {"closedloopId": "new-1", "leadScore": "many"},
            {"closedloopId": "new-2", "favouriteColour": "blue"},
            {"closedloopId": "dup", "leadStatus": "x"},
            {"closedloopId": "new-3", "email": "ok@example.com"},
        ],
        "createOrUpdate",
    ) == ["1001", "1006", "1007", "created"]
    assert reasons([{"closedloopId": "old"}, {"id": existing}], "createOnly") == ["1005", "1003"]
    assert reasons([{"closedloopId": "nobody"}, {"closedloopId": "old", "title": "CFO"}], "updateOnly") == [
        "1004",
        "updated",
    ]
    assert sandbox.get_lead(existing)["title"] == "CFO"  # type: ignore[index]
    assert sandbox.find_leads("closedloopId", "new-1") == []


def test_get_leads_by_filter_type_pages_and_limits(marketo: MarketoEnv) -> None:
    """ "Leads" Query: filterValues takes up to 300 values, pages of up to 300 with nextPageToken
    (marketorestpython follows it, sending the query as POST with _method=GET), default fields
    id/email/firstName/lastName/createdAt/updatedAt; a field that is not searchable is refused."""
    client = marketo.client()
    emails = [f"q{i}@example.com" for i in range(300)]
    for email in emails:
        marketo.sandbox.create_lead({"email": email, "firstName": "Q"})
    leads = client.get_multiple_leads_by_filter_type("email", emails, batchSize=120)
    assert sorted(lead["email"] for lead in leads) == sorted(emails)
    assert set(leads[0]) == {"id", "email", "firstName", "createdAt", "updatedAt"}  # nulls left out
    assert marketo.sandbox.counter.total("/rest/v1/leads.json", method="POST") == 3

    picked = client.get_multiple_leads_by_filter_type("email", ["Q5@EXAMPLE.COM"], fields="id,firstName")
    assert picked == [{"id": marketo.sandbox.find_leads("email", "q5@example.com")[0], "firstName": "Q"}]
    for filter_type, values, code in (
        ("email", [*emails, "one-more@example.com"], "1003"),
        ("leadStatus", ["Open"], "1003"),
    ):
        with pytest.raises(MarketoException) as excinfo:
            client.get_multiple_leads_by_filter_type(filter_type, values)
        assert excinfo.value.code == code


def test_create_lead_fields_and_read_the_schema(marketo: MarketoEnv) -> None:
    """ "Leads" Create Fields / Get Lead Fields: POST /rest/v1/leads/schema/fields.json with
    input[{displayName, name, dataType}] answers a status per field; names are unique, start with
    a letter and hold letters, digits or underscores; Get Lead Fields pages with nextPageToken."""
    client = marketo.client()
    client.authenticate()
    headers = {"Authorization": f"Bearer {client.token}"}
    url = marketo.url + "/rest/v1/leads/schema/fields.json"
    body = {
        "input": [
            {"name": "closedloopOutcome", "displayName": "Closedloop Outcome", "dataType": "string"},
            {"name": "closedloopId", "displayName": "Another Label", "dataType": "string"},
            {"name": "1bad", "displayName": "Bad Name", "dataType": "string"},
            {"name": "noType", "displayName": "No Type"},
        ]
    }
    created = requests.post(url, json=body, headers=headers, timeout=10).json()
    assert created["success"] is True
    assert [(r["name"], r["status"]) for r in created["result"]] == [
        ("closedloopOutcome", "created"),
        ("closedloopId", "skipped"),
        ("1bad", "skipped"),
        ("noType", "skipped"),
    ]
    assert [r["reasons"][0]["code"] for r in created["result"][1:]] == ["1017", "1003", "1002"]

    first = requests.get(url, params={"batchSize": 10}, headers=headers, timeout=10).json()
    assert len(first["result"]) == 10 and first["moreResult"] is True
    rest = requests.get(
        url, params={"batchSize": 300, "nextPageToken": first["nextPageToken"]}, headers=headers, timeout=10
    ).json()
    names = [f["name"] for f in first["result"] + rest["result"]]
    assert "closedloopOutcome" in names and "email" in names and rest["moreResult"] is False
    one = requests.get(
        marketo.url + "/rest/v1/leads/schema/fields/closedloopOutcome.json", headers=headers, timeout=10
    ).json()
    assert one["result"][0]["isCustom"] is True
    (result,) = client.create_update_leads(
        [{"closedloopId": "f1", "closedloopOutcome": "Won"}], lookupField="closedloopId"
    )
    assert result["status"] == "created"


# ----- limits ----------------------------------------------------------------------------------


def test_rate_window_answers_606_in_a_200_body_and_recovers(
    marketo_factory: Callable[..., MarketoEnv],
) -> None:
    """ "Error Codes" 606 "Max rate limit exceeded" (100 calls per 20 s by default, "Integration
    Best Practices"); rejected calls do not count against the window or the day.

    (marketorestpython's own backoff cannot recover a 606: its retry resends the arguments from
    which the first attempt popped the access token, and gets 600. Callers retry themselves.)"""
    env = marketo_factory(window_limit=3, window_seconds=2.0)
    client = env.client()
    for _ in range(3):
        client.describe()
    raw = _raw(env, "/rest/v1/leads/describe.json", client.token)
    assert raw.status_code == 200
    assert raw.json()["errors"][0]["code"] == "606"
    with pytest.raises(MarketoException) as excinfo:
        client.describe()
    assert excinfo.value.code == "606"
    patient = env.client(max_retry_time=10)
    with pytest.raises(MarketoException) as excinfo:
        patient.describe()
    assert excinfo.value.code == "600"
    time.sleep(2.0)
    assert client.describe()
    assert env.sandbox.limits.daily_used == 4


def test_daily_quota_is_607(marketo_factory: Callable[..., MarketoEnv]) -> None:
    """ "Error Codes" 607 "Daily quota reached" (50,000 calls a day by default, reset at midnight
    US Central time)."""
    env = marketo_factory(daily_limit=2, window_limit=1000)
    client = env.client()
    client.describe()
    client.describe2()
    with pytest.raises(MarketoException) as excinfo:
        client.get_activity_types()
    assert excinfo.value.code == "607"
    env.sandbox.clock.advance(timedelta(days=1))
    assert client.get_activity_types()


def test_concurrent_calls_beyond_the_limit_are_615(marketo_factory: Callable[..., MarketoEnv]) -> None:
    """ "Error Codes" 615 "Concurrent access limit reached" (ten concurrent calls by default)."""
    env = marketo_factory(concurrency_limit=1, window_limit=1000)
    env.sandbox.processing_seconds = 0.6
    clients = [env.client(), env.client()]
    for client in clients:
        client.authenticate()
    codes: list[str] = []

    def call(client: Any) -> None:
        try:
            client.describe()
            codes.append("ok")
        except MarketoException as exc:
            codes.append(str(exc.code))

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    assert sorted(codes) == ["615", "ok"]


def test_oversized_bodies_and_uris_are_the_only_http_errors(marketo: MarketoEnv) -> None:
    """ "Error Codes" HTTP level: 413 for a payload over 1 MB, 414 for a URI over 8 KB (a long
    query must go as POST with _method=GET, which marketorestpython does for lead queries)."""
    client = marketo.client()
    client.authenticate()
    headers = {"Authorization": f"Bearer {client.token}", "Content-Type": "application/json"}
    big = {"input": [{"email": f"x{i}@example.com", "title": "x" * 4000} for i in range(300)]}
    response = requests.post(
        marketo.url + "/rest/v1/leads.json", data=json.dumps(big), headers=headers, timeout=10
    )
    assert response.status_code == 413
    long_values = ",".join(f"someone.{i}@example.com" for i in range(400))
    response = _raw(
        marketo, "/rest/v1/leads.json", client.token, filterType="email", filterValues=long_values
    )
    assert response.status_code == 414
    emails = [f"someone.{i}@example.com" for i in range(300)]
    assert client.get_multiple_leads_by_filter_type("email", emails) == []
    assert marketo.sandbox.lead_count() == 0


def test_injected_faults_look_like_marketo(marketo: MarketoEnv) -> None:
    """An injected 429 is rendered as Marketo renders rate limits (606 in a 200 body); a gateway
    5xx is an HTML page the client cannot parse; both are counted per endpoint."""
    client = marketo.client()
    client.authenticate()
    requests.put(
        marketo.url + "/__admin/faults",
        json={"rules": [{"path_regex": "describe", "rate_429": 1.0}]},
        timeout=5,
    )
    with pytest.raises(MarketoException) as excinfo:
        client.describe()
    assert excinfo.value.code == "606"
    requests.put(
        marketo.url + "/__admin/faults",
        json={"rules": [{"path_regex": "describe", "rate_5xx": 1.0}]},
        timeout=5,
    )
    with pytest.raises(requests.exceptions.JSONDecodeError):
        client.describe()
    calls = requests.get(marketo.url + "/__admin/calls", timeout=5).json()
    statuses = sorted(c["status"] for c in calls if c["endpoint"] == "/rest/v1/leads/describe.json")
    assert statuses[0] == 429 and statuses[1] >= 500  # counted as the fault injected


# ----- activities ------------------------------------------------------------------------------


def test_changes_are_activities_with_their_source_time(marketo: MarketoEnv) -> None:
    """ "Activities": New Lead, Change Data Value (primary attribute = the field, attributes New
    Value / Old Value / Source), Change Score, Merge Leads and Delete Lead, each at the time it
    happened; type ids come from activities/types.json; deleted leads from deletedleads.json."""
    sandbox = marketo.sandbox
    client = marketo.client()
    ids = _type_ids(client)
    since = START.strftime("%Y-%m-%dT%H:%M:%SZ")
    (result,) = client.create_update_leads(
        [{"email": "a@example.com", "closedloopId": "cl-a", "leadStatus": "Open"}], lookupField="closedloopId"
    )
    lead_id = result["id"]
    sandbox.clock.advance(timedelta(hours=5))
    changed_at = sandbox.clock.now()
    client.create_update_leads([{"closedloopId": "cl-a", "leadStatus": "MQL"}], lookupField="closedloopId")
    sandbox.change_score(lead_id, 15, "Visited pricing page")
    dup = sandbox.create_lead({"email": "a+dup@example.com"})
    gone = sandbox.create_lead({"email": "gone@example.com"})
    sandbox.merge_leads(lead_id, [dup])
    sandbox.delete_lead(gone)

    wanted = [ids[n] for n in ("New Lead", "Change Data Value", "Change Score", "Merge Leads", "Delete Lead")]
    activities = client.get_lead_activities([str(i) for i in wanted], sinceDatetime=since)
    by_type: dict[int, list[dict[str, Any]]] = {}
    for activity in activities:
        by_type.setdefault(activity["activityTypeId"], []).append(activity)
    assert [a["leadId"] for a in by_type[ids["New Lead"]]] == [lead_id, dup, gone]
    (status_change,) = [a for a in by_type[ids["Change Data Value"]] if a["leadId"] == lead_id]
    attrs = {a["name"]: a["value"] for a in status_change["attributes"]}
    assert status_change["primaryAttributeValue"] == "Lead Status"
    assert attrs["New Value"] == "MQL" and attrs["Old Value"] == "Open"
    assert attrs["Source"] == "Web service API"
    assert status_change["activityDate"] == changed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    (score,) = by_type[ids["Change Score"]]
    assert {a["name"]: a["value"] for a in score["attributes"]}["Change Value"] == "+15"
    (merge,) = by_type[ids["Merge Leads"]]
    assert merge["leadId"] == lead_id
    assert {a["name"]: a["value"] for a in merge["attributes"]}["Merge IDs"] == [dup]
    deleted = client.get_deleted_leads(sinceDatetime=since)
    assert [d["leadId"] for d in deleted] == [gone]

    with pytest.raises(MarketoException) as excinfo:
        client.get_lead_activities([str(i) for i in range(1, 12)], sinceDatetime=since)
    assert excinfo.value.code == "1003"  # at most ten activity type ids


def test_activity_pages_scan_300_of_every_type_and_the_token_is_a_cursor(marketo: MarketoEnv) -> None:
    """ "Activities"/"Paging Tokens": each call looks at up to 300 activities of all types after
    the token and returns the requested ones, so a page can be empty with moreResult true; the
    last nextPageToken is where the next poll starts — an idle poll is one call."""
    sandbox = marketo.sandbox
    client = marketo.client()
    ids = _type_ids(client)
    token = client.get_paging_token(sinceDatetime=START.strftime("%Y-%m-%dT%H:%M:%SZ"))
    lead = sandbox.create_lead({"email": "busy@example.com"})
    for i in range(330):
        sandbox.update_lead(lead, {"title": f"t{i}"}, source=FLOW_SOURCE)
    sandbox.change_score(lead, 5, "Webinar attended")

    pages = list(
        client.get_lead_activities_yield(
            [str(ids["Change Score"])], nextPageToken=token, return_full_result=True
        )
    )
    assert len(pages) == 1  # the first page scanned 300 activities and found no score change
    assert pages[0]["result"][0]["activityTypeId"] == ids["Change Score"]
    assert pages[0]["moreResult"] is False
    cursor = pages[0]["nextPageToken"]

    sandbox.counter.reset()
    idle = client.get_lead_activities([str(ids["Change Score"])], nextPageToken=cursor)
    assert idle == []
    assert sandbox.counter.total("/rest/v1/activities.json") == 1
    sandbox.change_score(lead, -5, "Unsubscribed")
    (fresh,) = client.get_lead_activities([str(ids["Change Score"])], nextPageToken=cursor)
    assert {a["name"]: a["value"] for a in fresh["attributes"]}["Change Value"] == "-5"


def test_lead_changes_report_the_named_fields(marketo: MarketoEnv) -> None:
    """ "Activities" Get Lead Changes: New Lead and Change Data Value activities, each with
    fields[{id, name, newValue, oldValue}] for the fields asked for."""
    sandbox = marketo.sandbox
    client = marketo.client()
    lead = sandbox.create_lead({"email": "c@example.com", "leadStatus": "Open"})
    sandbox.update_lead(lead, {"title": "VP"})
    sandbox.update_lead(lead, {"leadStatus": "Qualified"})
    changes = client.get_lead_changes(["leadStatus"], sinceDatetime=START.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert [c["fields"] for c in changes] == [
        [],
        [
            {
                "id": changes[1]["fields"][0]["id"],
                "name": "leadStatus",
                "newValue": "Qualified",
                "oldValue": "Open",
            }
        ],
    ]


def test_daily_usage_counts_todays_calls(marketo_factory: Callable[..., MarketoEnv]) -> None:
    """ "Usage" Get Daily Usage: result[{date, total, users[{userId, count}]}] for the current day."""
    env = marketo_factory()
    client = env.client()
    client.describe()
    client.describe2()
    (today,) = client.get_daily_usage()
    assert today["date"] == "2026-03-02"
    assert today["total"] == 3  # the usage call counts too
    assert today["users"] == [{"userId": env.sandbox.scope, "count": 3}]


def test_backdated_changes_take_their_place_in_the_activity_log(marketo: MarketoEnv) -> None:
    """Activities are ordered by activityDate: a change recorded with an earlier source time (an
    import of history) is returned before later ones from a date token that precedes it."""
    sandbox = marketo.sandbox
    client = marketo.client()
    ids = _type_ids(client)
    now_lead = sandbox.create_lead({"email": "now@example.com"})
    old_lead = sandbox.create_lead({"email": "old@example.com"}, at=START - timedelta(days=3))
    since = (START - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = client.get_lead_activities([str(ids["New Lead"])], sinceDatetime=since)
    assert [(a["leadId"], a["activityDate"]) for a in created] == [
        (old_lead, (START - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")),
        (now_lead, START.strftime("%Y-%m-%dT%H:%M:%SZ")),
    ]


# ----- programs and merges ---------------------------------------------------------------------


def test_programs_and_acquisition_program(marketo: MarketoEnv) -> None:
    """Assets "Programs": browse returns id, name, type, channel, ...; with no programs the call
    succeeds with the warning "No assets found for the given search criteria."; a lead's
    acquisitionProgramId names the program that acquired it."""
    client = marketo.client()
    assert client.browse_programs() == []
    webinar = marketo.sandbox.add_program("2026-03 Webinar", "Event", "Webinar")
    marketo.sandbox.add_program("Content syndication", "Default", "Content")
    programs = client.browse_programs()
    assert [(p["id"], p["name"], p["type"], p["channel"]) for p in programs][0] == (
        webinar,
        "2026-03 Webinar",
        "Event",
        "Webinar",
    )
    assert client.get_program_by_id(webinar)[0]["name"] == "2026-03 Webinar"
    (created,) = client.create_update_leads(
        [{"email": "w@example.com", "closedloopId": "w", "acquisitionProgramId": webinar}],
        lookupField="closedloopId",
    )
    (lead,) = client.get_multiple_leads_by_filter_type(
        "closedloopId", ["w"], fields="id,acquisitionProgramId"
    )
    assert lead == {"id": created["id"], "acquisitionProgramId": webinar}


def test_merge_leads_through_the_api(marketo: MarketoEnv) -> None:
    """ "Leads" Merge: POST /rest/v1/leads/{id}/merge.json?leadIds=...; the losers are gone and the
    winner keeps its values; an unknown lead is 1004."""
    sandbox = marketo.sandbox
    client = marketo.client()
    winner = sandbox.create_lead({"email": "w@example.com", "title": "CEO"})
    loser = sandbox.create_lead({"email": "w2@example.com", "title": "Founder"})
    assert client.merge_lead(winner, [loser]) is True
    assert sandbox.get_lead(loser) is None
    assert sandbox.get_lead(winner)["title"] == "CEO"  # type: ignore[index]
    with pytest.raises(MarketoException) as excinfo:
        client.merge_lead(winner, [999_999])
    assert excinfo.value.code == "1004"


def test_delete_leads_through_the_api(marketo: MarketoEnv) -> None:
    """ "Leads" Delete: DELETE /rest/v1/leads.json with input[{id}] answers deleted or skipped
    (1004) per record; deleted leads then appear in Get Deleted Leads."""
    sandbox = marketo.sandbox
    client = marketo.client()
    lead = sandbox.create_lead({"email": "bye@example.com"})
    results = client.delete_lead([lead, 424242])
    assert [r["status"] for r in results] == ["deleted", "skipped"]
    assert results[1]["reasons"][0]["code"] == "1004"
    assert sandbox.get_lead(lead) is None
    assert client.get_lead_by_id(lead) == []
    deleted = client.get_deleted_leads(sinceDatetime=START.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert [(d["leadId"], d["primaryAttributeValueId"]) for d in deleted] == [(lead, lead)]


# ----- webhooks --------------------------------------------------------------------------------


def test_trigger_campaign_calls_the_webhook_with_lead_tokens_and_custom_header(marketo: MarketoEnv) -> None:
    """ "Webhooks": a Call Webhook flow step POSTs the payload template with lead tokens filled
    (string tokens quoted under JSON encoding) and the admin's custom headers."""
    receiver = WebhookReceiver()
    try:
        url = receiver.url.split("/hubspot")[0] + "/marketo/webhooks"
        hook = Webhook(
            "Closedloop notify",
            url,
            '{"leadId": {{lead.Id}}, "email": {{lead.Email Address}}, "status": {{lead.Lead Status}}}',
            {"X-Closedloop-Token": "shared-secret-value"},
        )
        sandbox = marketo.sandbox
        sandbox.add_trigger_campaign("Status changed", "Data Value Changes", hook, field="leadStatus")
        sandbox.start_webhooks()
        lead = sandbox.create_lead({"email": 'o"brien@example.com'})
        sandbox.update_lead(lead, {"title": "CTO"})  # not the watched field
        sandbox.update_lead(lead, {"leadStatus": "MQL"})
        assert sandbox.webhooks.wait_idle()
        (post,) = receiver.snapshot()
        assert json.loads(post.body) == {"leadId": lead, "email": 'o"brien@example.com', "status": "MQL"}
        assert post.headers["X-Closedloop-Token"] == "shared-secret-value"
        assert post.headers["Content-Type"] == "application/json"
    finally:
        receiver.stop()


def test_form_encoded_webhook_percent_encodes_tokens(marketo: MarketoEnv) -> None:
    """ "Webhooks" Request Token Encoding Form/Url: token values with special characters are
    encoded for a form body."""
    receiver = WebhookReceiver()
    try:
        url = receiver.url.split("/hubspot")[0] + "/marketo/form"
        template = "email={{lead.Email Address}}&company={{lead.Company Name}}"
        hook = Webhook("Form hook", url, template, token_encoding="Form/Url")
        sandbox = marketo.sandbox
        sandbox.add_trigger_campaign("New person", "Person is Created", hook)
        sandbox.start_webhooks()
        sandbox.create_lead({"email": "a+b@example.com", "company": "Smith & Sons"})
        assert sandbox.webhooks.wait_idle()
        (post,) = receiver.snapshot()
        assert post.body == "email=a%2Bb%40example.com&company=Smith+%26+Sons"
        assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
    finally:
        receiver.stop()
