"""Pydantic models of a mapping document (validated once at load; the hot path uses compiled parts)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sync.mapping.conditions import (
    SFA_OBJECTS,
    SFA_RELATED,
    Condition,
    ConditionSyntaxError,
    compile_condition,
    sfa_nameable_objects,
    sfa_object_scope,
    sfa_objects_in_scope,
)
from sync.mapping.duration import Duration, parse_duration
from sync.mapping.suggest import did_you_mean
from sync.mapping.transforms import Fn, TransformError, compile_transform

SUPPORTED_VERSIONS = (1,)
SyncDirection = Literal[
    "ma_to_sfa", "sfa_to_ma", "two_way", "prefer_sfa_unless_blank", "prefer_ma_unless_blank", "none"
]
SlaAction = Literal["log", "sfa_task"]
REF = "x-closedloop-ref"  # placeholder for a $ref into schema.py's hand-written $defs
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STAGE_ID = re.compile(r"^[a-z][a-z0-9_]*$")


def _fail(message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError("mapping", message, ctx or None)


# --- custom value types -------------------------------------------------------------------------


def _compile(raw: Any, side: Literal["ma", "sfa"]) -> Condition:
    if isinstance(raw, Condition):
        return raw
    try:
        return compile_condition(raw, side)
    except ConditionSyntaxError as exc:
        raise PydanticCustomError("condition", "invalid condition", {"issues": exc.issues}) from None


def _ma_condition(raw: Any) -> Condition:
    return _compile(raw, "ma")


def _sfa_condition(raw: Any) -> Condition:
    return _compile(raw, "sfa")


def _condition_source(c: Condition) -> dict[str, Any]:
    return c.source


MaCondition = Annotated[
    Condition,
    PlainValidator(_ma_condition, json_schema_input_type=Any),
    PlainSerializer(_condition_source),
    WithJsonSchema({REF: "MaCondition"}),
]
SfaCondition = Annotated[
    Condition,
    PlainValidator(_sfa_condition, json_schema_input_type=Any),
    PlainSerializer(_condition_source),
    WithJsonSchema({REF: "SfaCondition"}),
]


@dataclass(frozen=True)
class Transform:
    """A transform spec as written, with its compiled function."""

    spec: Any
    fn: Fn


def _transform(raw: Any) -> Transform:
    if isinstance(raw, Transform):
        return raw
    try:
        return Transform(spec=raw, fn=compile_transform(raw))
    except TransformError as exc:
        raise _fail(str(exc)) from None


TransformItem = Annotated[
    Transform,
    PlainValidator(_transform, json_schema_input_type=Any),
    PlainSerializer(lambda t: t.spec),
    WithJsonSchema({REF: "Transform"}),
]


def _duration(raw: Any) -> Duration:
    if isinstance(raw, Duration):
        return raw
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise _fail(str(exc)) from None


DurationValue = Annotated[
    Duration,
    PlainValidator(_duration, json_schema_input_type=str),
    PlainSerializer(str),
    WithJsonSchema({REF: "Duration"}),
]


@dataclass(frozen=True)
class SfaRef:
    """A Salesforce ``Object.Field`` reference."""

    object: str
    field: str

    def __str__(self) -> str:
        return f"{self.object}.{self.field}"


def parse_sfa_ref(raw: Any, objects: tuple[str, ...] | None = None) -> SfaRef:
    """Parse ``Object.Field``; PydanticCustomError with a readable message otherwise."""
    if isinstance(raw, SfaRef):
        return raw
    objects = objects or sfa_objects_in_scope()
    if not isinstance(raw, str) or raw.count(".") != 1:
        raise _fail(f"expected 'Object.Field' (Object one of {', '.join(objects)}), got {raw!r}")
    obj, field = raw.split(".")
    if obj not in objects:
        raise _fail(
            f"unknown object {obj!r} in {raw!r}: use {', '.join(objects)}{did_you_mean(obj, objects)}"
        )
    if not _IDENT.match(field):
        raise _fail(f"bad field name {field!r} in {raw!r}")
    return SfaRef(obj, field)


SfaRefValue = Annotated[
    SfaRef,
    PlainValidator(parse_sfa_ref, json_schema_input_type=str),
    PlainSerializer(str),
    WithJsonSchema({REF: "SfaFieldRef"}),
]


def _any_sfa_ref(raw: Any) -> SfaRef:
    return parse_sfa_ref(raw, sfa_nameable_objects())


# Also a related object (sfa_related): where a stage's time or reason, or an SLA's field, is read.
SfaAnyRefValue = Annotated[
    SfaRef,
    PlainValidator(_any_sfa_ref, json_schema_input_type=str),
    PlainSerializer(str),
    WithJsonSchema({REF: "SfaFieldRef"}),
]
ClosedLoopSource = Literal["stage", "outcome"] | SfaRef


def person_objects(objects: tuple[str, ...]) -> tuple[str, ...]:
    """The objects that hold the person: every sales-side object but the last (the outcome)."""
    return objects[:-1]


def _person_object(raw: Any) -> str:
    choices = person_objects(sfa_objects_in_scope())
    if raw not in choices:
        raise _fail(
            f"{raw!r} is not allowed; expected one of: {', '.join(choices)}{did_you_mean(raw, choices)}"
        )
    return str(raw)


PersonObject = Annotated[
    str,
    PlainValidator(_person_object, json_schema_input_type=str),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "description": "A person object, e.g. Lead or Contact"}
    ),
]


def _default_person_objects() -> list[str]:
    return list(person_objects(sfa_objects_in_scope()))


def _default_create_as() -> str:
    return person_objects(sfa_objects_in_scope())[0]


def _closed_loop_source(raw: Any) -> ClosedLoopSource:
    if raw in ("stage", "outcome"):
        return raw  # type: ignore[no-any-return]
    if isinstance(raw, str) and "." not in raw:
        hint = did_you_mean(raw, ("stage", "outcome"))
        raise _fail(f"'from' must be 'stage', 'outcome' or 'Object.Field', got {raw!r}{hint}")
    return parse_sfa_ref(raw)


ClosedLoopFrom = Annotated[
    ClosedLoopSource,
    PlainValidator(_closed_loop_source, json_schema_input_type=str),
    PlainSerializer(str),
    WithJsonSchema({"anyOf": [{"enum": ["stage", "outcome"]}, {REF: "SfaFieldRef"}]}),
]


def _scalar(raw: Any) -> Any:
    if raw is None or isinstance(raw, str | int | float | bool):
        return raw
    raise _fail("expected a single value (string, number, boolean or null)")


Scalar = Annotated[Any, PlainValidator(_scalar), WithJsonSchema({REF: "Scalar"})]


def _value_map(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail("'values' must be a mapping of source value to target value")
    out: dict[str, Any] = {}
    for key, val in raw.items():
        _scalar(val)
        out["true" if key is True else "false" if key is False else str(key)] = val
    return out


ValueMap = Annotated[
    dict[str, Any],
    PlainValidator(_value_map, json_schema_input_type=dict[str, Any]),
    WithJsonSchema({"type": "object", "additionalProperties": {REF: "Scalar"}}),
]


def _stage_id(raw: Any) -> str:
    if not isinstance(raw, str) or not _STAGE_ID.match(raw):
        raise _fail(f"stage id must be lower_snake_case (letters, digits, _), got {raw!r}")
    return raw


StageId = Annotated[
    str,
    PlainValidator(_stage_id, json_schema_input_type=str),
    WithJsonSchema({"type": "string", "pattern": _STAGE_ID.pattern}),
]
Name = Annotated[str, Field(min_length=1)]


# --- document models ----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Identity(_Strict):
    """How one person is recognised in both systems."""

    ma_property: Name = Field(description="Unique HubSpot contact property holding the common lead ID")
    sfa_field: Name = Field(description="External ID field on Salesforce Lead and Contact")
    match_on: list[Name] = Field(
        default=["email"],
        description="HubSpot properties (mapped in fields) used as match keys",
    )


class PropertyChoice(str):
    """An ordered list of HubSpot properties, the first one set wins.

    It is the first name as a ``str`` (so code reading one property keeps working) and carries all
    of them in :attr:`names`.
    """

    names: tuple[str, ...]

    def __new__(cls, names: tuple[str, ...]) -> PropertyChoice:
        self = super().__new__(cls, names[0])
        self.names = names
        return self


def _property_choice(raw: Any) -> PropertyChoice:
    if isinstance(raw, PropertyChoice):
        return raw
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names:
        raise _fail("expected a property name or a non-empty list of property names")
    if not all(isinstance(n, str) and n for n in names):
        raise _fail("every property name must be a non-empty string")
    if len(set(names)) != len(names):
        raise _fail("a property is listed twice")
    return PropertyChoice(tuple(names))


def _choice_out(value: PropertyChoice) -> str | list[str]:
    return str(value) if len(value.names) == 1 else list(value.names)


_NAME_SCHEMA = {"type": "string", "minLength": 1}
MaPropertyChoice = Annotated[
    PropertyChoice,
    PlainValidator(_property_choice, json_schema_input_type=str | list[str]),
    PlainSerializer(_choice_out),
    WithJsonSchema(
        {
            "anyOf": [
                _NAME_SCHEMA,
                {"type": "array", "items": _NAME_SCHEMA, "minItems": 1, "uniqueItems": True},
            ],
            "description": "A HubSpot property, or a list tried in order (the first one set wins)",
        }
    ),
]


class EnteredAt(_Strict):
    """Where the source system records when a stage was entered."""

    ma: MaPropertyChoice | None = None
    sfa: SfaAnyRefValue | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EnteredAt:
        if (self.ma is None) == (self.sfa is None):
            raise _fail("entered_at takes exactly one of 'ma: property' or 'sfa: Object.Field'")
        return self

    @property
    def ma_properties(self) -> tuple[str, ...]:
        """The HubSpot properties to try, in order (empty for an ``sfa`` source)."""
        return self.ma.names if self.ma is not None else ()


class StageLabel(_Strict):
    """A stage's display name in each report language (``CLOSEDLOOP_LANGUAGE``)."""

    en: Name | None = Field(None, description="English name, e.g. SQL")
    ja: Name | None = Field(None, description="Japanese name, e.g. 商談化")


class Stage(_Strict):
    """A standard funnel stage: on the success path, or a detour (lost, disqualified, recycled)."""

    id: StageId
    label: StageLabel | None = Field(None, description="Display names in reports, per language")
    description: str | None = None
    detour: bool = False
    recycle: bool = Field(False, description="A recycled person may re-enter the success path")
    ma: MaCondition | None = None
    sfa: SfaCondition | None = None
    entered_at: EnteredAt | None = None
    reason: SfaAnyRefValue | None = Field(
        None, description="Where a detour's reason is read, e.g. Opportunity.Loss_Reason__c"
    )

    @model_validator(mode="after")
    def _has_condition(self) -> Stage:
        if self.ma is None and self.sfa is None:
            raise _fail(f"stage '{self.id}' needs an 'ma' or 'sfa' condition")
        if self.recycle and not self.detour:
            raise _fail(f"stage '{self.id}': 'recycle: true' needs 'detour: true'")
        return self


class Team(_Strict):
    """A team owning some stages (SLAs waiting on them are its own), and where its owner is read."""

    id: StageId
    label: StageLabel | None = Field(None, description="Display names in reports, per language")
    stages: list[StageId] = Field(default_factory=list, description="Stage ids; each in at most one team")
    owner: SfaAnyRefValue | None = Field(
        None, description="Where the person's owner in this team is read, e.g. Opportunity.OwnerId"
    )


class Handover(_Strict):
    """The stage at which a person is created in Salesforce, and as what."""

    at: StageId
    create_as: PersonObject = Field(
        default_factory=_default_create_as, description="Default: the first person object (Lead)"
    )


class FieldMap(_Strict):
    """One HubSpot property ↔ Salesforce field, with direction and transforms."""

    ma: Name
    sfa: Name
    sync: SyncDirection
    transform: list[TransformItem] = Field(default_factory=list)
    default: Scalar = Field(None, description="Written instead of a blank value (forward direction)")
    values: ValueMap | None = Field(None, description="Value translation; '_other' is the fallback")
    reverse_values: ValueMap | None = Field(None, description="Backward translation (inferred for two-way)")
    sfa_objects: list[PersonObject] = Field(
        default_factory=_default_person_objects, description="Default: every person object (Lead, Contact)"
    )


class ClosedLoopEntry(_Strict):
    """A Salesforce outcome (or the standard stage/outcome) written to a HubSpot contact property."""

    from_: ClosedLoopFrom = Field(alias="from")
    ma: Name
    transform: list[TransformItem] = Field(default_factory=list)


class Calendar(_Strict):
    """Business calendar for SLAs counted in business days."""

    country: str | None = Field(None, description="ISO country code for public holidays, e.g. JP")
    subdivision: str | None = None
    timezone: str = "UTC"
    workdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default=["mon", "tue", "wed", "thu", "fri"]
    )

    @model_validator(mode="after")
    def _known(self) -> Calendar:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise _fail(f"unknown timezone {self.timezone!r}") from None
        if self.country is not None and self.country not in _countries():
            raise _fail(f"no holiday calendar for country {self.country!r}")
        return self


@cache
def _countries() -> frozenset[str]:
    import holidays

    return frozenset(holidays.list_supported_countries())


DEFAULT_NOTIFY_ENV = "CLOSEDLOOP_SLA_WEBHOOK_URL"
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def _env_name(raw: Any) -> str:
    if not isinstance(raw, str) or not _ENV_NAME.match(raw):
        raise _fail("expected an environment variable name in upper case, e.g. CLOSEDLOOP_SLA_WEBHOOK_URL")
    return raw


EnvName = Annotated[
    str,
    PlainValidator(_env_name, json_schema_input_type=str),
    WithJsonSchema({"type": "string", "pattern": _ENV_NAME.pattern}),
]


class SlaNotify(_Strict):
    """An outgoing breach notification: a JSON POST to an incoming webhook (Slack or Microsoft Teams).

    The mapping names only the environment variable holding the URL: the URL is a secret.
    """

    url_env: EnvName = Field(
        DEFAULT_NOTIFY_ENV,
        description="Environment variable holding the webhook URL (default: the setting sla_webhook_url)",
    )


SlaKind = Literal["time_to", "complete_at"]


class Sla(_Strict):
    """A service level between teams, with what to do on breach.

    ``time_to`` (the default): reach stage ``to`` within ``within`` of entering ``from``.
    ``complete_at``: on entering ``stage``, every one of ``fields`` is filled.
    """

    id: StageId
    kind: SlaKind = Field("time_to", description="time_to (from/to/within) or complete_at (stage/fields)")
    from_: StageId | None = Field(None, alias="from")
    to: StageId | None = None
    within: DurationValue | None = None
    stage: StageId | None = Field(None, description="complete_at: the stage whose entry is checked")
    fields: list[SfaAnyRefValue] | None = Field(
        None, description="complete_at: the Salesforce fields that must be filled, e.g. Opportunity.Budget__c"
    )
    on_breach: list[SlaAction] = Field(default=["log"])
    calendar: Calendar | None = None
    notify: SlaNotify | None = Field(None, description="Also post each breach to an incoming webhook")

    @model_validator(mode="after")
    def _kind_keys(self) -> Sla:
        given = {k for k in ("from", "to", "within", "stage", "fields") if self._value(k) is not None}
        needed = {"from", "to", "within"} if self.kind == "time_to" else {"stage", "fields"}
        missing, foreign = sorted(needed - given), sorted(given - needed)
        if missing:
            raise _fail(f"SLA '{self.id}' ({self.kind}) needs {', '.join(repr(k) for k in missing)}")
        if foreign:
            raise _fail(f"SLA '{self.id}' ({self.kind}) does not take {', '.join(repr(k) for k in foreign)}")
        if self.kind == "complete_at" and not self.fields:
            raise _fail(f"SLA '{self.id}': 'fields' needs at least one Object.Field")
        return self

    def _value(self, key: str) -> Any:
        return self.from_ if key == "from" else getattr(self, key)


def _version(raw: Any) -> int:
    if raw not in SUPPORTED_VERSIONS or isinstance(raw, bool):
        raise _fail(
            f"version {raw!r} is not supported (supported: {', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    return int(raw)


def declared_objects(raw: Any) -> tuple[str, ...]:
    """The ``sfa_objects`` a mapping document declares, when they are well formed; else the default."""
    given = raw.get("sfa_objects") if isinstance(raw, dict) else None
    if isinstance(given, list) and _objects_ok(given):
        return tuple(given)
    return SFA_OBJECTS


def _objects_ok(given: list[Any]) -> bool:
    named = all(isinstance(o, str) and _IDENT.match(o) for o in given)
    return named and len(given) >= 2 and len(set(given)) == len(given)


def _sfa_object_list(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, tuple):
        return raw
    if not isinstance(raw, list) or not _objects_ok(raw):
        raise _fail(
            "sfa_objects must list at least two distinct object names (person objects first, "
            f"the outcome object last), got {raw!r}"
        )
    return tuple(raw)


def declared_related(raw: Any) -> tuple[str, ...]:
    """The ``sfa_related`` a document declares when well formed; else its default.

    The default is Salesforce's related objects when ``sfa_objects`` is not declared (Salesforce),
    none when it is (another sales system names its own).
    """
    given = raw.get("sfa_related") if isinstance(raw, dict) else None
    if isinstance(given, list) and all(isinstance(o, str) and _IDENT.match(o) for o in given):
        return tuple(given)
    declared = isinstance(raw, dict) and raw.get("sfa_objects") is not None
    return () if declared else SFA_RELATED


def _related_list(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, tuple):
        return raw
    if not isinstance(raw, list) or not all(isinstance(o, str) and _IDENT.match(o) for o in raw):
        raise _fail(f"sfa_related must list object names, got {raw!r}")
    if len(set(raw)) != len(raw):
        raise _fail("sfa_related lists an object twice")
    main = sfa_objects_in_scope()
    clash = [o for o in raw if o in main]
    if clash:
        raise _fail(f"{clash[0]!r} is one of sfa_objects; sfa_related names other objects")
    return tuple(raw)


SfaRelatedList = Annotated[
    tuple[str, ...],
    PlainValidator(_related_list, json_schema_input_type=list[str]),
    PlainSerializer(list),
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string", "pattern": _IDENT.pattern},
            "uniqueItems": True,
            "description": "Related objects stage conditions may also name (any of the person's records)",
        }
    ),
]
SfaObjectList = Annotated[
    tuple[str, ...],
    PlainValidator(_sfa_object_list, json_schema_input_type=list[str]),
    PlainSerializer(list),
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string", "pattern": _IDENT.pattern},
            "minItems": 2,
            "uniqueItems": True,
            "description": "Sales-side objects by increasing weight of evidence; the last is the outcome",
        }
    ),
]


class Mapping(_Strict):
    """A whole mapping document: identity, stages, handover, field maps, closed loop, SLAs."""

    version: Annotated[int, PlainValidator(_version), WithJsonSchema({"enum": list(SUPPORTED_VERSIONS)})]
    declared_sfa_objects: SfaObjectList | None = Field(
        None,
        alias="sfa_objects",
        description="The sales-side objects (default Lead, Contact, Opportunity), e.g. [contact, deal]",
    )
    declared_sfa_related: SfaRelatedList | None = Field(
        None,
        alias="sfa_related",
        description="Related objects (default Account, Event, Task unless sfa_objects is declared)",
    )
    identity: Identity
    stages: list[Stage] = Field(min_length=1)
    handover: Handover
    fields: list[FieldMap] = Field(default_factory=list)
    closed_loop: list[ClosedLoopEntry] = Field(default_factory=list)
    slas: list[Sla] = Field(default_factory=list)
    calendar: Calendar | None = Field(None, description="Default business calendar for SLAs")
    declared_teams: list[Team] | None = Field(
        None, alias="teams", description="Teams and the stages they own (default: see mappings/README.md)"
    )
    nps: SfaAnyRefValue | None = Field(
        None, description="Where a 0-10 NPS score is read, e.g. Contact.NPS__c"
    )

    _cache: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _in_object_scope(cls, data: Any, handler: Any) -> Any:
        """Validate conditions and references against the objects this document declares."""
        with sfa_object_scope(declared_objects(data), declared_related(data)):
            return handler(data)

    def stage_ids(self) -> list[str]:
        """Every stage id, in declaration order."""
        return [s.id for s in self.stages]

    def success_path(self) -> list[str]:
        """The success-path stage ids, in order."""
        return [s.id for s in self.stages if not s.detour]

    def won_stage(self) -> str:
        """The stage where the deal is won: ``won`` when the path has it, else the last success stage.

        Stages after it (kickoff, customer, expansion) are the won customer's life, not new outcomes.
        """
        path = self.success_path()
        return "won" if "won" in path else path[-1]

    def detours(self) -> list[str]:
        """The detour stage ids, in declaration order."""
        return [s.id for s in self.stages if s.detour]

    def stage(self, id: str) -> Stage:  # noqa: A002 - the public name is part of the API
        """The stage with this id; KeyError if none."""
        for s in self.stages:
            if s.id == id:
                return s
        raise KeyError(id)

    def stage_labels(self, language: str) -> dict[str, str]:
        """The team's own stage names in ``language`` (only stages that give one)."""
        out = {}
        for s in self.stages:
            text = getattr(s.label, language, None) if s.label else None
            if text:
                out[s.id] = text
        return out

    def cached(self, key: str, build: Callable[[Mapping], Any]) -> Any:
        """Derived runtime structures, built once per mapping (the model is immutable)."""
        cache: dict[str, Any] = self.__pydantic_private__["_cache"]  # type: ignore[index]
        try:
            return cache[key]
        except KeyError:
            value = cache[key] = build(self)
            return value

    def teams(self) -> list[Team]:
        """The declared teams, else the default ones (see :func:`sync.mapping.teams.default_teams`)."""
        if self.declared_teams is not None:
            return list(self.declared_teams)
        from sync.mapping.teams import default_teams

        return self.cached("default_teams", default_teams)  # type: ignore[no-any-return]

    def team_of(self, stage_id: str) -> str | None:
        """The id of the team owning ``stage_id`` (None when no team lists it)."""
        return next((t.id for t in self.teams() if stage_id in t.stages), None)

    def sfa_objects(self) -> tuple[str, ...]:
        """The sales-side objects conditions may name, by increasing weight of evidence."""
        return self.declared_sfa_objects or SFA_OBJECTS

    def person_objects(self) -> tuple[str, ...]:
        """The sales-side objects that hold the person (all but the outcome object)."""
        return person_objects(self.sfa_objects())

    def related_objects(self) -> tuple[str, ...]:
        """The related objects conditions may name (any of the person's records of each counts)."""
        if self.declared_sfa_related is not None:
            return self.declared_sfa_related
        return () if self.declared_sfa_objects is not None else SFA_RELATED

    def sfa_fields(self, obj: str) -> set[str]:
        """Salesforce fields of ``obj`` that this mapping reads (conditions, fields, closed loop, dates).

        For a related object: the fields its stage conditions, entry times, reasons and SLAs name
        (empty when the mapping names none, so the connector need not read the object at all).
        """
        out: set[str] = set()
        for s in self.stages:
            if s.sfa is not None and s.sfa.object == obj:
                out |= s.sfa.fields
            if s.entered_at and s.entered_at.sfa and s.entered_at.sfa.object == obj:
                out.add(s.entered_at.sfa.field)
            if s.reason is not None and s.reason.object == obj:
                out.add(s.reason.field)
        if obj in self.person_objects():
            out |= {f.sfa for f in self.fields if obj in f.sfa_objects and f.sync != "none"}
            out.add(self.identity.sfa_field)
        out |= {
            c.from_.field for c in self.closed_loop if isinstance(c.from_, SfaRef) and c.from_.object == obj
        }
        out |= {ref.field for sla in self.slas for ref in sla.fields or () if ref.object == obj}
        refs = [t.owner for t in self.teams() if t.owner is not None] + ([self.nps] if self.nps else [])
        out |= {ref.field for ref in refs if ref.object == obj}
        return out

    def ma_properties(self) -> set[str]:
        """HubSpot contact properties that this mapping reads."""
        out = {self.identity.ma_property, *self.identity.match_on}
        for s in self.stages:
            if s.ma is not None:
                out |= s.ma.fields
            if s.entered_at:
                out.update(s.entered_at.ma_properties)
        out |= {f.ma for f in self.fields if f.sync != "none"}
        return out
