"""The sandbox org's metadata: objects, fields, picklists and the default Opportunity stages.

Names, types, lengths and picklist values follow Salesforce's standard objects (Object Reference)
plus the two custom fields Closedloop needs (``Closedloop_Id__c``, ``Loss_Reason__c``) and the sandbox
org's own (the Lead's information sheet, Contact.NPS__c, Account.Customer_Status__c).
"""

from __future__ import annotations

from dataclasses import dataclass, field

API_USER_ID = "005000000000001AAA"  # the integration user behind the API session
SALES_USER_ID = "005000000000002AAA"  # the scripted sales team (in-process helpers)


@dataclass(frozen=True)
class Stage:
    """An OpportunityStage row: default probability and closed/won semantics."""

    name: str
    probability: float
    is_closed: bool
    is_won: bool


# Salesforce's default sales process (Setup > Opportunity Stages).
OPPORTUNITY_STAGES: tuple[Stage, ...] = (
    Stage("Prospecting", 10, False, False),
    Stage("Qualification", 10, False, False),
    Stage("Needs Analysis", 20, False, False),
    Stage("Value Proposition", 50, False, False),
    Stage("Id. Decision Makers", 60, False, False),
    Stage("Perception Analysis", 70, False, False),
    Stage("Proposal/Price Quote", 75, False, False),
    Stage("Negotiation/Review", 90, False, False),
    Stage("Closed Won", 100, True, True),
    Stage("Closed Lost", 0, True, False),
)
STAGES_BY_NAME = {s.name: s for s in OPPORTUNITY_STAGES}

LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
CONVERTED_STATUSES = frozenset({"Closed - Converted"})
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
LOSS_REASONS = ("Price", "Competitor", "No Budget", "No Decision", "Timing", "Product Fit", "Other")
# Default values of a new org plus the sandbox org's own additions (Issue 16: customer success).
ACCOUNT_TYPES = (
    "Prospect",
    "Customer - Direct",
    "Customer - Channel",
    "Channel Partner / Reseller",
    "Installation Partner",
    "Technology Partner",
    "Other",
)
CUSTOMER_STATUSES = ("Onboarding", "Active", "Churned")  # custom Account.Customer_Status__c
OPPORTUNITY_TYPES = (
    "Existing Customer - Upgrade",
    "Existing Customer - Replacement",
    "Existing Customer - Downgrade",
    "New Customer",
    "New Business",  # added by the sandbox org's admin
    "Existing Business - Upgrade",  # added by the sandbox org's admin
)
ACTIVITY_TYPES = ("Call", "Email", "Meeting", "Other", "Kickoff")  # Kickoff: the sandbox org's addition
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
CONTACT_ROLES = (
    "Business User",
    "Decision Maker",
    "Economic Buyer",
    "Economic Decision Maker",
    "Evaluator",
    "Executive Sponsor",
    "Influencer",
    "Technical Buyer",
    "Other",
)


@dataclass(frozen=True)
class FieldDef:
    """One field as ``describe`` reports it."""

    name: str
    type: str  # id, string, email, phone, picklist, boolean, datetime, date, reference, currency, ...
    label: str = ""
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    required: bool = False  # not nillable on create and no default
    external_id: bool = False
    unique: bool = False
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    default: object = None

    def describe(self) -> dict[str, object]:
        """The field as it appears in ``sobjects/{T}/describe``."""
        return {
            "name": self.name,
            "label": self.label or self.name,
            "type": self.type,
            "length": self.length,
            "nillable": self.nillable and not self.required,
            "createable": self.createable,
            "updateable": self.updateable,
            "externalId": self.external_id,
            "unique": self.unique,
            "custom": self.name.endswith("__c"),
            "defaultedOnCreate": self.default is not None or self.name in _SYSTEM_FIELDS,
            "picklistValues": [
                {"active": True, "defaultValue": v == self.default, "label": v, "validFor": None, "value": v}
                for v in self.picklist
            ],
            "restrictedPicklist": self.restricted,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "idLookup": self.name == "Id" or self.external_id,
        }


@dataclass
class ObjectDef:
    """An sObject type: key prefix, fields and what the API may do with it."""

    name: str
    key_prefix: str
    fields: dict[str, FieldDef] = field(default_factory=dict)
    createable: bool = True
    history: bool = False  # a read-only history object
    setup: bool = False  # read-only setup metadata (EntityDefinition, FieldDefinition)

    @property
    def read_only(self) -> bool:
        """Whether the API refuses every write (history and setup objects)."""
        return self.history or self.setup

    def field_ci(self, name: str) -> FieldDef | None:
        """Field by case-insensitive name, as the API resolves them."""
        return self._lower().get(name.lower())

    def relationship_ci(self, name: str) -> FieldDef | None:
        """The reference field whose relationship name matches ``name`` (case-insensitive)."""
        lowered = name.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == lowered:
                return f
        return None

    def _lower(self) -> dict[str, FieldDef]:
        cache: dict[str, FieldDef] | None = getattr(self, "_lower_cache", None)
        if cache is None:
            cache = {k.lower(): v for k, v in self.fields.items()}
            self._lower_cache = cache
        return cache


_SYSTEM_FIELDS = (
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
)


def _ro(name: str, type_: str, **kw: object) -> FieldDef:
    return FieldDef(name, type_, createable=False, updateable=False, **kw)  # type: ignore[arg-type]


def _system(owner: bool = True) -> list[FieldDef]:
    fields = [
        _ro("Id", "id", length=18, nillable=False),
        _ro("IsDeleted", "boolean", nillable=False),
        _ro("CreatedDate", "datetime", nillable=False),
        _ro("CreatedById", "reference", reference_to=("User",), relationship_name="CreatedBy", length=18),
        _ro("LastModifiedDate", "datetime", nillable=False),
        _ro(
            "LastModifiedById",
            "reference",
            reference_to=("User",),
            relationship_name="LastModifiedBy",
            length=18,
        ),
        _ro("SystemModstamp", "datetime", nillable=False),
    ]
    if owner:
        fields.append(
            FieldDef("OwnerId", "reference", length=18, reference_to=("User",), relationship_name="Owner")
        )
    return fields


def _obj(name: str, prefix: str, fields: list[FieldDef], owner: bool = True, **kw: bool) -> ObjectDef:
    all_fields = _system(owner) + fields
    return ObjectDef(name, prefix, {f.name: f for f in all_fields}, **kw)


def _ref(name: str, target: str | tuple[str, ...], rel: str, **kw: object) -> FieldDef:
    targets = (target,) if isinstance(target, str) else target
    return FieldDef(name, "reference", length=18, reference_to=targets, relationship_name=rel, **kw)  # type: ignore[arg-type]


def _closedloop_id() -> FieldDef:
    return FieldDef("Closedloop_Id__c", "string", "Closedloop ID", length=64, external_id=True, unique=True)


def build_schema() -> dict[str, ObjectDef]:
    """A fresh copy of the org's objects, keyed by API name."""
    lead = _obj(
        "Lead",
        "00Q",
        [
            FieldDef("FirstName", "string", "First Name", length=40),
            FieldDef("LastName", "string", "Last Name", length=80, required=True),
            _ro("Name", "string", label="Full Name", length=121),
            FieldDef("Company", "string", "Company", length=255, required=True),
            FieldDef("Email", "email", "Email", length=80),
            FieldDef("Phone", "phone", "Phone", length=40),
            FieldDef("Title", "string", "Title", length=128),
            FieldDef(
                "Status",
                "picklist",
                "Lead Status",
                length=255,
                picklist=LEAD_STATUSES,
                restricted=True,
                default="Open - Not Contacted",
                nillable=False,
            ),
            FieldDef("LeadSource", "picklist", "Lead Source", length=255, picklist=LEAD_SOURCES),
            FieldDef("Rating", "picklist", "Rating", length=255, picklist=("Hot", "Warm", "Cold")),
            _ro("IsConverted", "boolean", label="Converted", nillable=False),
            _ro("ConvertedDate", "date", label="Converted Date"),
            _ro(
                "ConvertedContactId",
                "reference",
                length=18,
                reference_to=("Contact",),
                relationship_name="ConvertedContact",
            ),
            _ro(
                "ConvertedAccountId",
                "reference",
                length=18,
                reference_to=("Account",),
                relationship_name="ConvertedAccount",
            ),
            _ro(
                "ConvertedOpportunityId",
                "reference",
                length=18,
                reference_to=("Opportunity",),
                relationship_name="ConvertedOpportunity",
            ),
            _closedloop_id(),
            # The inside sales "customer information sheet" (BANT + first meeting), custom fields.
            FieldDef("Budget__c", "currency", "Budget"),
            FieldDef("Authority__c", "string", "Authority", length=80),
            FieldDef("Need__c", "string", "Need", length=255),
            FieldDef("Timeline__c", "string", "Timeline", length=80),
            FieldDef("Meeting_Date__c", "datetime", "Meeting Date"),
        ],
    )
    contact = _obj(
        "Contact",
        "003",
        [
            FieldDef("FirstName", "string", "First Name", length=40),
            FieldDef("LastName", "string", "Last Name", length=80, required=True),
            _ro("Name", "string", label="Full Name", length=121),
            FieldDef("Email", "email", "Email", length=80),
            FieldDef("Phone", "phone", "Phone", length=40),
            FieldDef("Title", "string", "Title", length=128),
            FieldDef("LeadSource", "picklist", "Lead Source", length=255, picklist=LEAD_SOURCES),
            _ref("AccountId", "Account", "Account"),
            _closedloop_id(),
            FieldDef("NPS__c", "double", "NPS"),  # Number(2, 0): a 0-10 Net Promoter score
        ],
    )
    account = _obj(
        "Account",
        "001",
        [
            FieldDef("Name", "string", "Account Name", length=255, required=True),
            FieldDef("Type", "picklist", "Account Type", length=255, picklist=ACCOUNT_TYPES),
            FieldDef(
                "Customer_Status__c",
                "picklist",
                "Customer Status",
                length=255,
                picklist=CUSTOMER_STATUSES,
                restricted=True,
            ),
            FieldDef("Kickoff_Date__c", "date", "Kickoff Date"),
        ],
    )
    opportunity = _obj(
        "Opportunity",
        "006",
        [
            FieldDef("Name", "string", "Name", length=120, required=True),
            _ref("AccountId", "Account", "Account"),
            FieldDef(
                "StageName",
                "picklist",
                "Stage",
                length=255,
                required=True,
                restricted=True,
                picklist=tuple(s.name for s in OPPORTUNITY_STAGES),
            ),
            FieldDef("Amount", "currency", "Amount"),
            FieldDef("Probability", "percent", "Probability (%)"),
            FieldDef("CloseDate", "date", "Close Date", required=True),
            _ro("IsClosed", "boolean", label="Closed", nillable=False),
            _ro("IsWon", "boolean", label="Won", nillable=False),
            FieldDef("LeadSource", "picklist", "Lead Source", length=255, picklist=LEAD_SOURCES),
            FieldDef("Type", "picklist", "Opportunity Type", length=255, picklist=OPPORTUNITY_TYPES),
            FieldDef(
                "Loss_Reason__c",
                "picklist",
                "Loss Reason",
                length=255,
                picklist=LOSS_REASONS,
                restricted=True,
            ),
            _ref("CampaignId", "Campaign", "Campaign"),
        ],
    )
    ocr = _obj(
        "OpportunityContactRole",
        "00K",
        [
            _ref("OpportunityId", "Opportunity", "Opportunity", required=True),
            _ref("ContactId", "Contact", "Contact", required=True),
            FieldDef("Role", "picklist", "Role", length=40, picklist=CONTACT_ROLES),
            FieldDef("IsPrimary", "boolean", "Primary", nillable=False, default=False),
        ],
        owner=False,
    )
    task = _obj(
        "Task",
        "00T",
        [
            _ref("WhoId", ("Lead", "Contact"), "Who"),
            _ref("WhatId", ("Account", "Opportunity"), "What"),
            FieldDef("Subject", "combobox", "Subject", length=255),
            FieldDef(
                "Status",
                "picklist",
                "Status",
                length=255,
                picklist=TASK_STATUSES,
                restricted=True,
                default="Not Started",
                nillable=False,
            ),
            FieldDef(
                "Priority",
                "picklist",
                "Priority",
                length=40,
                picklist=("High", "Normal", "Low"),
                default="Normal",
            ),
            FieldDef("ActivityDate", "date", "Due Date Only"),
            FieldDef("Type", "picklist", "Type", length=40, picklist=ACTIVITY_TYPES),
            FieldDef("Description", "textarea", "Description", length=32000),
        ],
    )
    event = _obj(
        "Event",
        "00U",
        [
            _ref("WhoId", ("Lead", "Contact"), "Who"),
            _ref("WhatId", ("Account", "Opportunity"), "What"),
            FieldDef("Subject", "combobox", "Subject", length=255),
            FieldDef("Type", "picklist", "Type", length=40, picklist=ACTIVITY_TYPES),
            FieldDef("StartDateTime", "datetime", "Start Date Time"),
            FieldDef("EndDateTime", "datetime", "End Date Time"),
            FieldDef("DurationInMinutes", "int", "Duration"),
            FieldDef("IsAllDayEvent", "boolean", "All-Day Event", nillable=False, default=False),
            _ro("ActivityDate", "date", label="Due Date Only"),
            _ro("ActivityDateTime", "datetime", label="Due Date Time"),
            FieldDef("Description", "textarea", "Description", length=32000),
        ],
    )
    user = _obj(
        "User",
        "005",
        [
            FieldDef("Username", "string", "Username", length=80, required=True, unique=True),
            FieldDef("FirstName", "string", "First Name", length=40),
            FieldDef("LastName", "string", "Last Name", length=80, required=True),
            _ro("Name", "string", label="Full Name", length=121),
            FieldDef("Email", "email", "Email", length=128, required=True),
            FieldDef("Alias", "string", "Alias", length=8, required=True),
            FieldDef("Title", "string", "Title", length=80),
            FieldDef("Department", "string", "Department", length=80),
            FieldDef("IsActive", "boolean", "Active", nillable=False, default=True),
        ],
        owner=False,
    )
    lead_history = _obj(
        "LeadHistory",
        "017",
        [
            _ro("LeadId", "reference", length=18, reference_to=("Lead",), relationship_name="Lead"),
            _ro("Field", "picklist", length=255),
            _ro("OldValue", "anyType"),
            _ro("NewValue", "anyType"),
        ],
        owner=False,
        createable=False,
        history=True,
    )
    opp_history = _obj(
        "OpportunityHistory",
        "008",
        [
            _ro(
                "OpportunityId",
                "reference",
                length=18,
                reference_to=("Opportunity",),
                relationship_name="Opportunity",
            ),
            _ro("StageName", "picklist", length=255),
            _ro("Amount", "currency"),
            _ro("Probability", "percent"),
            _ro("CloseDate", "date"),
        ],
        owner=False,
        createable=False,
        history=True,
    )
    account_history = _obj(
        "AccountHistory",
        "01A",  # real orgs: 017, like every field history object (see OpportunityFieldHistory)
        [
            _ro("AccountId", "reference", length=18, reference_to=("Account",), relationship_name="Account"),
            _ro("Field", "picklist", length=255),
            _ro("OldValue", "anyType"),
            _ro("NewValue", "anyType"),
        ],
        owner=False,
        createable=False,
        history=True,
    )
    opp_field_history = _obj(
        "OpportunityFieldHistory",
        # Real orgs give every field history object the key prefix 017; the sandbox resolves an ID's
        # object from its prefix, so this one gets its own.
        "01F",
        [
            _ro(
                "OpportunityId",
                "reference",
                length=18,
                reference_to=("Opportunity",),
                relationship_name="Opportunity",
            ),
            _ro("Field", "picklist", length=255),
            _ro("OldValue", "anyType"),
            _ro("NewValue", "anyType"),
        ],
        owner=False,
        createable=False,
        history=True,
    )
    objects = [lead, contact, account, opportunity, ocr, task, event, user]
    objects += [lead_history, account_history, opp_history, opp_field_history]
    objects += _setup_objects()
    return {o.name: o for o in objects}


def _setup_objects() -> list[ObjectDef]:
    """EntityDefinition and FieldDefinition: setup metadata as rows (Tooling API / SOQL, API 45.0+)."""
    entity = ObjectDef(
        "EntityDefinition",
        "0EN",
        {
            f.name: f
            for f in (
                _ro("Id", "id", length=18, nillable=False),
                _ro("DurableId", "string", length=70),
                _ro("QualifiedApiName", "string", length=250),
                _ro("DeveloperName", "string", length=40),
                _ro("Label", "string", length=40),
            )
        },
        createable=False,
        setup=True,
    )
    definition = ObjectDef(
        "FieldDefinition",
        "0FD",
        {
            f.name: f
            for f in (
                _ro("Id", "id", length=18, nillable=False),
                _ro("DurableId", "string", length=255),
                _ro("QualifiedApiName", "string", length=250),
                _ro("DeveloperName", "string", length=40),
                _ro("Label", "string", length=40),
                _ro("DataType", "string", length=255),
                _ro(
                    "EntityDefinitionId",
                    "reference",
                    length=18,
                    reference_to=("EntityDefinition",),
                    relationship_name="EntityDefinition",
                ),
                _ro("IsFieldHistoryTracked", "boolean", nillable=False),
            )
        },
        createable=False,
        setup=True,
    )
    return [entity, definition]


# The sandbox org's initial field history tracking (Setup > Object Manager > Fields & Relationships >
# Set History Tracking): changes of these fields write LeadHistory / OpportunityFieldHistory rows. The
# set is a per-org setting; :meth:`Store.set_history_tracking` changes it.
LEAD_TRACKED = ("Status", "OwnerId", "Rating", "LeadSource", "Email", "Company", "Closedloop_Id__c")
OPPORTUNITY_FIELD_TRACKED = ("StageName", "Amount", "CloseDate", "OwnerId")
ACCOUNT_TRACKED = ("Customer_Status__c", "OwnerId")
# "You can select up to 20 standard and custom fields per object" (Salesforce Help, Field History
# Tracking); Field Audit Trail raises it to 60, which the sandbox does not emulate.
MAX_TRACKED_FIELDS = 20
# Any change of these writes an OpportunityHistory snapshot, whatever the tracking settings
# (Object Reference: OpportunityHistory).
OPPORTUNITY_TRACKED = ("StageName", "Amount", "CloseDate", "Probability")
# Objects whose field history the sandbox can track, with their history object and parent field.
HISTORY_OBJECTS = {
    "Lead": ("LeadHistory", "LeadId"),
    "Account": ("AccountHistory", "AccountId"),
    "Opportunity": ("OpportunityFieldHistory", "OpportunityId"),
}
