"""What a campaign will send and cost, before it is launched.

:func:`preview_campaign` counts the audience exactly as fan-out will pick it
(:func:`broadcaster.campaigns.audience.eligible_contacts` over :func:`broadcaster.communities.service.expand_ids`),
aggregated in one grouped SQL query, so a 200,000-person audience is never loaded into
memory. Each contact's language is chosen with :func:`messages.choose_language`, the rule
fan-out uses. Per language it shows the rendered text (contact variables replaced by
:data:`messages.CONTACT_SAMPLES`), its encoding and SMS segments, the recipients and how many
of them fall back from a language the template lacks, and the estimated cost from the
price per segment of each destination country (``RISKCAST_SEGMENT_PRICES``, in
``RISKCAST_CURRENCY``). Recipients whose number's country has a hotline of its own
(``RISKCAST_HOTLINES``) are shown and costed with it, as fan-out sends it.

Warnings say what an official should look at before sending: a stray non-GSM character
that turns a Latin-script text into UCS-2, stigmatising wording, a text over three
segments, and languages of the audience that have no variant. They never block. Given the
approval threshold, a draft's preview also says when launching it will need a second
official's approval, and why (:func:`broadcaster.campaigns.service.breach`).

:func:`preview_template` shows every variant of a template with its sample variables.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.audience import eligible_contacts
from broadcaster.communities import service as communities
from broadcaster.config import get_settings
from broadcaster.models import Campaign, CampaignState, Contact, TemplateVersion
from broadcaster.templates import service as templates
from messages import (
    CONTACT_SAMPLES,
    LANGUAGES,
    LanguageError,
    TemplateError,
    TemplateSpec,
    check_wording,
    choose_language,
    gsm_lookalike,
    normalize_language,
    render,
    segments,
    variables_used,
)

MAX_SEGMENTS: Final = 3
"""More SMS segments than this per message gets a warning."""

STRAY_LIMIT: Final = 3
"""At most this many distinct non-GSM characters in a Latin-script text count as strays
(a curly quote, a dash, an emoji) worth a warning; more is a text written in UCS-2."""

UNKNOWN_COUNTRY: Final = "??"
NO_LANGUAGE: Final = "unset"  # a contact with no language on record


@dataclass(frozen=True)
class PreviewWarning:
    """Something to look at before sending. ``kind`` is one of: ``ucs2_character``,
    ``wording``, ``long``, ``no_variant``, ``no_price``, ``cannot_render``, ``review``,
    ``old_version``, ``no_recipients``, ``approval``."""

    kind: str
    message: str
    language: str | None = None


@dataclass(frozen=True)
class VariantPreview:
    """One language's text as it will be sent, and what it costs per recipient."""

    language: str
    language_name: str
    text: str
    encoding: str
    characters: int
    units: int
    segments: int
    non_gsm: tuple[str, ...] = ()
    is_default: bool = False


@dataclass(frozen=True)
class LanguagePreview(VariantPreview):
    """A variant plus the part of the audience that receives it."""

    recipients: int = 0
    # How many of the recipients receive this language although theirs is another
    # (their language has no variant) or unknown, and from which languages.
    fell_back: int = 0
    fell_back_from: dict[str, int] = field(default_factory=dict)
    countries: dict[str, int] = field(default_factory=dict)
    total_segments: int = 0
    cost: float = 0.0
    # Country -> the hotline numbers of that country are told instead of the one in
    # ``text`` (``Settings.hotlines``); their segments and cost are counted with it.
    hotlines: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CountryCost:
    country: str
    recipients: int
    segments: int
    price: float | None  # per segment; None when no price is configured
    cost: float


@dataclass(frozen=True)
class CampaignPreview:
    campaign_id: int
    name: str
    state: str
    channel: str
    template_key: str
    template_version: int
    current_version: int
    default_language: str
    languages: list[LanguagePreview]
    countries: list[CountryCost]
    warnings: list[PreviewWarning]
    recipients: int
    total_segments: int
    cost: float
    unpriced_segments: int
    currency: str  # of every price and cost (``Settings.currency``)
    # Why launching this draft needs a (new) second approval; "" when it does not.
    approval: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TemplatePreview:
    key: str
    name: str
    version: int
    current_version: int
    default_language: str
    source: str | None
    review: bool
    variables: dict[str, str]
    variants: list[VariantPreview]
    warnings: list[PreviewWarning]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- one variant --------------------------------------------------------------------


def _char_name(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed character')}"


def _gsm_stand_in(char: str) -> str | None:
    """A GSM-7 replacement for ``char``: its typographic look-alike, or the letter
    without its accent (ê -> e)."""
    stand_in = gsm_lookalike(char)
    if stand_in is not None:
        return stand_in
    base = unicodedata.normalize("NFD", char)[:1]
    if base != char and base and segments(base).encoding == "GSM-7":
        return base
    return None


def _is_latin_text(non_gsm: tuple[str, ...]) -> bool:
    """True when no non-GSM character is a letter of another script (Lao, Thai, ...)."""
    return all(
        not char.isalpha() or unicodedata.name(char, "").startswith("LATIN") for char in non_gsm
    )


def _fixed(char: str, fixes: Mapping[str, str | None]) -> str:
    if char not in fixes:
        return char
    fix = fixes[char]
    return "?" if fix is None else fix


def _stray_warning(language: str, text: str, channel: str) -> PreviewWarning | None:
    cost = segments(text, channel)
    if (
        cost.encoding != "UCS-2"
        or len(cost.non_gsm) > STRAY_LIMIT
        or not _is_latin_text(cost.non_gsm)
    ):
        return None
    fixes = {char: _gsm_stand_in(char) for char in cost.non_gsm}
    plain = "".join(_fixed(char, fixes) for char in text)
    would = segments(plain, channel)
    named = ", ".join(f"{char!r} ({_char_name(char)})" for char in cost.non_gsm)
    which = "this character turns" if len(cost.non_gsm) == 1 else "these characters turn"
    message = (
        f"{language}: {named}: {which} the whole Latin-script message into UCS-2: "
        f"{cost.parts} segment(s) of 70/67 units instead of {would.parts} in GSM-7"
    )
    suggestions = [f"{char!r} -> {fix!r}" for char, fix in fixes.items() if fix is not None]
    if suggestions:
        message += "; replace " + ", ".join(suggestions)
    return PreviewWarning("ucs2_character", message, language)


def _variant(
    language: str,
    body: str,
    variables: Mapping[str, object],
    *,
    channel: str,
    default_language: str,
) -> tuple[VariantPreview | None, list[PreviewWarning]]:
    try:
        text = render(body, variables)
    except TemplateError as exc:
        return None, [
            PreviewWarning(
                "cannot_render", f"{language}: cannot render ({exc.reason}); fix it first", language
            )
        ]
    cost = segments(text, channel)
    preview = VariantPreview(
        language=language,
        language_name=LANGUAGES.get(language, language),
        text=text,
        encoding=cost.encoding,
        characters=cost.characters,
        units=cost.units,
        segments=cost.parts,
        non_gsm=cost.non_gsm,
        is_default=language == default_language,
    )
    warnings: list[PreviewWarning] = []
    stray = _stray_warning(language, text, channel)
    if stray is not None:
        warnings.append(stray)
    warnings.extend(
        PreviewWarning(
            "wording",
            f"{language}: {w.phrase!r} may stigmatise; say instead: {w.suggestion}",
            language,
        )
        for w in check_wording(text, language)
    )
    if channel == "sms" and cost.parts > MAX_SEGMENTS:
        warnings.append(
            PreviewWarning(
                "long",
                f"{language}: {cost.parts} SMS segments per recipient (more than "
                f"{MAX_SEGMENTS}; {cost.encoding}, {cost.units} units); shorten it",
                language,
            )
        )
    return preview, warnings


def _known(language: str | None) -> str | None:
    if not language:
        return None
    try:
        return normalize_language(language)
    except LanguageError:
        return language


def _order(languages: list[str], default_language: str) -> list[str]:
    return sorted(languages, key=lambda lang: (lang != default_language, lang))


def _common_warnings(version: TemplateVersion) -> list[PreviewWarning]:
    warnings = []
    if version.review:
        warnings.append(
            PreviewWarning(
                "review",
                f"template {version.template.key!r} v{version.version} has translations "
                "awaiting review by a native speaker",
            )
        )
    if version.version != version.template.current_version:
        warnings.append(
            PreviewWarning(
                "old_version",
                f"uses template {version.template.key!r} v{version.version}; "
                f"v{version.template.current_version} exists (a campaign keeps the version "
                "it was created from)",
            )
        )
    return warnings


# -- a template -----------------------------------------------------------------------


def preview_template(
    session: Session, key: str, *, version: int | None = None, channel: str = "sms"
) -> TemplatePreview:
    """Every variant of template ``key`` rendered with its sample variables."""
    row = templates.get_version(session, key, version)
    variables = {**CONTACT_SAMPLES, **{k: str(v) for k, v in row.variables.items()}}
    variants: list[VariantPreview] = []
    warnings = _common_warnings(row)
    bodies = row.bodies()
    for language in _order(list(bodies), row.default_language):
        preview, found = _variant(
            language,
            bodies[language],
            variables,
            channel=channel,
            default_language=row.default_language,
        )
        if preview is not None:
            variants.append(preview)
        warnings.extend(found)
    return TemplatePreview(
        key=row.template.key,
        name=row.template.name,
        version=row.version,
        current_version=row.template.current_version,
        default_language=row.default_language,
        source=row.source,
        review=row.review,
        variables={k: str(v) for k, v in row.variables.items()},
        variants=variants,
        warnings=warnings,
    )


def preview_spec(
    spec: TemplateSpec, *, channel: str = "sms"
) -> tuple[list[VariantPreview], list[PreviewWarning]]:
    """A template not saved yet (the dashboard's editor), as :func:`preview_template`
    shows a saved one: each variant rendered with the sample variables, and the
    warnings."""
    variables = {**CONTACT_SAMPLES, **spec.variables}
    shown: list[VariantPreview] = []
    warnings: list[PreviewWarning] = []
    for language in _order(list(spec.variants), spec.default_language):
        preview, found = _variant(
            language,
            spec.variants[language],
            variables,
            channel=channel,
            default_language=spec.default_language,
        )
        if preview is not None:
            shown.append(preview)
        warnings.extend(found)
    return shown, warnings


# -- a campaign -----------------------------------------------------------------------


@dataclass
class _Tally:
    recipients: int = 0
    fell_back: int = 0
    fell_back_from: Counter[str] = field(default_factory=Counter)
    countries: Counter[str] = field(default_factory=Counter)


def _audience(
    session: Session, campaign: Campaign
) -> list[tuple[str | None, str | None, str, int]]:
    """(contact language, community language, country, how many) over the campaign's
    audience: fan-out's own query, grouped in the database."""
    community_ids = communities.expand_ids(
        session, campaign.audience["communities"], descendants=campaign.audience["descendants"]
    )
    if not community_ids:
        return []
    # The whole audience at once, not a page: no cursor, no limit, no order.
    audience = (
        eligible_contacts(campaign, community_ids, 0, 1)
        .limit(None)
        .order_by(None)
        .add_columns(Contact.country.label("country"))
        .subquery()
    )
    rows = session.execute(
        select(
            audience.c.language,
            audience.c.community_language,
            audience.c.country,
            func.count(),
        ).group_by(audience.c.language, audience.c.community_language, audience.c.country)
    ).all()
    return [
        (language, community_language, (country or UNKNOWN_COUNTRY).upper(), count)
        for language, community_language, country, count in rows
    ]


def _price(prices: Mapping[str, float], country: str) -> float | None:
    price = prices.get(country)
    return price if price is not None else prices.get("default")


def _parts(body: str, variables: Mapping[str, object], channel: str, fallback: int) -> int:
    try:
        return segments(render(body, variables), channel).parts
    except TemplateError:
        return fallback


def _told(
    body: str,
    variables: Mapping[str, object],
    channel: str,
    parts: int,
    countries: Iterable[str],
    local: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, int]]:
    """Country -> the hotline its recipients of ``body`` are told instead of the campaign's,
    and country -> their segments with it (a number of another length may change them)."""
    if not local or "hotline" not in variables_used(body):
        return {}, {}
    told = {country: local[country] for country in sorted(countries) if country in local}
    return told, {
        country: _parts(body, {**variables, "hotline": number}, channel, parts)
        for country, number in told.items()
    }


def _approval(campaign: Campaign, recipients: int, threshold: int | None) -> str:
    """Why launching draft ``campaign`` to ``recipients`` people needs a (new) second
    approval ("" when it does not, or when no threshold is given)."""
    if threshold is None or campaign.state != CampaignState.DRAFT:
        return ""
    return campaigns.breach(campaign, recipients, threshold)


def _approval_warnings(approval: str) -> list[PreviewWarning]:
    if not approval:
        return []
    return [
        PreviewWarning(
            "approval",
            "launching needs approval by a second official or admin, not its creator "
            f"(two-person rule: {approval})",
        )
    ]


def _country_costs(
    by_country: Mapping[str, list[int]], prices: Mapping[str, float]
) -> list[CountryCost]:
    countries = []
    for country, (recipients, segs) in sorted(by_country.items()):
        price = _price(prices, country)
        countries.append(
            CountryCost(
                country=country,
                recipients=recipients,
                segments=segs,
                price=price,
                cost=segs * price if price is not None else 0.0,
            )
        )
    return countries


def _unpriced_warnings(unpriced: list[CountryCost]) -> list[PreviewWarning]:
    if not unpriced:
        return []
    listed = ", ".join(f"{c.country} ({c.recipients} recipients)" for c in unpriced)
    return [
        PreviewWarning(
            "no_price",
            f"no price per segment for {listed}: the cost leaves them out "
            '(set RISKCAST_SEGMENT_PRICES, e.g. {"LA": 0.045, "default": 0.05})',
        )
    ]


def _missing_warnings(missing: Mapping[str, Counter[str]], version: int) -> list[PreviewWarning]:
    warnings = []
    for own, sent in sorted(missing.items()):
        total = sum(sent.values())
        to = ", ".join(f"{lang} ({n})" for lang, n in sorted(sent.items()))
        warnings.append(
            PreviewWarning(
                "no_variant",
                f"{total} recipient(s) speak {own} ({LANGUAGES.get(own, own)}), which has no "
                f"variant in v{version}; they receive: {to}",
                own,
            )
        )
    return warnings


def preview_campaign(
    session: Session,
    campaign_id: int,
    *,
    prices: Mapping[str, float],
    currency: str | None = None,
    hotlines: Mapping[str, str] | None = None,
    approval_threshold: int | None = None,
) -> CampaignPreview:
    """What campaign ``campaign_id`` sends, to how many people, at what cost.

    ``prices`` is the price of one segment per destination country (ISO code), with
    ``"default"`` for the rest (``Settings.segment_prices``), in ``currency``; ``hotlines``
    the hotline per country of a recipient's number that fan-out puts in the campaign's
    place (:func:`broadcaster.campaigns.service.local_hotlines`). Both default to the
    process's settings, as fan-out's do. With ``approval_threshold``
    (``Settings.approval_threshold``), a draft's preview says whether launching it needs a
    second official's approval.
    """
    campaign = campaigns.get(session, campaign_id)
    version = session.get_one(TemplateVersion, campaign.template_version_id)
    bodies = version.bodies()
    default_language = version.default_language

    tallies: dict[str, _Tally] = defaultdict(_Tally)
    missing: dict[str, Counter[str]] = defaultdict(Counter)  # their language -> sent language
    for contact_language, community_language, country, count in _audience(session, campaign):
        language, fell_back = choose_language(
            bodies, contact_language, community_language, default_language
        )
        tally = tallies[language]
        tally.recipients += count
        tally.countries[country] += count
        own = _known(contact_language)
        if fell_back:
            tally.fell_back += count
            tally.fell_back_from[own or NO_LANGUAGE] += count
        if own is not None and own not in bodies:
            missing[own][language] += count

    variables: dict[str, object] = {
        **CONTACT_SAMPLES,
        **{k: str(v) for k, v in version.variables.items()},
        **{k: str(v) for k, v in campaign.variables.items()},
    }
    warnings = _common_warnings(version)
    local = campaigns.local_hotlines(
        campaign, version, get_settings().hotlines if hotlines is None else hotlines
    )
    # A preferred-channel campaign is costed as SMS: every WhatsApp may fall back.
    channel = "sms" if campaign.channel == "preferred" else campaign.channel
    rows: list[LanguagePreview] = []
    by_country: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # recipients, segments
    for language in _order(list(bodies), default_language):
        variant, found = _variant(
            language,
            bodies[language],
            variables,
            channel=channel,
            default_language=default_language,
        )
        warnings.extend(found)
        if variant is None:
            continue
        tally = tallies.get(language, _Tally())
        told, parts = _told(
            bodies[language], variables, channel, variant.segments, tally.countries, local
        )
        cost = 0.0
        for country, count in tally.countries.items():
            segs = parts.get(country, variant.segments)
            by_country[country][0] += count
            by_country[country][1] += count * segs
            price = _price(prices, country)
            if price is not None:
                cost += count * segs * price
        rows.append(
            LanguagePreview(
                **asdict(variant),
                recipients=tally.recipients,
                fell_back=tally.fell_back,
                fell_back_from=dict(sorted(tally.fell_back_from.items())),
                countries=dict(sorted(tally.countries.items())),
                total_segments=sum(
                    count * parts.get(country, variant.segments)
                    for country, count in tally.countries.items()
                ),
                cost=cost,
                hotlines=told,
            )
        )

    countries = _country_costs(by_country, prices)
    unpriced = [c for c in countries if c.price is None]
    warnings.extend(_unpriced_warnings(unpriced))
    warnings.extend(_missing_warnings(missing, version.version))
    recipients = sum(tally.recipients for tally in tallies.values())
    if recipients == 0:
        warnings.append(
            PreviewWarning("no_recipients", "nobody in the audience would receive this campaign")
        )
    approval = _approval(campaign, recipients, approval_threshold)
    warnings.extend(_approval_warnings(approval))
    return CampaignPreview(
        campaign_id=campaign.id,
        name=campaign.name,
        state=campaign.state,
        channel=campaign.channel,
        template_key=version.template.key,
        template_version=version.version,
        current_version=version.template.current_version,
        default_language=default_language,
        languages=rows,
        countries=countries,
        warnings=warnings,
        recipients=recipients,
        total_segments=sum(row.total_segments for row in rows),
        cost=sum(c.cost for c in countries),
        unpriced_segments=sum(c.segments for c in unpriced),
        currency=get_settings().currency if currency is None else currency,
        approval=approval,
    )
