"""The connector conformance suite: one set of tests every connector, with its emulator, must pass.

Parametrised over the harnesses of :mod:`tests.contract.conformance_harness` (HubSpot as MA,
Salesforce as SFA, and the in-memory fakes the unit tests use); a new connector adds a harness.
The vendor facts the emulators hold the connectors to:

- HubSpot CRM search returns at most 200 results per page and pages with ``paging.next.after``;
  batch endpoints take at most 100 inputs; a validation error in one input fails the whole batch
  request with 400, while unknown IDs in a batch update come back as a 207 multi-status
  (https://developers.hubspot.com/docs/api/crm/search, https://developers.hubspot.com/docs/api/crm/contacts).
- HubSpot search's ``after`` token is an offset into a result set evaluated again on every request
  (the emulator models it so), whereas a Salesforce query locator pages a result set fixed when the
  query ran (REST API Developer Guide, "Execute a SOQL Query", ``nextRecordsUrl``).
- HubSpot answers a burst with 429 and ``policyName`` TEN_SECONDLY_ROLLING
  (https://developers.hubspot.com/docs/api/usage-details).
- HubSpot webhooks: ``contact.propertyChange``, ``contact.deletion`` and ``contact.merge`` events,
  signed with ``X-HubSpot-Signature-v3`` (https://developers.hubspot.com/docs/api/webhooks,
  https://developers.hubspot.com/docs/api/webhooks/validating-requests).
- Salesforce query results come in batches of 2,000 by default, 200 at least, set with the
  ``Sforce-Query-Options: batchSize`` header, followed through ``nextRecordsUrl`` (REST API Developer
  Guide, "Query Options Header", "Execute a SOQL Query").
- Salesforce sObject Collections with ``allOrNone: false`` return one result per record: a refused
  value (e.g. INVALID_EMAIL_ADDRESS) or a deleted record (ENTITY_IS_DELETED) fails that record only
  (REST API Developer Guide, "sObject Collections").
- Salesforce answers 503 SERVER_UNAVAILABLE while an instance is unavailable; Outbound Messaging
  sends a SOAP ``notifications`` message per change and retries until acknowledged, and carries no
  deletions (Salesforce Help, "Outbound Messaging", "Considerations for Outbound Messages").
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta

import pytest
from ulid import ULID

from sync.connectors.contract import Connector, MarketingConnector, SalesConnector
from sync.connectors.incremental import CursorState
from sync.identity import RecordRef
from tests.contract.conformance_harness import (
    HARNESSES,
    Harness,
    WebApp,
    poll_refs,
    start_web_app,
)

OVERLAP = timedelta(seconds=120)  # the default CLOSEDLOOP_POLL_OVERLAP
SF_ORG_ID = "00D000000000001AAA"  # the Salesforce sandbox's default org
_numbers = itertools.count(1)


def n() -> int:
    """A number no other person of this run uses."""
    return next(_numbers)


def common_id() -> str:
    return str(ULID())


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebApp]:
    app = start_web_app(tmp_path_factory.mktemp("web"), SF_ORG_ID)
    yield app
    app.server.stop()
    app.store.dispose()


@pytest.fixture(scope="module", params=list(HARNESSES))
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, web: WebApp
) -> Iterator[Harness]:
    harness = HARNESSES[request.param]()
    harness.start(tmp_path_factory.mktemp(request.param), web)
    yield harness
    harness.stop()


@pytest.fixture
def harness(running: Harness) -> Harness:
    running.reset()
    return running


def saved_through_json(cursors: Mapping[str, CursorState]) -> dict[str, CursorState]:
    """Cursor state as the store keeps it (a timestamp column and a JSON column), read back."""
    text = json.dumps(
        {
            stream: {"watermark": c.watermark.isoformat() if c.watermark else None, "state": c.state}
            for stream, c in cursors.items()
        }
    )
    return {
        stream: CursorState(datetime.fromisoformat(v["watermark"]) if v["watermark"] else None, v["state"])
        for stream, v in json.loads(text).items()
    }


# ------------------------------------------------------------------------------------------ protocol


def test_connector_implements_its_role_protocol(harness: Harness) -> None:
    connector = harness.connector
    assert isinstance(connector, Connector)
    role_protocol = MarketingConnector if harness.role == "ma" else SalesConnector
    assert isinstance(connector, role_protocol)
    assert connector.profile.role == harness.role
    assert connector.streams, "a connector polls at least one stream"
    assert set(connector.profile.person_objects) <= set(connector.profile.evidence_order)


# --------------------------------------------------------------------------------------- change feed


def test_first_poll_pages_through_every_person_record(harness: Harness) -> None:
    wanted = harness.page_size + 5 - len(harness.person_refs())
    created = [harness.new_person(n()) for _ in range(max(wanted, 1))]

    seen, cursors = poll_refs(harness, {}, OVERLAP)

    everyone = harness.person_refs()
    assert len(everyone) > harness.page_size  # more than one page of one stream
    assert set(created) <= set(seen)
    assert everyone <= set(seen), f"missed {len(everyone - set(seen))} person records"
    assert len(seen) == len(set(seen)), "a record was reported twice in one poll"
    assert set(cursors) == set(harness.connector.streams)
    assert all(c.watermark is not None for c in cursors.values() if c.state.get("seen"))


def test_second_poll_from_saved_cursors_yields_nothing(harness: Harness) -> None:
    harness.new_person(n())
    _seen, cursors = poll_refs(harness, {}, OVERLAP)

    again, _ = poll_refs(harness, saved_through_json(cursors), OVERLAP)

    assert again == []


def test_settled_idle_poll_costs_as_few_calls_as_the_api_allows(harness: Harness) -> None:
    """One call per stream, or fewer where the API reads several streams in one call (Composite)."""
    harness.new_person(n())
    _seen, cursors = poll_refs(harness, {}, timedelta(0))
    harness.reset()

    again, _ = poll_refs(harness, saved_through_json(cursors), timedelta(0))

    assert again == []
    calls = sum(c for status, c in harness.feed_statuses().items() if status < 300)
    assert calls == harness.expected_idle_calls() <= len(harness.connector.streams)


def test_a_modified_record_shows_up_exactly_once(harness: Harness) -> None:
    ref, other = harness.new_person(n()), harness.new_person(n())
    _seen, cursors = poll_refs(harness, {}, OVERLAP)

    harness.modify(ref, "Changed")
    changed, cursors = poll_refs(harness, saved_through_json(cursors), OVERLAP)
    after, _ = poll_refs(harness, saved_through_json(cursors), OVERLAP)

    assert changed == [ref]
    assert other not in changed
    assert after == []


def test_a_poll_resumed_from_saved_cursor_state_misses_nothing(harness: Harness) -> None:
    first, second = harness.new_person(n()), harness.new_person(n())
    _seen, cursors = poll_refs(harness, {}, OVERLAP)
    saved = saved_through_json(cursors)

    # Between the save and the next poll, a record is changed and another created; the process
    # restarts, so the next poll is made by a new connector from the saved state only.
    harness.modify(first, "Later")
    third = harness.new_person(n())
    harness.reset()
    resumed, cursors = poll_refs(harness, saved, OVERLAP)
    fourth = harness.new_person(n())
    last, _ = poll_refs(harness, saved_through_json(cursors), OVERLAP)

    assert sorted(resumed, key=str) == sorted([first, third], key=str)
    assert second not in resumed
    assert last == [fourth]


def test_a_record_changed_between_two_pages_costs_no_other_record(harness: Harness) -> None:
    """A change made while a poll pages through the feed must not push an unread record out of reach.

    HubSpot's search ``after`` is an offset into a result set re-evaluated per request (sorted by
    lastmodifieddate), so a record of page 1 modified before page 2 moves to the end and shifts every
    later record one place forward: the record at the page boundary is read by neither page. Once the
    watermark has moved past it by more than the overlap, no later poll reads it either.
    """
    for _ in range(max(harness.page_size + 5 - len(harness.person_refs()), 2)):
        harness.new_person(n())
    harness.age(timedelta(hours=1))  # everything so far is older than the overlap behind new changes
    moved: list[RecordRef] = []

    def move(ref: RecordRef) -> None:
        harness.modify(ref, "Moved")
        moved.append(ref)

    harness.after_first_feed_page(move)

    first, cursors = poll_refs(harness, {}, OVERLAP)
    second, _ = poll_refs(harness, saved_through_json(cursors), OVERLAP)

    assert len(moved) == 1 and moved[0] in first
    missed = harness.person_refs() - set(first) - set(second)
    assert not missed, f"never reported: {sorted(r.record_id for r in missed)}"


# -------------------------------------------------------------------------------------------- people


def test_read_people_returns_fresh_fields_of_linked_records(harness: Harness) -> None:
    ref = harness.new_person(n())
    harness.modify(ref, "Fresh")
    cid = common_id()

    states = harness.connector.read_people([cid], {cid: [ref]})

    field, value = harness.watched(ref)
    assert value == "Fresh"
    assert states[cid].records[ref.object_type][field] == "Fresh"
    assert states[cid].updated_at is not None


def test_read_people_finds_records_carrying_the_common_id(harness: Harness) -> None:
    cid = common_id()
    ref = harness.new_person(n(), common_id=cid)
    harness.modify(ref, "Carried")

    states = harness.connector.read_people([cid], {})

    assert cid in states, "a record carrying the common ID was not found without a link"
    field, _ = harness.watched(ref)
    assert states[cid].records[ref.object_type][field] == "Carried"


def test_read_people_keeps_people_apart_and_skips_unknown_ones(harness: Harness) -> None:
    a, b = harness.new_person(n()), harness.new_person(n())
    harness.modify(a, "Alpha")
    harness.modify(b, "Beta")
    cid_a, cid_b, nobody = common_id(), common_id(), common_id()

    states = harness.connector.read_people([cid_a, cid_b, nobody], {cid_a: [a], cid_b: [b]})

    field, _ = harness.watched(a)
    assert states[cid_a].records[a.object_type][field] == "Alpha"
    assert states[cid_b].records[b.object_type][field] == "Beta"
    assert nobody not in states or not states[nobody].records


def test_read_people_of_a_deleted_record_returns_no_record(harness: Harness) -> None:
    ref = harness.new_person(n())
    harness.delete(ref)
    cid = common_id()

    states = harness.connector.read_people([cid], {cid: [ref]})

    assert cid not in states or not states[cid].records


def test_candidates_tell_the_common_id_and_email_of_records(harness: Harness) -> None:
    cid = common_id()
    carrying, plain = harness.new_person(n(), common_id=cid), harness.new_person(n())

    found = harness.connector.candidates([carrying, plain])

    by_ref = {r: c for c in found for r in c.records}
    assert set(by_ref) == {carrying, plain}
    assert by_ref[carrying].common_id == cid
    assert by_ref[plain].common_id is None
    assert by_ref[plain].keys.get("email", "").endswith("@example.com")


# ------------------------------------------------------------------------------------------- writes


def test_create_by_common_id_twice_yields_one_record(harness: Harness) -> None:
    rows = {common_id(): harness.write_row(n()), common_id(): harness.write_row(n())}

    ids_first, errors_first = harness.create(rows)
    ids_again, errors_again = harness.create(rows)

    assert errors_first == [] and errors_again == []
    assert set(ids_first) == set(rows)
    assert ids_again == ids_first
    for cid in rows:
        assert len(harness.by_key(cid)) == 1


def test_create_keys_rows_by_the_common_id_alone(harness: Harness) -> None:
    """The contract keys rows by common ID; a row need not repeat it in the key field."""
    rows = {common_id(): harness.write_row(n()), common_id(): harness.write_row(n())}

    ids, errors = harness.create(rows, repeat_key=False)

    assert errors == []
    assert set(ids) == set(rows)
    for cid in rows:
        assert len(harness.by_key(cid)) == 1


def test_a_refused_value_fails_only_its_record_on_create(harness: Harness) -> None:
    good_a, bad, good_b = common_id(), common_id(), common_id()
    rows = {good_a: harness.write_row(n()), bad: harness.refused_row(n()), good_b: harness.write_row(n())}

    ids, errors = harness.create(rows)

    assert [e.key for e in errors] == [bad]
    assert errors[0].code and errors[0].message and not errors[0].transient
    assert set(ids) == {good_a, good_b}
    assert harness.by_key(bad) == []
    assert len(harness.by_key(good_a)) == 1 and len(harness.by_key(good_b)) == 1


def test_a_refused_value_fails_only_its_record_on_update(harness: Harness) -> None:
    a, refused, c = harness.new_person(n()), harness.new_person(n()), harness.new_person(n())
    bad = {**harness.change("Updated"), **harness.refused_row(n())}

    errors = harness.update({a: harness.change("Updated"), refused: bad, c: harness.change("Updated")})

    assert [e.key for e in errors] == [refused.record_id]
    assert harness.watched(a)[1] == "Updated" and harness.watched(c)[1] == "Updated"
    assert harness.watched(refused)[1] != "Updated"


def test_a_deleted_record_fails_only_itself_on_update(harness: Harness) -> None:
    a, gone, c = harness.new_person(n()), harness.new_person(n()), harness.new_person(n())
    harness.delete(gone)

    errors = harness.update({ref: harness.change("Updated") for ref in (a, gone, c)})

    assert [e.key for e in errors] == [gone.record_id]
    assert harness.watched(a)[1] == "Updated"
    assert harness.watched(c)[1] == "Updated"


# -------------------------------------------------------------------------------------- rate limits


@pytest.mark.parametrize("kind", ["rate_limit", "outage"])
def test_one_transient_failure_is_retried_by_the_retry_policy(harness: Harness, kind: str) -> None:
    ref = harness.new_person(n())
    harness.fail_feed_once(kind)

    seen, _ = poll_refs(harness, {}, OVERLAP)

    assert ref in seen
    statuses = harness.feed_statuses()
    failed = sum(c for status, c in statuses.items() if status >= 400)
    assert failed == 1, statuses
    assert sum(c for status, c in statuses.items() if status < 300) >= 1


# ---------------------------------------------------------------------------------------- receivers


def test_a_change_notification_means_a_changed_record(harness: Harness) -> None:
    ref = harness.new_person(n())

    items = harness.webhook_items(lambda: harness.modify(ref, "Hooked"))
    meaning = harness.connector.interpret(items)

    assert items, "the emulator delivered nothing the web app stored"
    assert ref in meaning.changed
    assert meaning.deletions == [] and meaning.merges == []


def test_a_deletion_notification_means_a_deleted_record(harness: Harness) -> None:
    if "deletion" not in harness.webhook_kinds:
        pytest.skip(f"{harness.name} sends no deletion notifications")
    ref = harness.new_person(n())

    meaning = harness.connector.interpret(harness.webhook_items(lambda: harness.delete(ref)))

    assert meaning.deletions == [ref]
    assert ref not in meaning.changed


def test_a_merge_notification_names_survivor_and_merged_record(harness: Harness) -> None:
    if "merge" not in harness.webhook_kinds:
        pytest.skip(f"{harness.name} sends no merge notifications")
    survivor, merged = harness.new_person(n()), harness.new_person(n())

    meaning = harness.connector.interpret(harness.webhook_items(lambda: harness.merge(survivor, merged)))

    assert [(p, merged in losers) for p, losers in meaning.merges] == [(survivor, True)]
    assert survivor in meaning.changed
    assert merged not in meaning.changed
    assert all(isinstance(r, RecordRef) for r in meaning.changed)


def test_a_merge_lists_only_records_merged_away(harness: Harness) -> None:
    """EventMeaning.merges holds (survivor, records merged away): the survivor is not among them."""
    if "merge" not in harness.webhook_kinds:
        pytest.skip(f"{harness.name} sends no merge notifications")
    survivor, merged = harness.new_person(n()), harness.new_person(n())

    meaning = harness.connector.interpret(harness.webhook_items(lambda: harness.merge(survivor, merged)))

    assert meaning.merges == [(survivor, [merged])]
