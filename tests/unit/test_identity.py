"""Identity resolution on SQLite and PostgreSQL: existing ID → record IDs → match keys → new."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from sync.identity import Candidate, IdentityMap, RecordRef, normalise_email
from sync.store.db import Store
from sync.store.models import Person, RecordLink, Transition
from sync.timeutil import utcnow


def test_normalise_email_handles_case_spaces_and_full_width() -> None:
    assert normalise_email("  Taro.Yamada@Example.CO.JP ") == "taro.yamada@example.co.jp"
    assert normalise_email("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ") == "taro@example.jp"
    assert normalise_email("not-an-email") is None
    assert normalise_email("") is None


@given(st.emails())
def test_normalise_email_is_idempotent(email: str) -> None:
    once = normalise_email(email)
    assert once is None or normalise_email(once) == once


def _hs(record_id: str, email: str | None = None, common_id: str | None = None) -> Candidate:
    key = normalise_email(email)
    return Candidate(
        records=[RecordRef("ma", "contact", record_id)],
        common_id=common_id,
        keys={"email": key} if key else {},
        email=key,
    )


def test_same_email_in_both_systems_is_one_person(store: Store) -> None:
    with store.session() as s:
        [a] = IdentityMap(s).resolve_batch([_hs("101", "O'Brien@Example.com")])
    with store.session() as s:
        [b] = IdentityMap(s).resolve_batch(
            [
                Candidate(
                    records=[RecordRef("sfa", "Lead", "00Q000000000001AAA")],
                    keys={"email": "o'brien@example.com"},
                )
            ]
        )
    assert a == b
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Person)) == 1


def test_resolution_order(store: Store) -> None:
    with store.session() as s:
        ids = IdentityMap(s).resolve_batch([_hs("1", "a@x.com"), _hs("2", "b@x.com")])
    assert len(set(ids)) == 2
    with store.session() as s:
        # a known record ID wins over a match key pointing elsewhere
        [again] = IdentityMap(s).resolve_batch([_hs("1", "b@x.com")])
        # an existing common ID carried by the record wins over everything
        [carried] = IdentityMap(s).resolve_batch([_hs("3", "a@x.com", common_id=ids[1])])
    assert again == ids[0]
    assert carried == ids[1]


def test_batch_with_duplicates_mints_once(store: Store) -> None:
    with store.session() as s:
        ids = IdentityMap(s).resolve_batch([_hs("7", "dup@x.com"), _hs("8", " DUP@x.com ")])
    assert ids[0] == ids[1]
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(RecordLink)) == 2


def test_merge_keeps_both_histories(store: Store) -> None:
    now = utcnow()
    with store.session() as s:
        a, b = IdentityMap(s).resolve_batch([_hs("11", "m1@x.com"), _hs("12", "m2@x.com")])
        for cid, stage in ((a, "mql"), (b, "sal")):
            s.add(Transition(common_id=cid, to_stage=stage, occurred_at=now, recorded_at=now))
    with store.session() as s:
        IdentityMap(s).merge(a, b)
    with store.session() as s:
        stages = sorted(s.scalars(select(Transition.to_stage).where(Transition.common_id == a)))
        assert stages == ["mql", "sal"]
        assert s.get(Person, b).merged_into == a  # type: ignore[union-attr]
        [resolved] = IdentityMap(s).resolve_batch([_hs("12")])
        assert resolved == a
