"""Salesforce record IDs: 15-character case-sensitive IDs and their 18-character checksummed form."""

from __future__ import annotations

import re

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")


def to_18(id15: str) -> str:
    """Append the 3-character suffix that makes an ID case-insensitively unique."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for pos, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << pos
        suffix += _SUFFIX_ALPHABET[bits]
    return id15[:15] + suffix


def normalize(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character ID, or None if ``value`` is not an ID."""
    if not ID_RE.match(value):
        return None
    full = to_18(value[:15])
    if len(value) == 18 and value[15:].upper() != full[15:]:
        return None
    return full


def make_id(prefix: str, sequence: int, pod: str = "5g") -> str:
    """A new 18-character ID: key prefix, pod marker, then a base-62 sequence."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    body = ""
    n = sequence
    while n:
        n, rem = divmod(n, 62)
        body = alphabet[rem] + body
    body = body.rjust(15 - len(prefix) - len(pod), "0")
    return to_18(prefix + pod + body)
