"""The Salesforce sandbox driven by the real simple-salesforce client over real HTTPS (sandbox CA only)."""

from __future__ import annotations

import gc
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from sandboxes.common import FaultRule, ServerThread, SimClock
from sandboxes.salesforce import SalesforceSandbox, SandboxTLS
from sandboxes.salesforce.schema import FieldDef, build_schema
from sandboxes.salesforce.store import Store
from sync.connectors.errors import classify_salesforce, duplicate_match_ids

START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
OM = "{http://soap.sforce.com/2005/09/outbound}"
SF = "{urn:sobject.enterprise.soap.sforce.com}"
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> SandboxTLS:
    return SandboxTLS.create(tmp_path_factory.mktemp("tls"))


def _serve(sandbox: SalesforceSandbox, tls: SandboxTLS) -> ServerThread:
    server = ServerThread(sandbox.app, ssl_certfile=tls.cert_file, ssl_keyfile=tls.key_file).start()
    sandbox.instance_url = server.url
    return server


def _client(
    sandbox: SalesforceSandbox,
    server: ServerThread,
    tls: SandboxTLS,
    session_id: str | None = None,
    version: str = "59.0",
) -> Salesforce:
    http = requests.Session()
    http.verify = tls.ca_file
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override session.verify unless trust_env is off.
    http.trust_env = False
    return Salesforce(
        instance_url=server.url, session_id=session_id or sandbox.session_id, session=http, version=version
    )


@pytest.fixture(scope="module")
def env(tls: SandboxTLS) -> Iterator[tuple[SalesforceSandbox, Salesforce]]:
    sandbox = SalesforceSandbox(clock=SimClock(start=START))
    server = _serve(sandbox, tls)
    sf = _client(sandbox, server, tls)
    try:
        yield sandbox, sf
    finally:
        # Keep-alive connections still referenced by unread responses (204s) would stall the server's
        # graceful shutdown: collect them, then close the pool.
        gc.collect()
        sf.session.close()
        server.stop()


def _content(exc: Exception) -> Any:
    """The parsed error body simple-salesforce attached to ``exc``."""
    return getattr(exc, "content")  # noqa: B009 - the attribute is untyped in simple-salesforce


def _lead(n: int | str, **extra: Any) -> dict[str, Any]:
    return {"LastName": f"Last{n}", "Company": "Acme", "Email": f"p{n}@example.com", **extra}


def test_tls_is_required_and_only_the_sandbox_ca_is_trusted(tls: SandboxTLS, env: Any) -> None:
    sandbox, sf = env
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(sf.base_url + "limits/", timeout=5)  # system trust store does not know the sandbox CA
    versions = requests.get(f"https://{sf.sf_instance}/services/data", verify=tls.ca_file, timeout=5).json()
    assert {"50.0", "59.0"} <= {v["version"] for v in versions}


def test_wrong_session_is_invalid_session_id(tls: SandboxTLS, env: Any) -> None:
    sandbox, sf = env
    bad = Salesforce(instance_url=f"https://{sf.sf_instance}", session_id="nope", session=sf.session)
    with pytest.raises(SalesforceExpiredSession) as err:
        bad.query("SELECT Id FROM Lead")
    assert _content(err.value)[0]["errorCode"] == "INVALID_SESSION_ID"


def test_crud_and_upsert_by_external_id(env: Any) -> None:
    sandbox, sf = env
    created = sf.Lead.create(_lead("crud", Closedloop_Id__c="CL-CRUD"))
    assert created["success"] is True and len(created["id"]) == 18
    record = sf.Lead.get(created["id"])
    assert record["attributes"]["type"] == "Lead"
    assert record["Status"] == "Open - Not Contacted"
    assert record["CreatedDate"].endswith("+0000")
    assert sf.Lead.update(created["id"], {"Title": "CTO"}) == 204
    assert sf.Lead.get(created["id"], params={"fields": "Title"}) == {
        "attributes": record["attributes"],
        "Title": "CTO",
    }
    assert sf.Lead.upsert("Closedloop_Id__c/CL-CRUD", {"Title": "CEO"}) == 200
    assert sandbox.get("Lead", created["id"])["Title"] == "CEO"
    assert sf.Lead.upsert("Closedloop_Id__c/CL-NEW", _lead("new")) == 201
    assert sf.Lead.get_by_custom_id("Closedloop_Id__c", "CL-NEW")["LastName"] == "Lastnew"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.upsert("Not_A_Field__c/x", _lead("x"))
    assert sf.Lead.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as err:
        sf.Lead.get(created["id"])
    assert _content(err.value)[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert sf.query_all(f"SELECT Id FROM Lead WHERE Id = '{created['id']}'")["totalSize"] == 0
    deleted = sf.query_all(f"SELECT IsDeleted FROM Lead WHERE Id = '{created['id']}'", include_deleted=True)
    assert deleted["records"][0]["IsDeleted"] is True


def test_duplicate_external_id_is_rejected_case_insensitively(env: Any) -> None:
    sandbox, sf = env
    sf.Contact.create({"LastName": "Dup", "Closedloop_Id__c": "CL-DUP"})
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Contact.create({"LastName": "Dup2", "Closedloop_Id__c": "cl-dup"})
    assert _content(err.value)[0]["errorCode"] == "DUPLICATE_VALUE"


def test_standard_duplicate_rules_refuse_a_lead_whose_email_matches_a_lead_or_contact(env: Any) -> None:
    """New orgs have the standard Lead and Contact duplicate rules active.

    Salesforce Help, "Standard Lead Duplicate Rule": matches leads that duplicate other leads and
    contacts (Standard Lead + Standard Contact Matching Rule); action on create "Allow" with alert, on
    edit "Allow" with report only. Metadata API "DuplicateRule" (actionOnInsert Allow): the API gets
    an error unless DuplicateRuleHeader.allowSave is true. SOAP API guide "DuplicateError",
    "DuplicateResult", "MatchResult", "MatchRecord" give the error's shape; REST API guide "Duplicate
    Rule Header" gives ``Sforce-Duplicate-Rule-Header: allowSave=true``.
    """
    sandbox, sf = env
    lead_id = sandbox.insert("Lead", _lead("dup1", Email="Dupe.Person@Example.com"))  # as a rep in the UI
    contact_id = sandbox.insert("Contact", {"LastName": "Dupe", "Email": "dupe.person@example.com"})
    before = sandbox.count("SELECT COUNT() FROM Lead")
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Lead.create(_lead("dup2", Email="DUPE.person@example.COM"))
    assert err.value.status == 400
    body = _content(err.value)
    assert body[0]["errorCode"] == "DUPLICATES_DETECTED"
    assert body[0]["message"] == "Use one of these records?"
    result = body[0]["duplicateResult"]
    assert result["duplicateRule"] == "Standard_Lead_Duplicate_Rule"
    assert result["duplicateRuleEntityType"] == "Lead" and result["allowSave"] is True
    by_type = {m["entityType"]: m for m in result["matchResults"]}
    assert by_type["Lead"]["rule"] == "Standard_Lead_Match_Rule_v1_0"
    assert by_type["Contact"]["rule"] == "Standard_Contact_Match_Rule_v1_1"
    assert [r["record"]["Id"] for r in by_type["Lead"]["matchRecords"]] == [lead_id]
    assert [r["record"]["Id"] for r in by_type["Contact"]["matchRecords"]] == [contact_id]
    assert by_type["Contact"]["size"] == 1 and by_type["Contact"]["success"] is True
    assert sandbox.count("SELECT COUNT() FROM Lead") == before  # nothing saved

    # The connector's classification keeps the category and the matched IDs for the caller.
    classified = classify_salesforce(err.value)
    assert classified.category == "duplicate_rule" and classified.transient is False
    assert set(classified.matched_ids) == {lead_id, contact_id}

    # An upsert that would insert is refused the same way; one that updates is not (edit = report only).
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Lead.upsert("Closedloop_Id__c/CL-DUP-NEW", _lead("dup3", Email="dupe.person@example.com"))
    assert _content(err.value)[0]["errorCode"] == "DUPLICATES_DETECTED"
    other = sf.Lead.create(_lead("dup4", Closedloop_Id__c="CL-DUP-4"))["id"]
    assert sf.Lead.update(other, {"Email": "dupe.person@example.com"}) == 204
    assert sf.Lead.upsert("Closedloop_Id__c/CL-DUP-4", {"Title": "CFO"}) == 200

    # Acknowledging the alert saves the duplicate; blank emails never match.
    saved = sf.Lead.create(
        _lead("dup5", Email="dupe.person@example.com"),
        headers={"Sforce-Duplicate-Rule-Header": "allowSave=true"},
    )
    assert saved["success"] is True
    sf.Lead.create({"LastName": "NoMail1", "Company": "Acme"})
    sf.Lead.create({"LastName": "NoMail2", "Company": "Acme"})

    # The Contact rule matches Leads too; converted Leads are not offered as duplicates.
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Contact.create({"LastName": "Dupe2", "Email": "dupe.person@example.com"})
    assert _content(err.value)[0]["duplicateResult"]["duplicateRule"] == "Standard_Contact_Duplicate_Rule"
    converted = sandbox.insert("Lead", _lead("dupconv", Email="converted@example.com"))
    sandbox.convert_lead(converted, create_opportunity=False)
    assert duplicate_match_ids(_lead_error(sf, "converted@example.com")) == (
        sandbox.get("Lead", converted)["ConvertedContactId"],  # type: ignore[index]
    )


def _lead_error(sf: Salesforce, email: str) -> Any:
    """The REST error body of creating a Lead with ``email`` (which must be refused)."""
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Lead.create(_lead("probe", Email=email))
    return _content(err.value)


def test_duplicate_rules_in_collections_and_composite(env: Any) -> None:
    """sObject Collections return the DuplicateError inside the record's SaveResult; a Composite
    subrequest carries the header in its ``httpHeaders``.

    REST API guide, "sObject Collections" (SaveResult per record, allOrNone) and "Composite"
    (``httpHeaders`` per subrequest); SOAP API guide "DuplicateError" (statusCode, message, fields,
    duplicateResult).
    """
    sandbox, sf = env
    existing = sandbox.insert("Lead", _lead("coldup", Email="col.dup@example.com"))
    records = [
        {"attributes": {"type": "Lead"}, **_lead("coldup-a", Email="col.dup.a@example.com")},
        {"attributes": {"type": "Lead"}, **_lead("coldup-b", Email="Col.Dup@example.com")},
    ]
    out = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": records})
    assert out[0]["success"] is True and out[1]["success"] is False
    error = out[1]["errors"][0]
    assert error["statusCode"] == "DUPLICATES_DETECTED" and error["fields"] == []
    assert duplicate_match_ids(error) == (existing,)

    upserts = [
        {
            "attributes": {"type": "Lead"},
            "Closedloop_Id__c": "CL-COLDUP",
            **_lead("cu", Email="col.dup@example.com"),
        }
    ]
    out = sf.restful(
        "composite/sobjects/Lead/Closedloop_Id__c",
        method="PATCH",
        json={"allOrNone": False, "records": upserts},
    )
    assert out[0]["errors"][0]["statusCode"] == "DUPLICATES_DETECTED"
    out = sf.restful(
        "composite/sobjects/Lead/Closedloop_Id__c",
        method="PATCH",
        json={"allOrNone": False, "records": upserts},
        headers={"Sforce-Duplicate-Rule-Header": "allowSave=true"},
    )
    assert out[0]["success"] is True and out[0]["created"] is True

    body = {
        "compositeRequest": [
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Lead",
                "referenceId": "refused",
                "body": _lead("cmp1", Email="col.dup@example.com"),
            },
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Lead",
                "referenceId": "acknowledged",
                "body": _lead("cmp2", Email="col.dup@example.com"),
                "httpHeaders": {"Sforce-Duplicate-Rule-Header": "allowSave=true"},
            },
        ]
    }
    refused, acknowledged = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert refused["httpStatusCode"] == 400 and refused["body"][0]["errorCode"] == "DUPLICATES_DETECTED"
    assert acknowledged["httpStatusCode"] == 201


def test_duplicate_rules_can_be_deactivated_or_set_to_block(env: Any) -> None:
    """Setup > Duplicate Rules: a rule can be deactivated, or its action on create set to Block.

    Metadata API "DuplicateRule" (isActive; actionOnInsert Block: "the DuplicateRule API returns an
    error and the record isn't inserted"); DuplicateResult.allowSave is then false.
    """
    sandbox, sf = env
    sandbox.insert("Lead", _lead("rule1", Email="rule.dup@example.com"))
    try:
        sandbox.configure_duplicate_rule("Standard_Lead_Duplicate_Rule", action_on_insert="Block")
        with pytest.raises(SalesforceMalformedRequest) as err:
            sf.Lead.create(
                _lead("rule2", Email="rule.dup@example.com"),
                headers={"Sforce-Duplicate-Rule-Header": "allowSave=true"},
            )
        assert _content(err.value)[0]["duplicateResult"]["allowSave"] is False
        sandbox.configure_duplicate_rule("Standard_Lead_Duplicate_Rule", active=False)
        assert sf.Lead.create(_lead("rule3", Email="rule.dup@example.com"))["success"] is True
    finally:
        sandbox.configure_duplicate_rule(
            "Standard_Lead_Duplicate_Rule", active=True, action_on_insert="Allow"
        )


def test_entity_is_deleted_body_carries_empty_fields(env: Any) -> None:
    """A deleted record answers 404 ``[{"errorCode": "ENTITY_IS_DELETED", "message": "entity is
    deleted", "fields": []}]`` (REST API guide, "Status Codes and Error Responses"; recorded real
    responses carry the empty ``fields`` list, unlike NOT_FOUND)."""
    _sandbox, sf = env
    rid = sf.Lead.create(_lead("deleted-body"))["id"]
    sf.Lead.delete(rid)
    with pytest.raises(SalesforceResourceNotFound) as err:
        sf.Lead.get(rid)
    assert _content(err.value) == [
        {"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}
    ]
    with pytest.raises(SalesforceResourceNotFound) as err:
        sf.Lead.get("00Q000000000000AAA")
    assert "fields" not in _content(err.value)[0]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"Company": "Acme"}, "REQUIRED_FIELD_MISSING"),
        ({**_lead("u"), "Bogus__c": 1}, "INVALID_FIELD"),
        ({**_lead("p"), "Status": "Nope"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({**_lead("l"), "FirstName": "x" * 41}, "STRING_TOO_LONG"),
        ({**_lead("c"), "IsConverted": True}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
    ],
)
def test_validation_errors(env: Any, fields: dict[str, Any], code: str) -> None:
    _sandbox, sf = env
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Lead.create(fields)
    assert _content(err.value)[0]["errorCode"] == code


def test_describe_reports_fields_and_picklists(env: Any) -> None:
    _sandbox, sf = env
    describe = sf.Opportunity.describe()
    fields = {f["name"]: f for f in describe["fields"]}
    assert fields["IsWon"]["updateable"] is False and fields["IsWon"]["createable"] is False
    assert "Closed Won" in [p["value"] for p in fields["StageName"]["picklistValues"]]
    lead_fields = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    ext = lead_fields["Closedloop_Id__c"]
    assert ext["externalId"] is True and ext["unique"] is True
    assert lead_fields["LastName"]["nillable"] is False and lead_fields["LastName"]["length"] == 80


def test_query_paging_with_batch_size(env: Any) -> None:
    sandbox, sf = env
    for i in range(450):
        sandbox.insert("Lead", _lead(f"page{i:03d}", Title="Pager"))
    first = sf.query(
        "SELECT Id, LastName FROM Lead WHERE Title = 'Pager' ORDER BY LastName",
        headers={"Sforce-Query-Options": "batchSize=200"},
    )
    assert first["done"] is False and len(first["records"]) == 200 and first["totalSize"] == 450
    assert "/query/" in first["nextRecordsUrl"]
    everything = sf.query_all(
        "SELECT Id, LastName FROM Lead WHERE Title = 'Pager' ORDER BY LastName",
        headers={"Sforce-Query-Options": "batchSize=200"},
    )
    names = [r["LastName"] for r in everything["records"]]
    assert len(names) == 450 and names == sorted(names) and len(set(names)) == 450
    assert sf.query("SELECT COUNT() FROM Lead WHERE Title = 'Pager'")["totalSize"] == 450


def test_query_errors_raise_malformed_request(env: Any) -> None:
    _sandbox, sf = env
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query("SELECT Id FROM Lead WHERE")
    assert _content(err.value)[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query("SELECT Nope__c FROM Lead")
    assert _content(err.value)[0]["errorCode"] == "INVALID_FIELD"


def test_convert_lead_and_converted_lead_is_read_only(env: Any) -> None:
    sandbox, sf = env
    lead_id = sf.Lead.create(_lead("conv", Closedloop_Id__c="CL-CONV"))["id"]
    result = sandbox.convert_lead(lead_id, opportunity_name="Acme deal")
    lead = sf.Lead.get(lead_id)
    assert lead["IsConverted"] is True and lead["Status"] == "Closed - Converted"
    assert lead["ConvertedContactId"] == result["contactId"]
    assert lead["ConvertedOpportunityId"] == result["opportunityId"]
    roles = sf.query(
        "SELECT Contact.Closedloop_Id__c, Opportunity.StageName, IsPrimary FROM OpportunityContactRole "
        f"WHERE OpportunityId = '{result['opportunityId']}'"
    )["records"]
    assert roles[0]["Contact"]["Closedloop_Id__c"] == "CL-CONV"
    assert roles[0]["Opportunity"]["StageName"] == "Prospecting" and roles[0]["IsPrimary"] is True
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Lead.update(lead_id, {"Title": "x"})
    assert _content(err.value)[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_history_rows_and_opportunity_semantics(env: Any) -> None:
    sandbox, sf = env
    lead_id = sf.Lead.create(_lead("hist"))["id"]
    sf.Lead.update(lead_id, {"Status": "Working - Contacted"})
    rows = sf.query(
        f"SELECT Field, OldValue, NewValue FROM LeadHistory WHERE LeadId = '{lead_id}' ORDER BY CreatedDate"
    )["records"]
    assert [(r["Field"], r["OldValue"], r["NewValue"]) for r in rows] == [
        ("created", None, None),
        ("Status", "Open - Not Contacted", "Working - Contacted"),
    ]
    opp = sf.Opportunity.create(
        {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31", "Amount": 1000}
    )["id"]
    sf.Opportunity.update(opp, {"StageName": "Closed Lost", "Loss_Reason__c": "Price"})
    got = sf.Opportunity.get(opp)
    assert (got["IsClosed"], got["IsWon"], got["Probability"]) == (True, False, 0.0)
    stages = sf.query(
        f"SELECT StageName FROM OpportunityHistory WHERE OpportunityId = '{opp}' ORDER BY CreatedDate"
    )["records"]
    assert [s["StageName"] for s in stages] == ["Prospecting", "Closed Lost"]
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Opportunity.update(opp, {"IsWon": True})
    assert _content(err.value)[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_opportunity_field_history_is_queryable_and_follows_tracked_fields(env: Any) -> None:
    """OpportunityFieldHistory exists in every org; it gets rows only for history-tracked fields,
    while OpportunityHistory snapshots every stage/amount/close-date change regardless.

    Object Reference, "OpportunityFieldHistory" (OpportunityId, Field, OldValue, NewValue) and
    "OpportunityHistory"; Salesforce Help, "Field History Tracking" (tracked fields per object).
    """
    sandbox, sf = env
    opp = sf.Opportunity.create({"Name": "Tracked", "StageName": "Prospecting", "CloseDate": "2026-12-31"})[
        "id"
    ]
    sf.Opportunity.update(opp, {"StageName": "Needs Analysis", "Name": "Tracked 2"})
    rows = sf.query(
        f"SELECT Field, OldValue, NewValue FROM OpportunityFieldHistory WHERE OpportunityId = '{opp}' "
        "ORDER BY CreatedDate"
    )["records"]
    # Name is not tracked by default: no row for it.
    assert [(r["Field"], r["OldValue"], r["NewValue"]) for r in rows] == [
        ("created", None, None),
        ("StageName", "Prospecting", "Needs Analysis"),
    ]
    sandbox.set_history_tracking("Opportunity", "StageName", False)
    try:
        sf.Opportunity.update(opp, {"StageName": "Closed Won"})
        fields = [
            r["Field"]
            for r in sf.query(f"SELECT Field FROM OpportunityFieldHistory WHERE OpportunityId = '{opp}'")[
                "records"
            ]
        ]
        assert fields == ["created", "StageName"]  # nothing new for the untracked field
        stages = sf.query(f"SELECT StageName FROM OpportunityHistory WHERE OpportunityId = '{opp}'")[
            "records"
        ]
        assert [s["StageName"] for s in stages] == ["Prospecting", "Needs Analysis", "Closed Won"]
    finally:
        sandbox.set_history_tracking("Opportunity", "StageName", True)
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.restful("sobjects/OpportunityFieldHistory", method="POST", json={"OpportunityId": opp})
    assert _content(err.value)[0]["errorCode"] == "INVALID_TYPE_FOR_OPERATION"


def test_account_history_follows_tracked_account_fields(env: Any) -> None:
    """AccountHistory (AccountId, Field, OldValue, NewValue, CreatedDate) gets a ``created`` row and
    one row per change of a history-tracked Account field; untracked fields and writes leave none.

    Object Reference, "AccountHistory" (fields AccountId, Field, OldValue, NewValue; query, retrieve
    only); Salesforce Help, "Field History Tracking" (tracking is chosen per field; custom fields
    such as Customer_Status__c can be tracked). The sandbox tracks Customer_Status__c and OwnerId.
    """
    sandbox, sf = env
    account = sf.Account.create({"Name": "Tracked Co", "Customer_Status__c": "Onboarding"})["id"]
    sf.Account.update(account, {"Customer_Status__c": "Active", "Type": "Customer - Direct"})
    sf.Account.update(account, {"Customer_Status__c": "Churned"})
    soql = (
        "SELECT AccountId, Field, OldValue, NewValue, CreatedDate FROM AccountHistory "
        f"WHERE AccountId = '{account}' ORDER BY CreatedDate"
    )
    rows = sf.query(soql)["records"]
    assert [(r["Field"], r["OldValue"], r["NewValue"]) for r in rows] == [
        ("created", None, None),
        ("Customer_Status__c", "Onboarding", "Active"),  # Type is not tracked: no row
        ("Customer_Status__c", "Active", "Churned"),
    ]
    assert all(r["AccountId"] == account and r["CreatedDate"] for r in rows)
    tracked = sf.query(
        "SELECT QualifiedApiName, IsFieldHistoryTracked FROM FieldDefinition WHERE "
        "EntityDefinition.QualifiedApiName = 'Account' AND QualifiedApiName IN ('Customer_Status__c', 'Type')"
    )["records"]
    assert {r["QualifiedApiName"]: r["IsFieldHistoryTracked"] for r in tracked} == {
        "Customer_Status__c": True,
        "Type": False,
    }
    sandbox.set_history_tracking("Account", "Customer_Status__c", False)
    try:
        sf.Account.update(account, {"Customer_Status__c": "Onboarding"})
        assert len(sf.query(soql)["records"]) == 3
    finally:
        sandbox.set_history_tracking("Account", "Customer_Status__c", True)
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.restful("sobjects/AccountHistory", method="POST", json={"AccountId": account})
    assert _content(err.value)[0]["errorCode"] == "INVALID_TYPE_FOR_OPERATION"


def test_history_tracking_is_detectable_through_field_definition(env: Any) -> None:
    """A client detects per-field tracking with ``SELECT QualifiedApiName, IsFieldHistoryTracked FROM
    FieldDefinition WHERE EntityDefinition.QualifiedApiName = 'Lead'`` through the REST query or the
    Tooling API query; an untracked field writes no LeadHistory row; at most 20 fields per object.

    Tooling API / Object Reference, "FieldDefinition" (IsFieldHistoryTracked, EntityDefinition;
    REST Query supported, SOAP/REST exposure since API 45.0); Salesforce Help, "Field History
    Tracking" ("You can select up to 20 standard and custom fields per object").
    """
    sandbox, sf = env
    soql = (
        "SELECT QualifiedApiName, IsFieldHistoryTracked FROM FieldDefinition "
        "WHERE EntityDefinition.QualifiedApiName = 'Lead' AND QualifiedApiName IN ('Status', 'Title')"
    )

    def tracked(rows: list[dict[str, Any]]) -> dict[str, bool]:
        return {r["QualifiedApiName"]: r["IsFieldHistoryTracked"] for r in rows}

    assert tracked(sf.query(soql)["records"]) == {"Status": True, "Title": False}
    sandbox.set_history_tracking("Lead", "Status", False)
    try:
        via_tooling = sf.toolingexecute("query/", params={"q": soql})
        assert tracked(via_tooling["records"]) == {"Status": False, "Title": False}
        lead = sf.Lead.create(_lead("untracked"))["id"]
        sf.Lead.update(lead, {"Status": "Working - Contacted", "Rating": "Hot"})
        history = sf.query(f"SELECT Field FROM LeadHistory WHERE LeadId = '{lead}' ORDER BY CreatedDate")
        assert [r["Field"] for r in history["records"]] == ["created", "Rating"]
    finally:
        sandbox.set_history_tracking("Lead", "Status", True)
    assert tracked(sf.query(soql)["records"])["Status"] is True
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.toolingexecute("query/", params={"q": "SELECT Id FROM Lead"})
    assert _content(err.value)[0]["errorCode"] == "INVALID_TYPE"
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful(
            f"sobjects/FieldDefinition/{sf.query(soql)['records'][0]['attributes']['url'].rsplit('/', 1)[1]}",
            method="PATCH",
            json={"IsFieldHistoryTracked": False},
        )


def test_at_most_twenty_fields_per_object_are_tracked() -> None:
    """Salesforce Help, "Field History Tracking": up to 20 standard and custom fields per object;
    read-only fields cannot be tracked."""
    schema = build_schema()
    extra = {f"Note{i}__c": FieldDef(f"Note{i}__c", "string", length=80) for i in range(25)}
    schema["Opportunity"].fields.update(extra)
    store = Store(SimClock(start=START), schema)
    already = set(store.history_tracking["Opportunity"])
    for name in list(extra)[: 20 - len(already)]:
        store.set_history_tracking("Opportunity", name, True)
    assert len(store.history_tracking["Opportunity"]) == 20
    with pytest.raises(ValueError, match="maximum of 20"):
        store.set_history_tracking("Opportunity", "Note24__c", True)
    store.set_history_tracking("Opportunity", "Amount", False)  # freeing one slot allows another
    store.set_history_tracking("Opportunity", "Note24__c", True)
    with pytest.raises(ValueError):
        store.set_history_tracking("Opportunity", "IsWon", True)


def test_collections_create_update_upsert_delete(env: Any) -> None:
    sandbox, sf = env
    records = [
        {"attributes": {"type": "Lead"}, **_lead(f"col{i}", Closedloop_Id__c=f"CL-COL-{i}")}
        for i in range(200)
    ]
    results = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": records})
    assert len(results) == 200 and all(r["success"] for r in results)
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.restful("composite/sobjects", method="POST", json={"records": records + records[:1]})
    assert _content(err.value)[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    updates = [{"attributes": {"type": "Lead"}, "id": r["id"], "Title": "Bulk"} for r in results[:3]]
    updates.append({"attributes": {"type": "Lead"}, "id": results[3]["id"], "Status": "Bogus"})
    out = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": updates})
    assert [r["success"] for r in out] == [True, True, True, False]
    assert out[3]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert out[3]["errors"][0]["fields"] == ["Status"]
    upserts = [
        {"attributes": {"type": "Lead"}, "Closedloop_Id__c": "CL-COL-0", "Title": "Up"},
        {"attributes": {"type": "Lead"}, "Closedloop_Id__c": "CL-COL-NEW", **_lead("colnew")},
    ]
    out = sf.restful(
        "composite/sobjects/Lead/Closedloop_Id__c",
        method="PATCH",
        json={"allOrNone": True, "records": upserts},
    )
    assert [(r["success"], r["created"]) for r in out] == [(True, False), (True, True)]
    ids = ",".join(r["id"] for r in results[:2])
    got = sf.restful("composite/sobjects/Lead", params={"ids": ids, "fields": "Title,Closedloop_Id__c"})
    assert [g["Title"] for g in got] == ["Up", "Bulk"]
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": ids})
    assert all(d["success"] for d in deleted)
    assert sandbox.get("Lead", results[0]["id"]) is None


def test_collections_all_or_none_rolls_back(env: Any) -> None:
    sandbox, sf = env
    before = sandbox.count("SELECT COUNT() FROM Lead")
    records = [
        {"attributes": {"type": "Lead"}, **_lead("aon1")},
        {"attributes": {"type": "Lead"}, "Company": "NoLastName"},
        {"attributes": {"type": "Lead"}, **_lead("aon3")},
    ]
    out = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": records})
    assert [r["success"] for r in out] == [False, False, False]
    assert out[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert out[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sandbox.count("SELECT COUNT() FROM Lead") == before


def test_composite_references_limits_and_all_or_none(env: Any) -> None:
    sandbox, sf = env
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Account",
                "referenceId": "acct",
                "body": {"Name": "Globex"},
            },
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Contact",
                "referenceId": "ct",
                "body": {"LastName": "Scorpio", "AccountId": "@{acct.id}"},
            },
            {
                "method": "GET",
                "url": "/services/data/v59.0/sobjects/Contact/@{ct.id}?fields=AccountId",
                "referenceId": "read",
            },
        ],
    }
    out = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert [o["httpStatusCode"] for o in out] == [201, 201, 200]
    assert out[2]["body"]["AccountId"] == out[0]["body"]["id"]
    accounts = sandbox.count("SELECT COUNT() FROM Account")
    failing = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Account",
                "referenceId": "a",
                "body": {"Name": "X"},
            },
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Account",
                "referenceId": "b",
                "body": {},
            },
        ],
    }
    out = sf.restful("composite", method="POST", json=failing)["compositeResponse"]
    assert out[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert out[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert sandbox.count("SELECT COUNT() FROM Account") == accounts
    too_many = {
        "compositeRequest": [
            {"method": "GET", "url": "/services/data/v59.0/limits", "referenceId": f"r{i}"} for i in range(26)
        ]
    }
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite", method="POST", json=too_many)


def _sub(ref: str, url: str, method: str = "GET", **extra: Any) -> dict[str, Any]:
    return {"method": method, "url": f"/services/data/v59.0/{url}", "referenceId": ref, **extra}


def test_composite_is_one_api_call_with_at_most_five_queries_or_collections(env: Any) -> None:
    """REST API Developer Guide, "Composite": "The entire series of requests counts as a single call
    toward your API limits"; up to 25 subrequests, "up to 5 of these subrequests can be sObject
    Collections or query operations, including Query and QueryAll requests"; "Composite Subrequest":
    Accept, Authorization and Content-Type are inherited and must not appear in ``httpHeaders``;
    "Composite Subrequest Result": referenceIds contain only letters, numbers and underscores; with
    allOrNone false, subrequests that depend on a failed one are not executed.
    """
    sandbox, sf = env
    lead = sf.Lead.create(_lead("cmpq", Closedloop_Id__c="CL-CMPQ"))["id"]
    polls = [_sub(f"q{i}", f"query?q=SELECT+Id+FROM+Lead+WHERE+Id+=+'{lead}'") for i in range(4)]
    polls.append(_sub("all", "queryAll?q=SELECT+Id+FROM+Lead+LIMIT+1"))
    polls += [_sub(f"row{i}", f"sobjects/Lead/{lead}?fields=Closedloop_Id__c") for i in range(20)]
    sf.limits()
    used_before = sf.api_usage["api-usage"].used
    calls_before = sandbox.counter.total("/services/data/v59.0/")
    out = sf.restful("composite", method="POST", json={"compositeRequest": polls})["compositeResponse"]
    assert len(out) == 25 and {o["httpStatusCode"] for o in out} == {200}
    assert out[0]["body"]["records"][0]["Id"] == lead
    assert out[24]["body"]["Closedloop_Id__c"] == "CL-CMPQ"
    assert sf.api_usage["api-usage"].used == used_before + 1  # Sforce-Limit-Info: one call
    assert sandbox.counter.total("/services/data/v59.0/") == calls_before + 1

    six = [*polls[:5], _sub("coll", f"composite/sobjects/Lead?ids={lead}&fields=Id")]
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.restful("composite", method="POST", json={"compositeRequest": six})
    assert _content(err.value)[0]["errorCode"] == "LIMIT_EXCEEDED"
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful(
            "composite",
            method="POST",
            json={"compositeRequest": [_sub("x", "limits", httpHeaders={"Content-Type": "text/xml"})]},
        )
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite", method="POST", json={"compositeRequest": [_sub("bad-ref", "limits")]})

    # allOrNone false: the failed create's dependant is not executed, the independent one runs.
    partial_body = {
        "allOrNone": False,
        "compositeRequest": [
            _sub("badAcct", "sobjects/Account", "POST", body={}),
            _sub("ct", "sobjects/Contact", "POST", body={"LastName": "Dep", "AccountId": "@{badAcct.id}"}),
            _sub("okAcct", "sobjects/Account", "POST", body={"Name": "Independent"}),
        ],
    }
    out = sf.restful("composite", method="POST", json=partial_body)["compositeResponse"]
    assert [o["httpStatusCode"] for o in out] == [400, 400, 201]
    assert out[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert sandbox.get("Account", out[2]["body"]["id"]) is not None


def test_customer_success_records_accounts_activities_and_users(env: Any) -> None:
    """Account customer status, Events/Tasks of a type linked by WhoId/WhatId, Opportunity Type and
    User names, all through the API and SOQL.

    Object Reference: "Account" (Type), "Opportunity" (Type: default values Existing Customer -
    Upgrade/Replacement/Downgrade, New Customer; admins add values), "Event" (WhoId, WhatId, Type,
    StartDateTime, EndDateTime/DurationInMinutes, ActivityDate, OwnerId), "Task" (Type,
    ActivityDate), "User" (Name = FirstName + LastName). Custom fields Customer_Status__c (restricted
    picklist) and Kickoff_Date__c are the sandbox org's own.
    """
    sandbox, sf = env
    cs_rep = sandbox.add_user("Hana", "Sato", title="Customer Success Manager", department="CS")
    users = {u["Id"]: u["Name"] for u in sf.query("SELECT Id, Name FROM User")["records"]}
    assert users[cs_rep] == "Hana Sato" and "Integration User" in users.values()

    account = sf.Account.create(
        {
            "Name": "Kaisha KK",
            "Type": "Customer - Direct",
            "Customer_Status__c": "Onboarding",
            "OwnerId": cs_rep,
        }
    )["id"]
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Account.update(account, {"Customer_Status__c": "Happy"})
    assert _content(err.value)[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Account.update(account, {"OwnerId": "005000000000099AAA"})  # no such user
    assert _content(err.value)[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"
    contact = sf.Contact.create({"LastName": "Tanaka", "AccountId": account})["id"]
    opp = sf.Opportunity.create(
        {
            "Name": "Kaisha - upsell",
            "AccountId": account,
            "StageName": "Closed Won",
            "CloseDate": "2026-11-20",
            "Type": "Existing Business - Upgrade",
        }
    )["id"]
    event = sf.Event.create(
        {
            "Subject": "Kickoff",
            "Type": "Kickoff",
            "WhoId": contact,
            "WhatId": opp,
            "OwnerId": cs_rep,
            "StartDateTime": "2026-11-24T01:00:00.000+0000",
            "DurationInMinutes": 90,
        }
    )["id"]
    got = sf.Event.get(event)
    assert got["EndDateTime"] == "2026-11-24T02:30:00.000+0000" and got["ActivityDate"] == "2026-11-24"
    assert got["DurationInMinutes"] == 90
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Event.create({"Subject": "No end", "StartDateTime": "2026-11-24T01:00:00Z"})
    assert _content(err.value)[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    sf.Task.create(
        {"Subject": "Send welcome pack", "Type": "Email", "WhatId": account, "ActivityDate": "2026-11-25"}
    )
    sf.Account.update(account, {"Customer_Status__c": "Active", "Kickoff_Date__c": "2026-11-24"})

    kickoffs = sf.query(
        "SELECT Type, ActivityDate, Who.Name, Owner.Name, What.Id FROM Event "
        f"WHERE Type = 'Kickoff' AND WhatId = '{opp}'"
    )["records"]
    assert len(kickoffs) == 1
    assert kickoffs[0]["Who"]["Name"] == "Tanaka" and kickoffs[0]["Owner"]["Name"] == "Hana Sato"
    assert kickoffs[0]["ActivityDate"] == "2026-11-24"
    tasks = sf.query(f"SELECT Type FROM Task WHERE WhatId = '{account}'")["records"]
    assert [t["Type"] for t in tasks] == ["Email"]
    customers = sf.query(
        "SELECT Name, Kickoff_Date__c, Owner.Name FROM Account WHERE Customer_Status__c = 'Active'"
    )["records"]
    assert [(a["Name"], a["Kickoff_Date__c"], a["Owner"]["Name"]) for a in customers] == [
        ("Kaisha KK", "2026-11-24", "Hana Sato")
    ]
    upsells = sf.query("SELECT Id FROM Opportunity WHERE Type = 'Existing Business - Upgrade'")["records"]
    assert [o["Id"] for o in upsells] == [opp]


def test_limits_header_and_request_limit_exceeded(tls: SandboxTLS) -> None:
    sandbox = SalesforceSandbox(clock=SimClock(start=START), daily_api_limit=3)
    server = _serve(sandbox, tls)
    try:
        sf = _client(sandbox, server, tls)
        limits = sf.limits()
        assert limits["DailyApiRequests"] == {"Max": 3, "Remaining": 2}
        sf.query("SELECT Id FROM Lead")
        assert sf.api_usage["api-usage"].used == 2 and sf.api_usage["api-usage"].total == 3
        sf.query("SELECT Id FROM Lead")
        with pytest.raises(SalesforceRefusedRequest) as err:
            sf.query("SELECT Id FROM Lead")
        assert _content(err.value)[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        sf.session.close()
    finally:
        server.stop()


def test_injected_faults_reach_the_client(env: Any) -> None:
    sandbox, sf = env
    sandbox.faults.rules = [FaultRule(path_regex="/query", rate_5xx=1.0)]
    try:
        with pytest.raises(SalesforceGeneralError) as err:
            sf.query("SELECT Id FROM Lead")
        assert err.value.status in (500, 502, 503)
        assert _content(err.value)[0]["errorCode"] in ("UNKNOWN_EXCEPTION", "SERVER_UNAVAILABLE")
    finally:
        sandbox.faults.rules = []
    assert sandbox.counter.total("/services/data/v59.0/query") >= 1


def test_unable_to_lock_row_on_collection_updates(env: Any) -> None:
    sandbox, sf = env
    lead = sf.Lead.create(_lead("lock"))["id"]
    sandbox.lock_row_rate = 1.0
    try:
        out = sf.restful(
            "composite/sobjects",
            method="PATCH",
            json={"records": [{"attributes": {"type": "Lead"}, "id": lead, "Title": "x"}]},
        )
    finally:
        sandbox.lock_row_rate = 0.0
    assert out[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []
    headers_seen: list[dict[str, str]] = []
    refuse_first = 2

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(body)
        type(self).headers_seen.append(dict(self.headers))
        if len(type(self).bodies) <= type(self).refuse_first:
            self.send_response(500)
            self.end_headers()
            return
        ack = (
            b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            b'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
            b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
            b"</notificationsResponse></soapenv:Body></soapenv:Envelope>"
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(ack)))
        self.end_headers()
        self.wfile.write(ack)

    def log_message(self, *args: Any) -> None:
        pass


def test_outbound_message_delivered_retried_until_ack(env: Any) -> None:
    sandbox, sf = env
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        sandbox.configure_outbound(
            f"http://127.0.0.1:{receiver.server_address[1]}/om",
            objects=["Lead"],
            fields={"Lead": ["Email", "Status", "Closedloop_Id__c", "Phone"]},
            retry_base_seconds=0.05,
        )
        sandbox.start_outbound_delivery()
        lead_id = sf.Lead.create(_lead("om", Closedloop_Id__c="CL-OM"))["id"]
        deadline = time.monotonic() + 10
        while sandbox.outbound.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sandbox.outbound.pending() == 0
        assert len(_Receiver.bodies) == 3  # two refusals, then the ACKed attempt
        assert _Receiver.headers_seen[-1]["Content-Type"].startswith("text/xml")
        assert _Receiver.headers_seen[-1]["SOAPAction"] == '""'
        root = ET.fromstring(_Receiver.bodies[-1])
        notifications = root.find(f".//{OM}notifications")
        assert notifications is not None
        assert notifications.findtext(f"{OM}OrganizationId") == sandbox.org_id
        assert notifications.find(f"{OM}SessionId").get(f"{XSI}nil") == "true"  # type: ignore[union-attr]
        assert notifications.findtext(f"{OM}EnterpriseUrl", "").startswith(sandbox.instance_url)
        items = notifications.findall(f"{OM}Notification")
        assert len(items) == 1
        sobject = items[0].find(f"{OM}sObject")
        assert sobject is not None and sobject.get(f"{XSI}type") == "sf:Lead"
        assert sobject.findtext(f"{SF}Id") == lead_id
        assert sobject.findtext(f"{SF}Closedloop_Id__c") == "CL-OM"
        assert sobject.find(f"{SF}Phone").get(f"{XSI}nil") == "true"  # type: ignore[union-attr]
    finally:
        sandbox.stop_outbound_delivery()
        sandbox.configure_outbound(None)
        receiver.shutdown()


def test_tls_files_exist(tls: SandboxTLS) -> None:
    assert all(
        Path(p).read_text().startswith("-----BEGIN") for p in (tls.ca_file, tls.cert_file, tls.key_file)
    )
