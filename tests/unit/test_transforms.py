"""Transforms, durations and value coercion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sync.mapping.coerce import to_bool, to_number, to_text
from sync.mapping.duration import Duration, parse_duration
from sync.mapping.transforms import (
    TransformError,
    chain,
    compile_transform,
    normalise_key,
    parse_datetime,
)


def run(specs: list[object], value: object) -> object:
    fn = chain([compile_transform(s) for s in specs])
    return value if fn is None else fn(value)


@pytest.mark.parametrize(
    ("specs", "value", "expected"),
    [
        (["trim"], "  a b  ", "a b"),
        (["lower"], "ÄbC", "äbc"),
        (["upper"], "abc", "ABC"),
        (["nfkc"], "ＡＢＣ１２３", "ABC123"),
        (["nfkc", "trim", "lower"], "　Ｔａｒｏ@Example.COM ", "taro@example.com"),
        ([{"truncate": 3}], "abcdef", "abc"),
        ([{"truncate": 10}], "abc", "abc"),
        (["trim", {"truncate": 2}], "  xyz", "xy"),
        ([{"date": "%Y-%m-%d"}], "1714521600000", "2024-05-01"),
        ([{"date": "%Y-%m-%d"}], 1714521600000, "2024-05-01"),
        ([{"date": "%Y-%m-%d %H:%M"}], "2024-05-01T10:30:00.000+0000", "2024-05-01 10:30"),
        ([{"date": "%d/%m/%Y"}], "2024-05-01", "01/05/2024"),
        ([{"date": "%Y"}], "not a date", "not a date"),
        ([{"number": {"decimals": 2}}], "1234.5678", 1234.57),
        ([{"number": {"decimals": 0}}], "41.6", 42),
        ([{"number": None}], "12", 12),
        ([{"number": {}}], "12.5", 12.5),
        ([{"number": {"decimals": 1}}], "n/a", "n/a"),
        (["trim", "lower"], None, None),
        (["upper"], 12, 12),
        ([], " keep ", " keep "),
    ],
)
def test_transforms(specs: list[object], value: object, expected: object) -> None:
    assert run(specs, value) == expected


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("lowr", "did you mean 'lower'"),
        ("truncate", "needs a parameter"),
        ({"truncate": 0}, "positive whole number"),
        ({"truncate": "5"}, "positive whole number"),
        ({"trim": True}, "takes no parameter"),
        ({"date": ""}, "strftime format"),
        ({"number": {"decimal": 2}}, "{decimals: N}"),
        ({"number": {"decimals": -1}}, ">= 0"),
        ({"truncate": 3, "trim": None}, "one-key mapping"),
        ({"frobnicate": 1}, "unknown transform 'frobnicate'"),
        (42, "one-key mapping"),
    ],
)
def test_bad_transform_specs(spec: object, fragment: str) -> None:
    with pytest.raises(TransformError) as info:
        compile_transform(spec)
    assert fragment in str(info.value)


def test_normalise_key() -> None:
    assert normalise_key("  Ｔａｒｏ@EXAMPLE.com\t") == "taro@example.com"
    assert normalise_key("   ") is None
    assert normalise_key(None) is None


def test_parse_datetime_variants() -> None:
    moment = datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    ms = str(int(moment.timestamp() * 1000))
    assert parse_datetime(ms) == moment
    assert parse_datetime("2024-05-01T10:30:00Z") == moment
    assert parse_datetime("2024-05-01T19:30:00+09:00") == moment
    assert parse_datetime("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_datetime(moment.replace(tzinfo=None)) == moment
    assert parse_datetime("") is None and parse_datetime("soon") is None and parse_datetime(None) is None


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [
        ("24h", 24, "hours"),
        ("90m", 90, "minutes"),
        ("90 minutes", 90, "minutes"),
        ("2d", 2, "days"),
        ("1 day", 1, "days"),
        ("3bd", 3, "business_days"),
        ("3 business days", 3, "business_days"),
        ("5 Business Days", 5, "business_days"),
        ("2 hours", 2, "hours"),
    ],
)
def test_parse_duration(text: str, amount: int, unit: str) -> None:
    d = parse_duration(text)
    assert (d.amount, d.unit) == (amount, unit)


@pytest.mark.parametrize("text", ["3 weeks", "h", "", "0h", "-2h", "24", True, None, "1.5h"])
def test_bad_duration(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_duration_timedelta() -> None:
    assert parse_duration("90m").as_timedelta() == timedelta(minutes=90)
    assert str(Duration(3, "business_days")) == "3bd"
    with pytest.raises(ValueError):
        Duration(3, "business_days").as_timedelta()


def test_coercion() -> None:
    assert to_number("55") == 55 and to_number(" 7.5 ") == 7.5 and to_number("x") is None
    assert to_number(True) is None and to_number(None) is None
    assert to_bool("true") is True and to_bool("FALSE") is False and to_bool(1) is True
    assert to_bool("maybe") is None and to_bool(2) is None
    assert to_text(True) == "true" and to_text(55.0) == "55" and to_text(5.5) == "5.5"
    assert to_text(None) is None
