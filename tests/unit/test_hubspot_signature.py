"""HubSpot signatures: documented example values, hubspot-api-client's vectors, and a cross-check."""

from __future__ import annotations

import time

import pytest
from hubspot.utils.signature import Signature
from hypothesis import given
from hypothesis import strategies as st

from sync.web.hubspot_signature import (
    V3_DECODED_ESCAPES,
    SignatureError,
    compute_signature,
    decode_v3_uri,
    verify_signature,
)

# HubSpot's "Validating requests" page (v1 example with a body, v2 example for a GET).
DOC_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
DOC_V1_BODY = (
    '[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    '"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
    '"changeFlag":"NEW","appId":54321}]'
)
DOC_V1_HASH = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
DOC_V2_GET_HASH = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
DOC_URI = "https://www.example.com/webhook_uri"

# hubspot-api-client's own test vectors (tests/spec/utils/test_signature.py).
SDK_BODY = "{'example_field':'example_value'}"
SDK_V1 = "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"
SDK_V2 = "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"
SDK_V3 = "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
SDK_V3_TIMESTAMP = "1693657560000"


def test_documented_v1_example() -> None:
    verify_signature(
        version="v1",
        secret=DOC_SECRET,
        method="POST",
        uri=DOC_URI,
        body=DOC_V1_BODY.encode(),
        signature=DOC_V1_HASH,
    )


def test_documented_v2_get_example() -> None:
    verify_signature(
        version="v2", secret=DOC_SECRET, method="GET", uri=DOC_URI, body=b"", signature=DOC_V2_GET_HASH
    )


@pytest.mark.parametrize(("version", "expected"), [("v1", SDK_V1), ("v2", SDK_V2)])
def test_sdk_vectors_v1_v2(version: str, expected: str) -> None:
    assert compute_signature(version, DOC_SECRET, "POST", DOC_URI, SDK_BODY.encode()) == expected  # type: ignore[arg-type]


def test_sdk_vector_v3_at_its_own_time() -> None:
    now = int(SDK_V3_TIMESTAMP) / 1000 + 10
    verify_signature(
        version="v3",
        secret=DOC_SECRET,
        method="POST",
        uri=DOC_URI,
        body=SDK_BODY.encode(),
        signature=SDK_V3,
        timestamp=SDK_V3_TIMESTAMP,
        now=now,
    )


def test_sdk_vector_v3_is_stale_today() -> None:
    with pytest.raises(SignatureError) as info:
        verify_signature(
            version="v3",
            secret=DOC_SECRET,
            method="POST",
            uri=DOC_URI,
            body=SDK_BODY.encode(),
            signature=SDK_V3,
            timestamp=SDK_V3_TIMESTAMP,
        )
    assert info.value.reason == "stale_timestamp"


_uri_chars = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~/=&", max_size=40)


@given(
    secret=st.text(min_size=1, max_size=40),
    body=st.text(max_size=200),
    path=_uri_chars,
    method=st.sampled_from(["POST", "GET", "PUT"]),
    version=st.sampled_from(["v1", "v2", "v3"]),
)
def test_cross_check_with_hubspot_client(
    secret: str, body: str, path: str, method: str, version: str
) -> None:
    uri = f"https://hooks.example.com/{path}"
    timestamp = str(int(time.time() * 1000))
    theirs = Signature.get_signature(secret, body, version, uri, method, timestamp)
    ours = compute_signature(version, secret, method, uri, body.encode(), timestamp)  # type: ignore[arg-type]
    assert ours == theirs
    assert Signature.is_valid(ours, secret, body, uri, method, version, timestamp)


def test_v3_signs_the_decoded_uri() -> None:
    encoded = "https://hooks.example.com/webhooks/hubspot?next=https%3A%2F%2Fx.test%2Fa%40b&q=%28x%29%2A"
    decoded = "https://hooks.example.com/webhooks/hubspot?next=https://x.test/a@b&q=(x)*"
    timestamp = str(int(time.time() * 1000))
    theirs = Signature.get_signature(DOC_SECRET, SDK_BODY, "v3", decoded, "POST", timestamp)
    verify_signature(
        version="v3",
        secret=DOC_SECRET,
        method="POST",
        uri=encoded,
        body=SDK_BODY.encode(),
        signature=theirs,
        timestamp=timestamp,
    )


@pytest.mark.parametrize(("escape", "char"), sorted(V3_DECODED_ESCAPES.items()))
def test_each_listed_escape_is_decoded_in_either_case(escape: str, char: str) -> None:
    assert decode_v3_uri(f"/a{escape}b") == f"/a{char}b"
    assert decode_v3_uri(f"/a{escape.lower()}b") == f"/a{char}b"


@pytest.mark.parametrize("escape", ["%20", "%26", "%3D", "%23", "%2B", "%25"])
def test_unlisted_escapes_stay_encoded(escape: str) -> None:
    assert decode_v3_uri(f"/a{escape}b") == f"/a{escape}b"


def test_decoding_is_a_single_pass() -> None:
    assert decode_v3_uri("/a%253Ab") == "/a%253Ab"
    assert decode_v3_uri("/a%25%33%41") == "/a%25%33%41"


def test_v2_does_not_decode_the_uri() -> None:
    encoded = "https://hooks.example.com/x?u=a%3Ab"
    theirs = Signature.get_signature(DOC_SECRET, SDK_BODY, "v2", encoded, "POST")
    verify_signature(
        version="v2", secret=DOC_SECRET, method="POST", uri=encoded, body=SDK_BODY.encode(), signature=theirs
    )


def _v3(timestamp: str, body: bytes = b"[]", uri: str = DOC_URI) -> str:
    return compute_signature("v3", DOC_SECRET, "POST", uri, body, timestamp)


def _verify_v3(
    signature: str | None, timestamp: str | None, body: bytes = b"[]", now: float | None = None
) -> None:
    verify_signature(
        version="v3",
        secret=DOC_SECRET,
        method="POST",
        uri=DOC_URI,
        body=body,
        signature=signature,
        timestamp=timestamp,
        now=now,
    )


@pytest.mark.parametrize(
    ("offset_s", "reason"),
    [
        (-301, "stale_timestamp"),
        (-3600, "stale_timestamp"),
        (61, "future_timestamp"),
        (86_400, "future_timestamp"),
    ],
)
def test_timestamp_window(offset_s: int, reason: str) -> None:
    now = 1_700_000_000.0
    timestamp = str(int((now + offset_s) * 1000))
    with pytest.raises(SignatureError) as info:
        _verify_v3(_v3(timestamp), timestamp, now=now)
    assert info.value.reason == reason


@pytest.mark.parametrize("offset_s", [-299, -1, 0, 30, 59])
def test_timestamps_inside_the_window_pass(offset_s: int) -> None:
    now = 1_700_000_000.0
    timestamp = str(int((now + offset_s) * 1000))
    _verify_v3(_v3(timestamp), timestamp, now=now)


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        (None, "missing_timestamp"),
        ("", "missing_timestamp"),
        ("12ab", "bad_timestamp"),
        ("-5", "bad_timestamp"),
        ("1e12", "bad_timestamp"),
        ("٣٣٣", "bad_timestamp"),
        ("9" * 40, "bad_timestamp"),
    ],
)
def test_malformed_timestamps(timestamp: str | None, reason: str) -> None:
    with pytest.raises(SignatureError) as info:
        _verify_v3("x", timestamp)
    assert info.value.reason == reason


def test_missing_and_wrong_signatures() -> None:
    timestamp = str(int(time.time() * 1000))
    with pytest.raises(SignatureError) as missing:
        _verify_v3(None, timestamp)
    assert missing.value.reason == "missing_signature"
    with pytest.raises(SignatureError) as tampered:
        _verify_v3(_v3(timestamp, b"[1]"), timestamp, body=b"[2]")
    assert tampered.value.reason == "bad_signature"
    with pytest.raises(SignatureError) as odd:
        _verify_v3("ü\x00" * 10, timestamp)
    assert odd.value.reason == "bad_signature"


def test_the_timestamp_is_part_of_the_v3_signature() -> None:
    now = time.time()
    signed_at = str(int(now * 1000))
    replayed_at = str(int(now * 1000) + 1)
    with pytest.raises(SignatureError):
        _verify_v3(_v3(signed_at), replayed_at, now=now)


def test_messages_never_contain_the_secret() -> None:
    timestamp = str(int(time.time() * 1000))
    with pytest.raises(SignatureError) as info:
        _verify_v3("AAAA", timestamp)
    assert DOC_SECRET not in str(info.value)
