"""A seeded, realistic HubSpot contact population for the sandboxes, demo and tests.

Contacts come from several campaigns (stock ``hs_analytics_source`` plus the campaign name in the
stock drill-down property ``hs_analytics_source_data_1``), with a ``hubspotscore`` distribution
tuned so that about ``mql_share`` of them reach the MQL threshold (DOMAIN.md: 340 leads x 50% =
170 MQLs). Some MQLs qualify at creation, others later, when their score crosses the threshold.

Emails are deliberately messy the way real form fills are (mixed case, surrounding spaces,
full-width characters in the "ja" locale) but unique after NFKC + trim + lower.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Literal, Protocol

from sandboxes.common import SimClock

Locale = Literal["en", "ja", "mixed"]

MQL_THRESHOLD = 50
DEFAULT_START = datetime(2026, 10, 1, tzinfo=UTC)
_SCORE_SD = 18.0


@dataclass(frozen=True)
class Campaign:
    """One marketing campaign: its name, stock HubSpot source and how warm its leads are."""

    name: str
    source: str
    weight: float
    score_bias: float
    sales_quality: float = 1.0  # how well its MQLs qualify and close, relative to the average


# Biases average to ~0 over the weights, so the overall MQL share stays as configured.
CAMPAIGNS: tuple[Campaign, ...] = (
    Campaign("google-ads-sfa-integration", "PAID_SEARCH", 0.22, 4.0, 0.95),
    Campaign("seo-blog-the-model", "ORGANIC_SEARCH", 0.18, -6.0, 0.85),
    Campaign("newsletter-2026-autumn", "EMAIL_MARKETING", 0.14, -8.0, 0.55),
    Campaign("webinar-closed-loop-marketing", "EMAIL_MARKETING", 0.10, 8.0, 1.0),
    Campaign("linkedin-abm-enterprise", "SOCIAL_MEDIA", 0.12, 0.0, 0.75),
    Campaign("partner-referral-program", "REFERRALS", 0.08, 12.0, 1.5),
    Campaign("saas-expo-tokyo-2026", "OFFLINE", 0.10, 2.0, 1.0),
    Campaign("direct", "DIRECT_TRAFFIC", 0.06, -5.0, 0.85),
)


@dataclass(frozen=True)
class PlannedContact:
    """A contact the population will create in HubSpot, with its planned timeline."""

    key: str
    firstname: str
    lastname: str
    email: str  # as typed into the form: may be messy; see ``normalised_email``
    company: str
    jobtitle: str
    phone: str
    source: str
    campaign: str
    score: int
    created_at: datetime
    mql_at: datetime | None  # None: never becomes an MQL
    initial_score: int  # score at creation (below the threshold when the MQL comes later)
    locale: Literal["en", "ja"]

    @property
    def normalised_email(self) -> str:
        """The email as the sync must normalise it: NFKC, trimmed, lower-cased."""
        return normalise_email(self.email)

    @property
    def is_mql(self) -> bool:
        """Whether the contact reaches the MQL threshold at some point."""
        return self.mql_at is not None

    def creation_properties(self) -> dict[str, str | None]:
        """HubSpot properties at creation (an MQL at creation already carries its stage)."""
        mql_now = self.mql_at is not None and self.mql_at <= self.created_at
        return {
            "email": self.email,
            "firstname": self.firstname,
            "lastname": self.lastname,
            "company": self.company,
            "jobtitle": self.jobtitle,
            "phone": self.phone,
            "hs_analytics_source": self.source,
            "hs_analytics_source_data_1": self.campaign,
            "hubspotscore": str(self.score if mql_now else self.initial_score),
            "lifecyclestage": "marketingqualifiedlead" if mql_now else "lead",
        }

    def mql_properties(self) -> dict[str, str | None]:
        """The update that makes a later MQL: the score crosses the threshold."""
        return {"hubspotscore": str(self.score), "lifecyclestage": "marketingqualifiedlead"}


def normalise_email(value: str) -> str:
    """NFKC + trim + lower: the normalisation the sync applies to match people."""
    return unicodedata.normalize("NFKC", value).strip().lower()


# ---------------------------------------------------------------------------------------------
# Name material. Japanese entries carry a romanisation for the email address.

_EN_FIRST = (
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Daniel",
    "Karen",
    "Siobhan",
    "Sean",
    "Aoife",
    "Liam",
    "Chloe",
    "Noah",
    "Priya",
    "Wei",
    "Fatima",
    "Mateo",
)
_EN_LAST = (
    "O'Brien",
    "D'Angelo",
    "O'Neil",
    "O'Connor",
    "D'Souza",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Martinez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "McDonald",
    "Smith-Jones",
    "Nguyen",
    "Patel",
    "Kowalski",
    "Fitzgerald",
    "Van der Berg",
)
_EN_COMPANIES = (
    ("Macy's", "macys"),
    ("Acme Corp", "acme"),
    ("Globex Inc.", "globex"),
    ("Initech", "initech"),
    ("Ben & Jerry's", "benjerrys"),
    ("Stark Industries", "stark"),
    ("Wayne Enterprises", "wayne"),
    ("Umbrella Ltd", "umbrella"),
    ("Hooli", "hooli"),
    ("Pied Piper", "piedpiper"),
    ("O'Reilly Analytics", "oreilly-analytics"),
    ("Northwind Traders", "northwind"),
    ("Contoso", "contoso"),
    ("Fabrikam", "fabrikam"),
    ("Tailspin Toys", "tailspin"),
)
_EN_TITLES = (
    "Marketing Manager",
    "VP Sales",
    "Head of Growth",
    "Sales Operations Analyst",
    "CMO",
    "Demand Generation Lead",
    "Revenue Operations Manager",
    "IT Director",
    "CEO",
    "Account Executive",
)

_JA_LAST = (
    ("山田", "yamada"),
    ("佐藤", "sato"),
    ("鈴木", "suzuki"),
    ("高橋", "takahashi"),
    ("田中", "tanaka"),
    ("伊藤", "ito"),
    ("渡辺", "watanabe"),
    ("中村", "nakamura"),
    ("小林", "kobayashi"),
    ("加藤", "kato"),
    ("吉田", "yoshida"),
    ("山本", "yamamoto"),
    ("斎藤", "saito"),
    ("松本", "matsumoto"),
    ("井上", "inoue"),
)
_JA_FIRST = (
    ("太郎", "taro"),
    ("花子", "hanako"),
    ("翔太", "shota"),
    ("陽菜", "hina"),
    ("健一", "kenichi"),
    ("美咲", "misaki"),
    ("大輔", "daisuke"),
    ("さくら", "sakura"),
    ("蓮", "ren"),
    ("結衣", "yui"),
    ("直樹", "naoki"),
    ("由美", "yumi"),
    ("拓也", "takuya"),
    ("愛", "ai"),
    ("誠", "makoto"),
)
_JA_COMPANIES = (
    ("株式会社サンプル", "sample"),
    ("ＡＢＣ商事", "abc-shoji"),
    ("山田製作所株式会社", "yamada-ss"),
    ("株式会社ネクストソリューションズ", "next-sol"),
    ("東京ロジスティクス株式会社", "tokyo-logi"),
    ("株式会社ＸＹＺテクノロジー", "xyz-tech"),
    ("みらい銀行", "mirai-bank"),
    ("合同会社クラウドワークス", "cloudworks"),
    ("株式会社さくらマーケティング", "sakura-mkt"),
    ("大阪精機株式会社", "osaka-seiki"),
    ("株式会社グローバルＨＲ", "global-hr"),
    ("北海道フーズ株式会社", "hokkaido-foods"),
)
_JA_TITLES = (
    "営業部長",
    "マーケティング部 課長",
    "インサイドセールス担当",
    "情報システム部 部長",
    "代表取締役",
    "経営企画室 室長",
    "営業企画 主任",
    "カスタマーサクセス マネージャー",
    "ＣＭＯ",
    "事業開発部 担当",
)


def _full_width(text: str) -> str:
    """ASCII → full-width forms (what NFKC folds back)."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def _mixed_case(text: str, rng: random.Random) -> str:
    """Capitalise each dot/at-separated part, or the whole thing, like people type them."""
    style = rng.random()
    if style < 0.3:
        return text.upper()
    parts: list[str] = []
    for chunk in text.replace("@", "\0@\0").replace(".", "\0.\0").split("\0"):
        parts.append(chunk.capitalize() if chunk not in ("@", ".") and rng.random() < 0.7 else chunk)
    return "".join(parts)


def _messy_ja_email(canonical: str, rng: random.Random) -> str:
    """Mixed case, surrounding spaces and (sometimes) full-width characters.

    The "@" and the domain's dots stay ASCII: HubSpot rejects an address without them
    (INVALID_EMAIL), while full-width letters elsewhere get through and must be NFKC-folded.
    """
    local, domain = canonical.split("@", 1)
    roll = rng.random()
    if roll < 0.3:
        local = _full_width(local)  # "ｔａｒｏ@example.jp"
    elif roll < 0.4:
        local = _full_width(local)
        domain = ".".join(_full_width(label) for label in domain.split("."))
    text = local + "@" + domain
    text = _mixed_case(text, rng) if rng.random() < 0.7 else text
    spaces = rng.choice(["", " ", "  ", "\u3000", " \t"])  # ideographic space is NFKC-folded to " "
    return spaces + text + rng.choice(["", " ", "  "])


def _messy_en_email(canonical: str, rng: random.Random) -> str:
    """English forms are tidier: some capitalisation, occasionally a trailing space."""
    text = _mixed_case(canonical, rng) if rng.random() < 0.35 else canonical
    return text + (" " if rng.random() < 0.1 else "")


def _local_part(first: str, last: str, rng: random.Random) -> str:
    first_ascii = "".join(ch for ch in first.lower() if ch.isalnum())
    # Apostrophes are legal in the local part (RFC 5322) and show up in real data: keep some.
    last_clean = last.lower().replace(" ", "")
    if rng.random() < 0.6:
        last_clean = "".join(ch for ch in last_clean if ch.isalnum() or ch == "-")
    style = rng.random()
    if style < 0.6:
        return f"{first_ascii}.{last_clean}"
    if style < 0.8:
        return f"{first_ascii[0]}{last_clean}"
    return f"{first_ascii}{last_clean}"


def _phone(locale: Literal["en", "ja"], rng: random.Random) -> str:
    if locale == "ja":
        number = f"0{rng.choice([3, 6, 45, 52, 90])}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
        return _full_width(number) if rng.random() < 0.3 else number
    return f"+1 {rng.randint(201, 989)}-555-{rng.randint(100, 199):04d}"


@dataclass(frozen=True)
class _Person:
    first: str
    last: str
    company: str
    title: str
    canonical_local: str
    domain: str


def _person(locale: Literal["en", "ja"], rng: random.Random) -> _Person:
    if locale == "ja":
        (last, last_r), (first, first_r) = rng.choice(_JA_LAST), rng.choice(_JA_FIRST)
        company, stem = rng.choice(_JA_COMPANIES)
        local = f"{first_r}.{last_r}" if rng.random() < 0.7 else f"{last_r}-{first_r[0]}"
        domain = rng.choice([f"{stem}.example.co.jp", f"{stem}.example.jp"])
        return _Person(first, last, company, rng.choice(_JA_TITLES), local, domain)
    first, last = rng.choice(_EN_FIRST), rng.choice(_EN_LAST)
    company, stem = rng.choice(_EN_COMPANIES)
    return _Person(
        first, last, company, rng.choice(_EN_TITLES), _local_part(first, last, rng), f"{stem}.example.com"
    )


def generate_population(
    n: int,
    seed: int,
    locale: Locale = "en",
    start: datetime = DEFAULT_START,
    span_days: int = 30,
    *,
    mql_share: float = 0.5,
    late_mql_share: float = 0.35,
    campaigns: Sequence[Campaign] = CAMPAIGNS,
) -> list[PlannedContact]:
    """``n`` contacts created over ``span_days`` from ``start``, deterministic for ``seed``.

    About ``mql_share`` reach ``hubspotscore`` >= 50; of those, ``late_mql_share`` cross the
    threshold some hours or days after creation instead of at creation. Sorted by creation time.
    """
    if n < 0 or span_days <= 0 or not 0.0 < mql_share < 1.0:
        raise ValueError("need n >= 0, span_days > 0 and 0 < mql_share < 1")
    rng = random.Random(seed)
    # Mean chosen so P(round(score) >= threshold) == mql_share for an unbiased campaign.
    mean = MQL_THRESHOLD - 0.5 - NormalDist().inv_cdf(1.0 - mql_share) * _SCORE_SD
    weights = [c.weight for c in campaigns]
    span = timedelta(days=span_days)
    seen: set[str] = set()
    drafts: list[tuple[datetime, PlannedContact]] = []
    for _ in range(n):
        person_locale: Literal["en", "ja"] = (
            ("ja" if rng.random() < 0.5 else "en") if locale == "mixed" else locale
        )
        person = _person(person_locale, rng)
        canonical = _unique_email(person.canonical_local, person.domain, seen)
        messy = (_messy_ja_email if person_locale == "ja" else _messy_en_email)(canonical, rng)
        campaign = rng.choices(list(campaigns), weights)[0]
        score = int(round(min(100.0, max(0.0, rng.gauss(mean + campaign.score_bias, _SCORE_SD)))))
        created = start + span * rng.random()
        created = created.replace(microsecond=0)
        mql_at: datetime | None = None
        initial = score
        if score >= MQL_THRESHOLD:
            mql_at = created
            if rng.random() < late_mql_share:
                mql_at = created + timedelta(hours=rng.uniform(1.0, 7 * 24.0))
                mql_at = mql_at.replace(microsecond=0)
                initial = rng.randint(5, MQL_THRESHOLD - 1)
        drafts.append(
            (
                created,
                PlannedContact(
                    key="",
                    firstname=person.first,
                    lastname=person.last,
                    email=messy,
                    company=person.company,
                    jobtitle=person.title,
                    phone=_phone(person_locale, rng),
                    source=campaign.source,
                    campaign=campaign.name,
                    score=score,
                    created_at=created,
                    mql_at=mql_at,
                    initial_score=initial,
                    locale=person_locale,
                ),
            )
        )
    drafts.sort(key=lambda pair: pair[0])
    width = max(5, len(str(n)))
    return [_with_key(contact, f"c{i + 1:0{width}d}") for i, (_t, contact) in enumerate(drafts)]


def _with_key(contact: PlannedContact, key: str) -> PlannedContact:
    return replace(contact, key=key)


def _unique_email(local: str, domain: str, seen: set[str]) -> str:
    candidate, suffix = f"{local}@{domain}", 1
    while normalise_email(candidate) in seen:
        suffix += 1
        candidate = f"{local}{suffix}@{domain}"
    seen.add(normalise_email(candidate))
    return candidate


# ---------------------------------------------------------------------------------------------
# Seeding into the HubSpot sandbox


class HubSpotSeedTarget(Protocol):
    """The part of ``HubSpotSandbox`` the seeder uses."""

    def seed_contact(self, properties: dict[str, str | None]) -> str: ...

    def update_contact(self, contact_id: str, properties: dict[str, str | None]) -> None: ...


@dataclass(frozen=True)
class SeedEvent:
    """One planned HubSpot write: the creation of a contact or its later MQL update."""

    at: datetime
    key: str
    kind: Literal["create", "mql"]


class PopulationSeeder:
    """Writes a population into HubSpot as simulated time passes (creation, then late MQLs).

    ``run_due`` performs every event due by ``now``; ``ids`` maps planned keys to contact ids and
    ``done_at`` records when each event really happened (the clock when it was written).
    """

    def __init__(
        self, hubspot: HubSpotSeedTarget, contacts: Iterable[PlannedContact], clock: SimClock
    ) -> None:
        self.hubspot = hubspot
        self.clock = clock
        self.contacts: dict[str, PlannedContact] = {c.key: c for c in contacts}
        events: list[SeedEvent] = []
        for c in self.contacts.values():
            events.append(SeedEvent(c.created_at, c.key, "create"))
            if c.mql_at is not None and c.mql_at > c.created_at:
                events.append(SeedEvent(c.mql_at, c.key, "mql"))
        # Stable: a creation always precedes its own MQL update (strictly later time).
        self._events = sorted(events, key=lambda e: (e.at, e.kind != "create", e.key))
        self._next = 0
        self.ids: dict[str, str] = {}
        self.done_at: dict[tuple[str, str], datetime] = {}

    def pending(self) -> int:
        """Events not yet written."""
        return len(self._events) - self._next

    def next_due(self) -> datetime | None:
        """When the next event is due, or None when all are written."""
        return self._events[self._next].at if self._next < len(self._events) else None

    def run_due(self, now: datetime | None = None) -> int:
        """Write every event due by ``now`` (default: the clock's now), in time order."""
        limit = now or self.clock.now()
        done = 0
        while self._next < len(self._events) and self._events[self._next].at <= limit:
            self._apply(self._events[self._next])
            self._next += 1
            done += 1
        return done

    def run_all(self) -> dict[str, str]:
        """Write everything, moving the clock forward to each event's time first."""
        while (due := self.next_due()) is not None:
            advance_clock_to(self.clock, due)
            self.run_due(max(due, self.clock.now()))
        return self.ids

    def mql_times(self) -> dict[str, datetime]:
        """Per planned key, when the contact really became an MQL in HubSpot."""
        out: dict[str, datetime] = {}
        for key, contact in self.contacts.items():
            if contact.mql_at is None:
                continue
            kind = "mql" if contact.mql_at > contact.created_at else "create"
            if (key, kind) in self.done_at:
                out[key] = self.done_at[(key, kind)]
        return out

    def created_times(self) -> dict[str, datetime]:
        """Per planned key, when the contact was really created in HubSpot."""
        return {key: at for (key, kind), at in self.done_at.items() if kind == "create"}

    def _apply(self, event: SeedEvent) -> None:
        contact = self.contacts[event.key]
        at = self.clock.now()
        if event.kind == "create":
            self.ids[event.key] = self.hubspot.seed_contact(contact.creation_properties())
        else:
            self.hubspot.update_contact(self.ids[event.key], contact.mql_properties())
        self.done_at[(event.key, event.kind)] = at


def advance_clock_to(clock: SimClock, when: datetime) -> None:
    """Move ``clock`` forward until its now() is at or after ``when`` (never backwards)."""
    while (lag := when - clock.now()) > timedelta(0):
        clock.advance(lag)


def seed_hubspot(
    hubspot: HubSpotSeedTarget, contacts: Sequence[PlannedContact], clock: SimClock
) -> dict[str, str]:
    """Seed every contact (and its later MQL update), advancing ``clock`` to each planned time.

    Returns planned key -> HubSpot contact id. For incremental seeding alongside a running sync,
    use :class:`PopulationSeeder` and its ``run_due`` instead.
    """
    return PopulationSeeder(hubspot, contacts, clock).run_all()


def population_by_email(contacts: Iterable[PlannedContact]) -> Mapping[str, PlannedContact]:
    """Index a population by normalised email."""
    return {c.normalised_email: c for c in contacts}
