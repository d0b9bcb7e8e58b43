"""SOQL parser and evaluator of the Salesforce sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandboxes.common import SimClock
from sandboxes.salesforce import SalesforceSandbox
from sandboxes.salesforce.soql import Literal, SoqlError, StringValue, parse, tokenize

START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture
def sandbox() -> SalesforceSandbox:
    return SalesforceSandbox(clock=SimClock(start=START, speed=0))


def names(rows: list[dict[str, object]]) -> list[str]:
    return [str(r["LastName"]) for r in rows]


def add(sb: SalesforceSandbox, last: str, **fields: object) -> str:
    return sb.insert("Lead", {"LastName": last, "Company": "Acme", **fields})


def test_string_escapes_decode() -> None:
    literal = tokenize(r"'O\'Brien \\ \n \t'")[0].value
    assert isinstance(literal, StringValue)
    assert literal.text == "O'Brien \\ \n \t"


def test_apostrophe_name_matches_only_that_record(sandbox: SalesforceSandbox) -> None:
    add(sandbox, "O'Brien")
    add(sandbox, "OBrien")
    rows = sandbox.query(r"SELECT LastName FROM Lead WHERE LastName = 'O\'Brien'")
    assert names(rows) == ["O'Brien"]


def test_unescaped_apostrophe_is_malformed(sandbox: SalesforceSandbox) -> None:
    soql = "SELECT Id FROM Lead WHERE LastName = 'O'Brien'"
    with pytest.raises(SoqlError) as err:
        sandbox.query(soql)
    assert err.value.code == "MALFORMED_QUERY"
    assert "unexpected token: 'Brien'" in err.value.message
    assert f"ERROR at Row:1:Column:{soql.index('Brien') + 1}" in err.value.message


def test_mixing_and_or_without_parentheses_is_rejected() -> None:
    with pytest.raises(SoqlError) as err:
        parse("SELECT Id FROM Lead WHERE Email = null AND Phone = null OR Title = null")
    assert err.value.code == "MALFORMED_QUERY"


def test_parentheses_decide_grouping(sandbox: SalesforceSandbox) -> None:
    add(sandbox, "a", Email="a@x.io", Title="CEO")
    add(sandbox, "b", Email="b@x.io")
    add(sandbox, "c", Title="CEO")
    left = sandbox.query("SELECT LastName FROM Lead WHERE (Email != null AND Title = null) OR Title = 'CEO'")
    right = sandbox.query("SELECT LastName FROM Lead WHERE Email != null AND (Title = null OR Title = 'CEO')")
    assert sorted(names(left)) == ["a", "b", "c"]
    assert sorted(names(right)) == ["a", "b"]


def test_not_binds_to_the_next_expression_only(sandbox: SalesforceSandbox) -> None:
    add(sandbox, "a", Email="a@x.io", Title="CEO")
    add(sandbox, "b", Email="b@x.io")
    add(sandbox, "c", Title="CEO")
    rows = sandbox.query("SELECT LastName FROM Lead WHERE NOT Title = 'CEO' AND Email != null")
    assert names(rows) == ["b"]
    rows = sandbox.query("SELECT LastName FROM Lead WHERE NOT (Title = 'CEO' AND Email != null)")
    assert sorted(names(rows)) == ["b", "c"]


def test_in_not_in_and_like(sandbox: SalesforceSandbox) -> None:
    add(sandbox, "Smith", Email="s@x.io")
    add(sandbox, "smithers")
    add(sandbox, "Jones")
    assert sorted(names(sandbox.query("SELECT LastName FROM Lead WHERE LastName LIKE 'smith%'"))) == [
        "Smith",
        "smithers",
    ]
    assert names(sandbox.query("SELECT LastName FROM Lead WHERE LastName LIKE 'Smit_'")) == ["Smith"]
    assert names(sandbox.query("SELECT LastName FROM Lead WHERE LastName IN ('JONES', 'nobody')")) == [
        "Jones"
    ]
    assert sorted(names(sandbox.query("SELECT LastName FROM Lead WHERE LastName NOT IN ('Jones')"))) == [
        "Smith",
        "smithers",
    ]


def test_like_escaped_wildcard_is_literal(sandbox: SalesforceSandbox) -> None:
    add(sandbox, "100%")
    add(sandbox, "1000")
    assert names(sandbox.query(r"SELECT LastName FROM Lead WHERE LastName LIKE '100\%'")) == ["100%"]


def test_datetime_literals_with_offsets(sandbox: SalesforceSandbox) -> None:
    clock = sandbox.clock
    add(sandbox, "early")
    clock.advance(timedelta(hours=2))
    add(sandbox, "late")
    # 09:00 UTC written with a +01:00 offset is 10:00+01:00.
    rows = sandbox.query("SELECT LastName FROM Lead WHERE CreatedDate > 2026-11-23T10:00:00+01:00")
    assert names(rows) == ["late"]
    rows = sandbox.query("SELECT LastName FROM Lead WHERE CreatedDate < 2026-11-23T09:00:00.000Z")
    assert names(rows) == ["early"]
    assert len(sandbox.query("SELECT Id FROM Lead WHERE CreatedDate = TODAY")) == 2
    assert sandbox.query("SELECT Id FROM Lead WHERE CreatedDate < YESTERDAY") == []


def test_datetime_field_rejects_quoted_value(sandbox: SalesforceSandbox) -> None:
    with pytest.raises(SoqlError) as err:
        sandbox.query("SELECT Id FROM Lead WHERE CreatedDate > '2026-01-01'")
    assert err.value.code == "INVALID_FIELD"
    assert "must be of type dateTime" in err.value.message


def test_order_by_nulls_and_multiple_keys(sandbox: SalesforceSandbox) -> None:
    add(sandbox, "b", Title="x")
    add(sandbox, "a", Title="x")
    add(sandbox, "n")
    add(sandbox, "c", Title="y")
    assert names(sandbox.query("SELECT LastName FROM Lead ORDER BY Title, LastName")) == ["n", "a", "b", "c"]
    assert names(sandbox.query("SELECT LastName FROM Lead ORDER BY Title NULLS LAST, LastName DESC")) == [
        "b",
        "a",
        "c",
        "n",
    ]
    assert names(sandbox.query("SELECT LastName FROM Lead ORDER BY Title DESC, LastName")) == [
        "c",
        "a",
        "b",
        "n",
    ]
    assert names(sandbox.query("SELECT LastName FROM Lead ORDER BY Title DESC NULLS FIRST, LastName")) == [
        "n",
        "c",
        "a",
        "b",
    ]


def test_limit_offset_and_count(sandbox: SalesforceSandbox) -> None:
    for i in range(5):
        add(sandbox, f"n{i}")
    rows = sandbox.query("SELECT LastName FROM Lead ORDER BY LastName LIMIT 2 OFFSET 1")
    assert names(rows) == ["n1", "n2"]
    assert sandbox.count("SELECT COUNT() FROM Lead WHERE LastName != 'n0'") == 4


def test_unknown_field_and_object_errors(sandbox: SalesforceSandbox) -> None:
    with pytest.raises(SoqlError) as err:
        sandbox.query("SELECT Id, Nope__c FROM Lead")
    assert err.value.code == "INVALID_FIELD"
    assert "No such column 'Nope__c' on entity 'Lead'" in err.value.message
    with pytest.raises(SoqlError) as err:
        sandbox.query("SELECT Id FROM Leed")
    assert err.value.code == "INVALID_TYPE"


def test_relationship_fields_and_case_insensitive_names(sandbox: SalesforceSandbox) -> None:
    account = sandbox.insert("Account", {"Name": "Initech"})
    sandbox.insert("Contact", {"LastName": "Lumbergh", "AccountId": account})
    sandbox.insert("Contact", {"LastName": "Orphan"})
    rows = sandbox.query("select lastname, account.name from contact where account.name = 'initech'")
    assert rows[0]["LastName"] == "Lumbergh"
    assert rows[0]["Account"]["Name"] == "Initech"
    orphan = sandbox.query("SELECT Account.Name FROM Contact WHERE Account.Name = null")
    assert len(orphan) == 1 and orphan[0]["Account"] is None


def test_id_comparison_accepts_15_char_form(sandbox: SalesforceSandbox) -> None:
    lead = add(sandbox, "x")
    rows = sandbox.query(f"SELECT Id FROM Lead WHERE Id = '{lead[:15]}'")
    assert [r["Id"] for r in rows] == [lead]


def test_literal_kinds_parse() -> None:
    where = parse(
        "SELECT Id FROM Opportunity WHERE Amount >= 10.5 AND IsWon = true AND CloseDate = 2026-01-31"
    ).where
    assert where is not None
    kinds = [c.value.kind for c in where.items if isinstance(c.value, Literal)]  # type: ignore[union-attr]
    assert kinds == ["number", "boolean", "date"]
