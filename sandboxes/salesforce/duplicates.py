"""Duplicate management: the org's standard duplicate and matching rules for Leads and Contacts.

Salesforce Help, "Standard Lead Duplicate Rule" / "Standard Contact Duplicate Rule" (orgs created in
Summer '17 or later): active by default; each matches its own object *and* the other one (Standard
Lead Matching Rule + Standard Contact Matching Rule); action on create "Allow" with an alert, on edit
"Allow" with a report only. Metadata API, "DuplicateRule": for an API insert an alerting Allow rule
returns an error unless the DuplicateRuleHeader sets ``allowSave``; a Block rule always refuses.
REST API Developer Guide, "Duplicate Rule Header" (``Sforce-Duplicate-Rule-Header``, API 52.0+).

Matching: the standard matching rules' Email criterion (exact, blanks never match), compared
case-insensitively. The fuzzy name/company/phone criteria of the standard rules are not emulated.
Converted Leads and deleted records are never offered as duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MIN_HEADER_VERSION = 52.0
DEFAULT_ALERT = "Use one of these records?"


@dataclass(frozen=True)
class DuplicateHeader:
    """``Sforce-Duplicate-Rule-Header`` options (all false by default)."""

    allow_save: bool = False
    include_record_details: bool = False
    run_as_current_user: bool = False
    version: str = "59.0"  # the request's API version, for the matched records' attribute URLs

    @classmethod
    def parse(cls, value: str | None, version: str) -> DuplicateHeader:
        """Parse ``allowSave=true; includeRecordDetails=true``; ignored before API 52.0."""
        if not value or float(version) < MIN_HEADER_VERSION:
            return cls(version=version)
        options: dict[str, bool] = {}
        for part in value.split(";"):
            key, _, raw = part.partition("=")
            options[key.strip().lower()] = raw.strip().lower() == "true"
        return cls(
            allow_save=options.get("allowsave", False),
            include_record_details=options.get("includerecorddetails", False),
            run_as_current_user=options.get("runascurrentuser", False),
            version=version,
        )


@dataclass(frozen=True)
class MatchingRule:
    """A matching rule: its developer name, the object it searches, the (exact) fields it compares."""

    name: str
    sobject: str
    fields: tuple[str, ...] = ("Email",)


LEAD_MATCHING = MatchingRule("Standard_Lead_Match_Rule_v1_0", "Lead")
CONTACT_MATCHING = MatchingRule("Standard_Contact_Match_Rule_v1_1", "Contact")


@dataclass
class DuplicateRule:
    """A duplicate rule on ``sobject``: which matching rules run and what happens on insert/update."""

    name: str
    sobject: str
    matching: tuple[MatchingRule, ...]
    active: bool = True
    action_on_insert: str = "Allow"  # Allow | Block
    alert_on_insert: bool = True
    action_on_update: str = "Allow"
    alert_on_update: bool = False  # the standard rules only report duplicates created by an edit
    alert_text: str = DEFAULT_ALERT

    def blocks(self, creating: bool, header: DuplicateHeader) -> bool:
        """Whether a match refuses the save under ``header``."""
        action, alert = (
            (self.action_on_insert, self.alert_on_insert)
            if creating
            else (self.action_on_update, self.alert_on_update)
        )
        if action == "Block":
            return True
        return alert and not header.allow_save

    def allow_save(self, creating: bool) -> bool:
        """``duplicateResult.allowSave``: whether the caller may save anyway with the header."""
        return (self.action_on_insert if creating else self.action_on_update) == "Allow"


def standard_rules() -> dict[str, DuplicateRule]:
    """The standard Lead and Contact duplicate rules of a new org, keyed by developer name."""
    rules = [
        DuplicateRule("Standard_Lead_Duplicate_Rule", "Lead", (LEAD_MATCHING, CONTACT_MATCHING)),
        DuplicateRule("Standard_Contact_Duplicate_Rule", "Contact", (CONTACT_MATCHING, LEAD_MATCHING)),
    ]
    return {r.name: r for r in rules}


# (sobject, field, casefolded value) -> candidate record ids
Candidates = Callable[[str, str, str], Iterable[str]]


@dataclass
class DuplicateChecker:
    """Runs the active rules of an object against a record about to be saved."""

    rules: dict[str, DuplicateRule] = field(default_factory=standard_rules)

    def indexed_fields(self) -> set[tuple[str, str]]:
        """Every (object, field) a matching rule compares: the store keeps these indexed."""
        return {(m.sobject, f) for r in self.rules.values() for m in r.matching for f in m.fields}

    def check(
        self,
        sobject: str,
        record: dict[str, Any],
        creating: bool,
        header: DuplicateHeader,
        candidates: Candidates,
        live: Callable[[str, str], dict[str, Any] | None],
        render: Callable[[str, dict[str, Any], bool], dict[str, Any]],
    ) -> dict[str, Any] | None:
        """The ``duplicateResult`` of the first active rule that refuses this save, or None."""
        for rule in self.rules.values():
            if not rule.active or rule.sobject != sobject or not rule.blocks(creating, header):
                continue
            match_results = []
            for matching in rule.matching:
                found = _matches(matching, record, candidates, live)
                if found:
                    match_results.append(
                        {
                            "entityType": matching.sobject,
                            "errors": [],
                            "matchEngine": "FuzzyMatchEngine",
                            "matchRecords": [
                                {
                                    "additionalInformation": [],
                                    "fieldDiffs": [],
                                    "matchConfidence": 100.0,
                                    "record": render(matching.sobject, r, header.include_record_details),
                                }
                                for r in found
                            ],
                            "rule": matching.name,
                            "size": len(found),
                            "success": True,
                        }
                    )
            if match_results:
                return {
                    "allowSave": rule.allow_save(creating),
                    "duplicateRule": rule.name,
                    "duplicateRuleEntityType": rule.sobject,
                    "errorMessage": rule.alert_text,
                    "matchResults": match_results,
                }
        return None


def _matches(
    matching: MatchingRule,
    record: dict[str, Any],
    candidates: Candidates,
    live: Callable[[str, str], dict[str, Any] | None],
) -> list[dict[str, Any]]:
    keys = {f: _key(record.get(f)) for f in matching.fields}
    if any(k is None for k in keys.values()):  # blank fields never match
        return []
    first_field = matching.fields[0]
    found = []
    for rid in candidates(matching.sobject, first_field, str(keys[first_field])):
        other = live(matching.sobject, rid)
        if other is None or rid == record["Id"] or other.get("IsConverted"):
            continue
        if all(_key(other.get(f)) == k for f, k in keys.items()):
            found.append(other)
    return found


def _key(value: Any) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    return str(value).strip().casefold()
