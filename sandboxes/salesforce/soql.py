"""A SOQL subset: tokenizer, parser, binder (against the schema) and evaluator.

Grammar (SOQL and SOSL Reference, "SOQL SELECT Syntax"):
``SELECT fields|COUNT() FROM Object [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...]
[LIMIT n] [OFFSET n]``. Conditions use = != <> < > <= >= IN, NOT IN, LIKE, AND, OR, NOT and
parentheses; SOQL requires parentheses whenever AND and OR are mixed ("Logical Operators").
String comparisons are case-insensitive; ORDER BY defaults to ASC NULLS FIRST / DESC NULLS LAST.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sandboxes.salesforce.schema import FieldDef, ObjectDef

MAX_OFFSET = 2000  # "The maximum offset is 2,000 rows" (SOQL reference, OFFSET).


class SoqlError(Exception):
    """A query the API rejects: ``code`` is the errorCode (MALFORMED_QUERY, INVALID_FIELD, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, date, datetime, dateliteral, op, lparen, rparen, comma, eof
    text: str
    pos: int
    value: Any = None


_STRING_ESCAPES = {
    "n": "\n",
    "N": "\n",
    "r": "\r",
    "R": "\r",
    "t": "\t",
    "T": "\t",
    "b": "\b",
    "B": "\b",
    "f": "\f",
    "F": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}
_DATETIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})")
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?![\w:.T-])")
_NUMBER_RE = re.compile(r"[+-]?\d+(\.\d+)?(?![\w.])")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_DATE_LITERALS_N = {"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"}
_DATE_LITERALS = {"TODAY", "YESTERDAY", "TOMORROW"}
_OPS = ("<=", ">=", "!=", "<>", "=", "<", ">")


@dataclass(frozen=True)
class StringValue:
    """A decoded string literal; ``like`` is the regex it stands for as a LIKE pattern."""

    text: str
    like: str


def _decode_string(soql: str, start: int) -> tuple[StringValue, int]:
    """Decode the literal whose opening quote is at ``start``; return it and the index after it."""
    text: list[str] = []
    like: list[str] = []
    i = start + 1
    while i < len(soql):
        ch = soql[i]
        if ch == "'":
            return StringValue("".join(text), "".join(like)), i + 1
        if ch == "\\":
            if i + 1 >= len(soql):
                break
            nxt = soql[i + 1]
            if nxt in ("%", "_"):  # escaped wildcards: literal in LIKE (and kept as-is elsewhere)
                text.append(nxt)
                like.append(re.escape(nxt))
            elif nxt in _STRING_ESCAPES:
                text.append(_STRING_ESCAPES[nxt])
                like.append(re.escape(_STRING_ESCAPES[nxt]))
            elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", soql[i + 2 : i + 6]):
                char = chr(int(soql[i + 2 : i + 6], 16))
                text.append(char)
                like.append(re.escape(char))
                i += 4
            else:
                raise SoqlError(
                    "MALFORMED_QUERY",
                    _located(
                        soql,
                        i,
                        f"Invalid string literal. Illegal character sequence '\\{nxt}' in string literal.",
                    ),
                )
            i += 2
            continue
        text.append(ch)
        like.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    raise SoqlError("MALFORMED_QUERY", _located(soql, start, "unterminated string literal"))


def tokenize(soql: str) -> list[Token]:
    """Split ``soql`` into tokens, decoding literals."""
    tokens: list[Token] = []
    i = 0
    while i < len(soql):
        ch = soql[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "'":
            try:
                value, end = _decode_string(soql, i)
            except SoqlError as err:
                # Reported only if the parser gets this far: an earlier bad token wins, as in Salesforce.
                tokens.append(Token("bad", soql[i:], i, err))
                break
            tokens.append(Token("string", soql[i:end], i, value))
            i = end
            continue
        if ch in "(),":
            tokens.append(Token({"(": "lparen", ")": "rparen", ",": "comma"}[ch], ch, i))
            i += 1
            continue
        op = next((o for o in _OPS if soql.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token("op", op, i))
            i += len(op)
            continue
        m = _DATETIME_RE.match(soql, i)
        if m:
            tokens.append(Token("datetime", m.group(0), i, _parse_datetime(m)))
            i = m.end()
            continue
        m = _DATE_RE.match(soql, i)
        if m:
            tokens.append(Token("date", m.group(0), i, date(int(m[1]), int(m[2]), int(m[3]))))
            i = m.end()
            continue
        m = _NUMBER_RE.match(soql, i)
        if m:
            text = m.group(0)
            tokens.append(Token("number", text, i, float(text) if "." in text else int(text)))
            i = m.end()
            continue
        m = _IDENT_RE.match(soql, i)
        if m:
            word = m.group(0)
            n = re.match(r":(\d+)", soql[m.end() :])
            if word.upper() in _DATE_LITERALS_N and n:
                tokens.append(Token("dateliteral", word + n.group(0), i, (word.upper(), int(n.group(1)))))
                i = m.end() + n.end()
            elif word.upper() in _DATE_LITERALS:
                tokens.append(Token("dateliteral", word, i, (word.upper(), 0)))
                i = m.end()
            else:
                tokens.append(Token("ident", word, i))
                i = m.end()
            continue
        raise SoqlError("MALFORMED_QUERY", _located(soql, i, f"unexpected token: '{ch}'"))
    tokens.append(Token("eof", "<EOF>", len(soql)))  # after a "bad" token it is never reached
    return tokens


def _parse_datetime(m: re.Match[str]) -> datetime:
    frac = m.group(7) or ""
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    tz = m.group(8)
    if tz == "Z":
        offset = timedelta(0)
    else:
        digits = tz[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if tz[0] == "-":
            offset = -offset
    naive = datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]), micro)
    return (naive - offset).replace(tzinfo=UTC)


def _located(soql: str, pos: int, text: str) -> str:
    """Salesforce's error layout: the offending line, a caret, the row/column, then the reason."""
    before = soql[:pos]
    row = before.count("\n") + 1
    col = pos - (before.rfind("\n") + 1) + 1
    line = soql.splitlines()[row - 1] if soql.splitlines() else ""
    return f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{text}"


# ---------------------------------------------------------------------------------------------- AST


@dataclass
class FieldRef:
    path: list[str]
    pos: int
    # Filled by bind(): relationship fields walked, then the final field.
    hops: list[FieldDef] = field(default_factory=list)
    target: FieldDef | None = None

    @property
    def text(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Literal:
    kind: str  # string, number, boolean, null, date, datetime, dateliteral
    value: Any
    pos: int


@dataclass
class Compare:
    field: FieldRef
    op: str  # = != < > <= >= IN NOTIN LIKE
    value: Literal | list[Literal]


@dataclass
class Logical:
    op: str  # AND, OR
    items: list[Cond]


@dataclass
class Not:
    item: Cond


Cond = Compare | Logical | Not


@dataclass
class OrderItem:
    field: FieldRef
    descending: bool
    nulls_first: bool


@dataclass
class Query:
    sobject: str
    sobject_pos: int
    fields: list[FieldRef]
    count: bool = False
    where: Cond | None = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    soql: str = ""


# ---------------------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, soql: str) -> None:
        self.soql = soql
        self.tokens = tokenize(soql)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "ident" and self.tok.text.upper() in words

    def next(self) -> Token:
        t = self.tok
        self.i += 1
        return t

    def fail(self, tok: Token | None = None) -> SoqlError:
        t = tok or self.tok
        if t.kind == "bad":
            return t.value  # type: ignore[no-any-return]
        return SoqlError("MALFORMED_QUERY", _located(self.soql, t.pos, f"unexpected token: '{t.text}'"))

    def expect_kw(self, word: str) -> Token:
        if not self.is_kw(word):
            raise self.fail()
        return self.next()

    def expect(self, kind: str) -> Token:
        if self.tok.kind != kind:
            raise self.fail()
        return self.next()

    def parse(self) -> Query:
        self.expect_kw("SELECT")
        fields: list[FieldRef] = []
        count = False
        if self.is_kw("COUNT") and self.tokens[self.i + 1].kind == "lparen":
            self.next()
            self.next()
            self.expect("rparen")
            count = True
        else:
            while True:
                if self.tok.kind == "lparen":
                    raise SoqlError(
                        "MALFORMED_QUERY",
                        _located(
                            self.soql,
                            self.tok.pos,
                            "relationship subqueries are not supported by the sandbox",
                        ),
                    )
                fields.append(self.field_ref())
                if self.tok.kind != "comma":
                    break
                self.next()
        self.expect_kw("FROM")
        obj = self.expect("ident")
        query = Query(obj.text, obj.pos, fields, count=count, soql=self.soql)
        if self.is_kw("WHERE"):
            self.next()
            query.where = self.condition()
        if self.is_kw("ORDER"):
            self.next()
            self.expect_kw("BY")
            query.order = self.order_items()
        if self.is_kw("LIMIT"):
            self.next()
            query.limit = self.integer()
        if self.is_kw("OFFSET"):
            self.next()
            tok = self.tok
            query.offset = self.integer()
            if query.offset > MAX_OFFSET:
                raise SoqlError(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    _located(self.soql, tok.pos, f"Maximum SOQL offset allowed is {MAX_OFFSET}"),
                )
        if self.tok.kind != "eof":
            raise self.fail()
        return query

    def integer(self) -> int:
        tok = self.expect("number")
        if not isinstance(tok.value, int) or tok.value < 0:
            raise self.fail(tok)
        return tok.value

    def field_ref(self) -> FieldRef:
        tok = self.expect("ident")
        if tok.text.upper() in _RESERVED:
            raise self.fail(tok)
        return FieldRef(tok.text.split("."), tok.pos)

    def order_items(self) -> list[OrderItem]:
        items: list[OrderItem] = []
        while True:
            ref = self.field_ref()
            desc = False
            if self.is_kw("ASC", "DESC"):
                desc = self.next().text.upper() == "DESC"
            nulls_first = not desc
            if self.is_kw("NULLS"):
                self.next()
                if not self.is_kw("FIRST", "LAST"):
                    raise self.fail()
                nulls_first = self.next().text.upper() == "FIRST"
            items.append(OrderItem(ref, desc, nulls_first))
            if self.tok.kind != "comma":
                return items
            self.next()

    def condition(self) -> Cond:
        first = self.unary()
        if not self.is_kw("AND", "OR"):
            return first
        op = self.tok.text.upper()
        items = [first]
        while self.is_kw("AND", "OR"):
            if self.tok.text.upper() != op:  # mixing AND/OR without parentheses
                raise self.fail()
            self.next()
            items.append(self.unary())
        return Logical(op, items)

    def unary(self) -> Cond:
        if self.is_kw("NOT"):
            self.next()
            return Not(self.unary())
        if self.tok.kind == "lparen":
            self.next()
            inner = self.condition()
            self.expect("rparen")
            return inner
        return self.comparison()

    def comparison(self) -> Compare:
        ref = self.field_ref()
        if self.tok.kind == "op":
            op = self.next().text
            return Compare(ref, "!=" if op == "<>" else op, self.literal())
        if self.is_kw("LIKE"):
            self.next()
            lit = self.literal()
            if lit.kind != "string":
                raise self.fail()
            return Compare(ref, "LIKE", lit)
        negate = False
        if self.is_kw("NOT"):
            self.next()
            negate = True
        if self.is_kw("IN"):
            self.next()
            self.expect("lparen")
            values = [self.literal()]
            while self.tok.kind == "comma":
                self.next()
                values.append(self.literal())
            self.expect("rparen")
            return Compare(ref, "NOTIN" if negate else "IN", values)
        raise self.fail()

    def literal(self) -> Literal:
        tok = self.next()
        if tok.kind == "string":
            return Literal("string", tok.value, tok.pos)
        if tok.kind in ("number", "date", "datetime", "dateliteral"):
            return Literal(tok.kind, tok.value, tok.pos)
        if tok.kind == "ident" and tok.text.upper() in ("TRUE", "FALSE"):
            return Literal("boolean", tok.text.upper() == "TRUE", tok.pos)
        if tok.kind == "ident" and tok.text.upper() == "NULL":
            return Literal("null", None, tok.pos)
        raise self.fail(tok)


_RESERVED = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "LIKE",
    "IN",
    "ORDER",
    "BY",
    "LIMIT",
    "OFFSET",
    "NULL",
    "TRUE",
    "FALSE",
    "ASC",
    "DESC",
    "NULLS",
}


def parse(soql: str) -> Query:
    """Parse ``soql`` (syntax only; call :func:`bind` to check names)."""
    return _Parser(soql).parse()


# ---------------------------------------------------------------------------------------------- binding

_NUMERIC = {"double", "currency", "percent", "int"}


def bind(query: Query, schema: dict[str, ObjectDef]) -> ObjectDef:
    """Resolve the object and every field reference; raise INVALID_TYPE / INVALID_FIELD like the API."""
    obj = next((o for name, o in schema.items() if name.lower() == query.sobject.lower()), None)
    if obj is None:
        raise SoqlError(
            "INVALID_TYPE",
            _located(
                query.soql,
                query.sobject_pos,
                f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom "
                "object, be sure to append the '__c' after the entity name. Please reference your WSDL or "
                "the describe call for the "
                "appropriate names.",
            ),
        )
    query.sobject = obj.name
    for ref in query.fields:
        _bind_ref(ref, obj, schema, query.soql)
    for item in query.order:
        _bind_ref(item.field, obj, schema, query.soql)
    if query.where is not None:
        _bind_cond(query.where, obj, schema, query.soql)
    return obj


def _bind_ref(ref: FieldRef, obj: ObjectDef, schema: dict[str, ObjectDef], soql: str) -> None:
    current: list[ObjectDef] = [obj]
    hops: list[FieldDef] = []
    for i, part in enumerate(ref.path):
        last = i == len(ref.path) - 1
        found: FieldDef | None = None
        for o in current:
            found = o.field_ci(part) if last else o.relationship_ci(part)
            if found is not None:
                break
        if found is None:
            entity = current[0].name if len(current) == 1 else "Name"
            what = (
                f"No such column '{part}' on entity '{entity}'"
                if last
                else f"Didn't understand relationship '{part}' in field path"
            )
            raise SoqlError(
                "INVALID_FIELD",
                _located(
                    soql,
                    ref.pos,
                    f"{what}. If you are attempting to use a custom field, be sure to append the '__c' "
                    "after the custom "
                    "field name. Please reference your WSDL or the describe call for the appropriate names.",
                ),
            )
        if last:
            ref.target = found
        else:
            hops.append(found)
            current = [schema[t] for t in found.reference_to if t in schema]
            if not current:
                raise SoqlError(
                    "INVALID_FIELD",
                    _located(soql, ref.pos, f"Didn't understand relationship '{part}' in field path."),
                )
    ref.hops = hops
    ref.path = [h.relationship_name or h.name for h in hops] + [
        ref.target.name if ref.target else ref.path[-1]
    ]


def _bind_cond(cond: Cond, obj: ObjectDef, schema: dict[str, ObjectDef], soql: str) -> None:
    if isinstance(cond, Logical):
        for item in cond.items:
            _bind_cond(item, obj, schema, soql)
    elif isinstance(cond, Not):
        _bind_cond(cond.item, obj, schema, soql)
    else:
        _bind_ref(cond.field, obj, schema, soql)
        values = cond.value if isinstance(cond.value, list) else [cond.value]
        for lit in values:
            _check_literal(cond.field, lit, soql)


def _check_literal(ref: FieldRef, lit: Literal, soql: str) -> None:
    assert ref.target is not None
    ftype = ref.target.type
    if lit.kind == "null":
        return
    ok = {
        "datetime": lit.kind in ("datetime", "dateliteral"),
        "date": lit.kind in ("date", "dateliteral"),
        "boolean": lit.kind == "boolean",
    }.get(ftype)
    if ok is None:
        ok = lit.kind == "number" if ftype in _NUMERIC else lit.kind == "string"
    if ok:
        return
    expected = {"datetime": "dateTime", "date": "date", "boolean": "boolean"}.get(
        ftype, "double" if ftype in _NUMERIC else "string"
    )
    quoted = "should be enclosed in quotes" if expected == "string" else "should not be enclosed in quotes"
    raise SoqlError(
        "INVALID_FIELD",
        _located(
            soql,
            lit.pos,
            f"value of filter criterion for field '{ref.target.name}' must be of type {expected} "
            f"and {quoted}",
        ),
    )


# ---------------------------------------------------------------------------------------------- evaluation

Resolver = Callable[[dict[str, Any], FieldRef], Any]


def _date_range(name: str, n: int, now: datetime) -> tuple[date, date]:
    """[start, end) in days for a named date literal, in the org's time zone (UTC here)."""
    today = now.astimezone(UTC).date()
    one = timedelta(days=1)
    if name == "TODAY":
        return today, today + one
    if name == "YESTERDAY":
        return today - one, today
    if name == "TOMORROW":
        return today + one, today + 2 * one
    if name == "LAST_N_DAYS":
        return today - n * one, today + one
    if name == "NEXT_N_DAYS":
        return today + one, today + (n + 1) * one
    if name == "N_DAYS_AGO":
        return today - n * one, today - (n - 1) * one
    raise SoqlError("MALFORMED_QUERY", f"unsupported date literal {name}")


def comparable(value: Any, ftype: str) -> Any:
    """Comparable form: case-folded text, 15-char ids (18-char ids compare equal to their 15-char form)."""
    if isinstance(value, str):
        if ftype in ("id", "reference"):
            return value[:15]
        return value.casefold()
    return value


class Evaluator:
    """Filters and orders records for a bound query; ``resolve`` reads a (possibly related) field."""

    def __init__(self, resolve: Resolver, now: datetime) -> None:
        self.resolve = resolve
        self.now = now

    def matches(self, cond: Cond | None, record: dict[str, Any]) -> bool:
        """Whether ``record`` satisfies ``cond``."""
        if cond is None:
            return True
        if isinstance(cond, Logical):
            results = (self.matches(c, record) for c in cond.items)
            return all(results) if cond.op == "AND" else any(results)
        if isinstance(cond, Not):
            return not self.matches(cond.item, record)
        return self._compare(cond, record)

    def _compare(self, cond: Compare, record: dict[str, Any]) -> bool:
        assert cond.field.target is not None
        ftype = cond.field.target.type
        raw = self.resolve(record, cond.field)
        if cond.op in ("IN", "NOTIN"):
            assert isinstance(cond.value, list)
            hit = any(self._equal(raw, lit, ftype) for lit in cond.value)
            return hit if cond.op == "IN" else not hit
        assert isinstance(cond.value, Literal)
        lit = cond.value
        if cond.op == "LIKE":
            if raw is None:
                return False
            return re.fullmatch(lit.value.like, str(raw), re.IGNORECASE | re.DOTALL) is not None
        if cond.op == "=":
            return self._equal(raw, lit, ftype)
        if cond.op == "!=":
            return not self._equal(raw, lit, ftype)
        if raw is None or lit.kind == "null":
            return False
        if lit.kind == "dateliteral":
            start, end = self._range(lit, ftype)
            return {"<": raw < start, "<=": raw < end, ">": raw >= end, ">=": raw >= start}[cond.op]
        left, right = comparable(raw, ftype), comparable(self._lit_value(lit), ftype)
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[cond.op]

    def _equal(self, raw: Any, lit: Literal, ftype: str) -> bool:
        if lit.kind == "null":
            return raw is None
        if raw is None:
            return False
        if lit.kind == "dateliteral":
            start, end = self._range(lit, ftype)
            return bool(start <= raw < end)
        return bool(comparable(raw, ftype) == comparable(self._lit_value(lit), ftype))

    @staticmethod
    def _lit_value(lit: Literal) -> Any:
        return lit.value.text if isinstance(lit.value, StringValue) else lit.value

    def _range(self, lit: Literal, ftype: str) -> tuple[Any, Any]:
        start, end = _date_range(lit.value[0], lit.value[1], self.now)
        if ftype == "datetime":
            return datetime.combine(start, time(), UTC), datetime.combine(end, time(), UTC)
        return start, end

    def order(self, records: list[dict[str, Any]], items: Sequence[OrderItem]) -> list[dict[str, Any]]:
        """Stable multi-key sort honouring ASC/DESC and NULLS FIRST/LAST."""
        out = list(records)
        for item in reversed(items):
            assert item.field.target is not None
            ftype = item.field.target.type
            # With reverse=True the null rank flips, so pick ranks that land nulls where requested.
            null_rank = 0 if item.nulls_first != item.descending else 1

            def key(
                rec: dict[str, Any], ref: FieldRef = item.field, nr: int = null_rank, ft: str = ftype
            ) -> tuple[int, Any]:
                value = self.resolve(rec, ref)
                if value is None:
                    return (nr, None)
                return (1 - nr, comparable(value, ft))

            out.sort(key=key, reverse=item.descending)
        return out
