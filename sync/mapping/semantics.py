"""Cross-reference checks on plain mapping data (stage references, duplicates, conflicts).

They run even when other parts of the document are invalid, so lint reports everything at once;
values of the wrong type are left to the structural (pydantic) checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sync.mapping.errors import Issue
from sync.mapping.model import declared_objects, person_objects
from sync.mapping.suggest import did_you_mean

_BOTH = ("two_way", "prefer_sfa_unless_blank", "prefer_ma_unless_blank")


def _items(data: dict[str, Any], key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    seq = data.get(key)
    if isinstance(seq, list):
        for i, item in enumerate(seq):
            if isinstance(item, dict):
                yield i, item


def check(data: dict[str, Any]) -> list[Issue]:
    """Every cross-reference problem in the document."""
    issues: list[Issue] = []
    ids, success = _check_stages(data, issues)
    _check_labels(data, issues)
    _check_refs(data, ids, success, issues)
    _check_fields(data, issues)
    _check_closed_loop(data, issues)
    _check_teams(data, ids, issues)
    return issues


def _check_teams(data: dict[str, Any], ids: list[str], issues: list[Issue]) -> None:
    """Team stages must exist, and a stage belongs to at most one team (its SLAs' team)."""
    owner_of: dict[str, int] = {}
    team_ids: set[str] = set()
    for i, team in _items(data, "teams"):
        tid = team.get("id")
        if isinstance(tid, str):
            if tid in team_ids:
                issues.append((("teams", i, "id"), f"teams[{i}].id: duplicate team id {tid!r}", "value"))
            team_ids.add(tid)
        stages = team.get("stages")
        if not isinstance(stages, list):
            continue
        for j, sid in enumerate(stages):
            _ref(issues, ("teams", i, "stages", j), sid, ids, f"teams[{i}].stages[{j}]")
            if not isinstance(sid, str):
                continue
            if sid in owner_of:
                issues.append(
                    (
                        ("teams", i, "stages", j),
                        f"teams[{i}].stages[{j}]: stage {sid!r} already belongs to teams[{owner_of[sid]}]; "
                        "a stage belongs to at most one team",
                        "value",
                    )
                )
            owner_of.setdefault(sid, i)


def _check_stages(data: dict[str, Any], issues: list[Issue]) -> tuple[list[str], list[str]]:
    ids: list[str] = []
    success: list[str] = []
    for i, st in _items(data, "stages"):
        sid = st.get("id")
        if not isinstance(sid, str):
            continue
        if sid in ids:
            issues.append((("stages", i, "id"), f"stages[{i}].id: duplicate stage id {sid!r}", "value"))
            continue
        ids.append(sid)
        if st.get("detour") is not True:
            success.append(sid)
    if isinstance(data.get("stages"), list) and data["stages"] and len(success) < 2:
        issues.append(
            (
                ("stages",),
                f"stages: the success path (stages without 'detour: true') needs at least "
                f"2 stages, found {len(success)}",
                "key",
            )
        )
    return ids, success


def _check_labels(data: dict[str, Any], issues: list[Issue]) -> None:
    """Two stages with the same label in one language would read as one stage in every report."""
    seen: dict[tuple[str, str], int] = {}
    for i, st in _items(data, "stages"):
        label = st.get("label")
        if not isinstance(label, dict):
            continue
        for language, text in label.items():
            if not isinstance(text, str):
                continue
            key = (str(language), text.strip().casefold())
            if key in seen:
                issues.append(
                    (
                        ("stages", i, "label", language),
                        f"stages[{i}].label.{language}: {text!r} is already the label of "
                        f"stages[{seen[key]}]; reports could not tell the two stages apart",
                        "value",
                    )
                )
            else:
                seen[key] = i


def _ref(issues: list[Issue], path: tuple[str | int, ...], value: Any, ids: list[str], label: str) -> None:
    if isinstance(value, str) and ids and value not in ids:
        issues.append((path, f"{label}: unknown stage {value!r}{did_you_mean(value, ids)}", "value"))


def _check_refs(data: dict[str, Any], ids: list[str], success: list[str], issues: list[Issue]) -> None:
    handover = data.get("handover")
    if isinstance(handover, dict):
        at = handover.get("at")
        _ref(issues, ("handover", "at"), at, ids, "handover.at")
        if isinstance(at, str) and at in ids and at not in success:
            issues.append(
                (
                    ("handover", "at"),
                    f"handover.at: {at!r} is a detour; hand over on the success path",
                    "value",
                )
            )
    seen: set[str] = set()
    for i, sla in _items(data, "slas"):
        for key in ("from", "to", "stage"):
            _ref(issues, ("slas", i, key), sla.get(key), ids, f"slas[{i}].{key}")
        _check_sla_fields(sla, i, issues)
        if isinstance(sla.get("from"), str) and sla.get("from") == sla.get("to"):
            issues.append((("slas", i, "to"), f"slas[{i}].to: an SLA must end at a different stage", "value"))
        sid = sla.get("id")
        if isinstance(sid, str):
            if sid in seen:
                issues.append((("slas", i, "id"), f"slas[{i}].id: duplicate SLA id {sid!r}", "value"))
            seen.add(sid)


def _check_sla_fields(sla: dict[str, Any], i: int, issues: list[Issue]) -> None:
    """A completeness SLA naming a field twice is a typo (the breach would name it twice)."""
    fields = sla.get("fields")
    if not isinstance(fields, list):
        return
    seen: set[str] = set()
    for j, ref in enumerate(fields):
        if isinstance(ref, str):
            if ref in seen:
                issues.append(
                    (("slas", i, "fields", j), f"slas[{i}].fields[{j}]: {ref!r} is listed twice", "value")
                )
            seen.add(ref)


def _check_fields(data: dict[str, Any], issues: list[Issue]) -> None:
    by_ma: dict[str, tuple[int, Any]] = {}
    by_sfa: dict[str, tuple[int, Any]] = {}
    pairs: set[tuple[str, str]] = set()
    for i, f in _items(data, "fields"):
        ma, sfa, sync = f.get("ma"), f.get("sfa"), f.get("sync")
        where = ("fields", i, "sync") if "sync" in f else ("fields", i)
        if isinstance(ma, str) and isinstance(sfa, str):
            if (ma, sfa) in pairs:
                issues.append((("fields", i), f"fields[{i}]: {ma} ↔ {sfa} is mapped twice", "value"))
                continue
            pairs.add((ma, sfa))
        for name, table, side in ((ma, by_ma, "marketing field"), (sfa, by_sfa, "Salesforce field")):
            if not isinstance(name, str) or sync == "none":
                continue
            if name in table and table[name][1] != sync:
                first, other = table[name]
                issues.append(
                    (
                        where,
                        f"fields[{i}]: {side} {name!r} is mapped again with direction {sync!r}, "
                        f"conflicting with {other!r} in fields[{first}]",
                        "value",
                    )
                )
            table.setdefault(name, (i, sync))
    _check_writers(data, issues)
    mapped = {f.get("ma") for _, f in _items(data, "fields")}
    identity = data.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("match_on"), list):
        for j, key in enumerate(identity["match_on"]):
            if isinstance(key, str) and key not in mapped:
                issues.append(
                    (
                        ("identity", "match_on", j),
                        f"identity.match_on[{j}]: {key!r} is not a marketing "
                        f"(ma) field mapped in 'fields'{did_you_mean(key, [m for m in mapped if m])}",
                        "value",
                    )
                )


def _check_closed_loop(data: dict[str, Any], issues: list[Issue]) -> None:
    targets: dict[str, int] = {}
    written_by_fields = {
        f.get("ma") for _, f in _items(data, "fields") if f.get("sync") in ("sfa_to_ma", *_BOTH)
    }
    for i, c in _items(data, "closed_loop"):
        ma = c.get("ma")
        if not isinstance(ma, str):
            continue
        if ma in targets:
            issues.append(
                (
                    ("closed_loop", i, "ma"),
                    f"closed_loop[{i}].ma: {ma!r} is already written by closed_loop[{targets[ma]}]",
                    "value",
                )
            )
        elif ma in written_by_fields:
            issues.append(
                (
                    ("closed_loop", i, "ma"),
                    f"closed_loop[{i}].ma: {ma!r} is also written by a field mapping from Salesforce",
                    "value",
                )
            )
        targets.setdefault(ma, i)


def _check_writers(data: dict[str, Any], issues: list[Issue]) -> None:
    """Two mappings may not write the same target field (on the same Salesforce object)."""
    writers: dict[tuple[str, str], int] = {}
    for i, f in _items(data, "fields"):
        ma, sfa, sync = f.get("ma"), f.get("sfa"), f.get("sync")
        if not (isinstance(ma, str) and isinstance(sfa, str) and isinstance(sync, str)):
            continue
        given = f.get("sfa_objects")
        objects: list[Any] = (
            given if isinstance(given, list) else list(person_objects(declared_objects(data)))
        )
        targets: list[tuple[str, str, str]] = []
        if sync in ("ma_to_sfa", *_BOTH):
            targets += [("Salesforce field", f"{o}.{sfa}", ma) for o in objects if isinstance(o, str)]
        if sync in ("sfa_to_ma", *_BOTH):
            targets.append(("marketing field", ma, sfa))
        for kind, target, source in targets:
            first = writers.setdefault((kind, target), i)
            if first != i and data["fields"][first].get(_other_side(kind)) != source:
                issues.append(
                    (
                        ("fields", i),
                        f"fields[{i}]: {kind} {target!r} is written by two mappings "
                        f"(fields[{first}] and fields[{i}])",
                        "value",
                    )
                )
                break


def _other_side(kind: str) -> str:
    return "ma" if kind == "Salesforce field" else "sfa"
