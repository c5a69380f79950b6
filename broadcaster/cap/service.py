"""CAP 1.2 alerts in and out: an official's alert becomes a draft campaign, a sent campaign
is published as an alert.

In: :func:`import_alert` validates the document (:mod:`messages.cap`), then by ``msgType``

- **Alert**: a template (one variant per ``<info>`` language, headline + instruction +
  contact within 3 SMS segments) and a **draft** campaign. ``<area>`` becomes communities
  through the mapping table officials edit (:func:`map_area`): by ``<geocode>`` or by
  ``<areaDesc>``. An area that maps to nothing stops the import with an error listing
  every such area and the command that maps it: a warning would let an official approve a
  campaign that silently leaves a province out. Urgency Immediate/Expected with severity
  Extreme/Severe makes the campaign ``urgent``, which the two-person rule then holds for a
  second official's approval; the earliest ``<expires>`` becomes its ``valid_until``.
- **Update**: the same, a follow-up draft; the campaigns of the alerts it references are
  left as they are (the warnings name them).
- **Cancel**: every campaign of the referenced alerts (and of the alerts those updated) is
  cancelled: what is not yet sent is skipped with reason ``cancelled``.

Nothing is ever sent by an import: campaigns stay drafts until an official launches them.
Only ``Actual`` and ``Exercise`` alerts with ``Public`` scope are taken; an alert already
taken (same sender and identifier) is refused, so a retried POST creates nothing twice.

Out: :func:`campaign_alert` and :func:`feed` publish campaigns that were sent (sending or
completed) as CAP 1.2, one ``<info>`` per language, for other alerting systems. They carry
the message texts and the communities' names, never a phone number.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from broadcaster.areas import scope
from broadcaster.audit.service import Actor
from broadcaster.campaigns import actions
from broadcaster.campaigns import service as campaigns
from broadcaster.cap.models import AreaKind, CapAlert, CapAreaMapping
from broadcaster.communities import service as communities
from broadcaster.db import utcnow
from broadcaster.errors import Forbidden, IllegalState, InvalidInput, NotFound
from broadcaster.models import Campaign, CampaignState, Community, Priority, TemplateVersion, User
from broadcaster.templates import service as templates
from messages import CONTACT_VARIABLES, TemplateError, render
from messages.cap import (
    MAX_LISTED,
    Alert,
    Area,
    CapError,
    FeedEntry,
    Info,
    Reference,
    ValuePair,
    atom_feed,
    listed,
    parse_alert,
    split_body,
    to_template,
    to_xml,
)

IMPORTED_STATUSES = ("Actual", "Exercise")
PUBLISHED_STATES = (CampaignState.SENDING.value, CampaignState.COMPLETED.value)
FEED_SIZE = 100
CANCELLABLE = frozenset(
    s for s, targets in campaigns.TRANSITIONS.items() if CampaignState.CANCELLED in targets
)


@dataclass
class CapImport:
    """What an import did: the draft it made (Alert, Update) or the campaigns it cancelled
    (Cancel), and what the official should read before approving."""

    identifier: str
    sender: str
    msg_type: str
    campaign_id: int | None = None
    template_key: str | None = None
    priority: str | None = None
    valid_until: datetime | None = None
    communities: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    referenced: list[int] = field(default_factory=list)  # campaigns of referenced alerts
    cancelled: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def audit_subject(self) -> tuple[str, object, dict[str, Any]]:
        """(object type, object id, details) of the ``cap.import`` audit row."""
        return (
            "campaign" if self.campaign_id else "cap_alert",
            self.campaign_id or self.identifier,
            {
                "identifier": self.identifier,
                "sender": self.sender,
                "msg_type": self.msg_type,
                "cancelled": self.cancelled,
            },
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "sender": self.sender,
            "msg_type": self.msg_type,
            "campaign_id": self.campaign_id,
            "template": self.template_key,
            "priority": self.priority,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "communities": self.communities,
            "languages": self.languages,
            "referenced": self.referenced,
            "cancelled": self.cancelled,
            "warnings": self.warnings,
        }


def parse(xml: bytes) -> Alert:
    """The alert in ``xml``, or InvalidInput naming the element and the reason."""
    try:
        return parse_alert(xml)
    except CapError as exc:
        if exc.path and not exc.errors:
            raise InvalidInput(exc.reason, field=exc.path) from None
        raise InvalidInput(str(exc)) from None


# -- the area mapping -----------------------------------------------------------------


def name_key(text: str) -> str:
    """How area names are compared: NFC, case-folded, spaces made one."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def _mapping_value(kind: str, value: str) -> str:
    value = value.strip()
    if kind == AreaKind.NAME:
        return name_key(value)
    name, sep, code = value.partition("=")
    return f"{name.strip()}={code.strip()}" if sep else value


def map_area(
    session: Session, actor: Actor, *, kind: str, value: str, community_slug: str
) -> tuple[CapAreaMapping, bool]:
    """Map CAP areas with this geocode (``VALUE`` or ``valueName=VALUE``) or this areaDesc
    to a community in ``actor``'s areas; returns the mapping and whether it is new."""
    if kind not in {k.value for k in AreaKind}:
        raise InvalidInput(f"{kind!r} is not one of geocode, name", field="kind")
    stored = _mapping_value(kind, value)
    if not stored or stored.startswith("=") or stored.endswith("="):
        raise InvalidInput("must not be empty", field=kind)
    if len(stored) > 255:
        raise InvalidInput("longer than 255 characters", field=kind)
    community = communities.get_by_slug(session, community_slug)
    scope.check_communities(session, actor, [community.id])
    existing = session.scalar(
        select(CapAreaMapping).where(
            CapAreaMapping.kind == kind,
            CapAreaMapping.value == stored,
            CapAreaMapping.community_id == community.id,
        )
    )
    if existing is not None:
        return existing, False
    mapping = CapAreaMapping(kind=kind, value=stored, community_id=community.id)
    session.add(mapping)
    session.flush()
    return mapping, True


def list_mappings(session: Session) -> list[tuple[CapAreaMapping, str]]:
    """Every mapping with its community's slug, by kind and value."""
    rows = session.execute(
        select(CapAreaMapping, Community.slug)
        .join(Community, Community.id == CapAreaMapping.community_id)
        .order_by(CapAreaMapping.kind, CapAreaMapping.value, Community.slug)
    ).all()
    return [(mapping, slug) for mapping, slug in rows]


def _geocode_keys(geocode: ValuePair) -> tuple[str, str]:
    return geocode.value.strip(), f"{geocode.name.strip()}={geocode.value.strip()}"


def _area_label(where: str, area: Area) -> str:
    codes = ", ".join(f"{g.name}={g.value}" for g in area.geocodes)
    shape = " (polygon only)" if area.polygons and not area.geocodes else ""
    return f"{where} {area.desc!r}" + (f" [{codes}]" if codes else "") + shape


def resolve_areas(session: Session, alert: Alert) -> list[str]:
    """The slugs of the communities ``alert``'s areas map to; InvalidInput listing every
    area that maps to nothing (with the command that maps it)."""
    by_geocode: dict[str, set[int]] = {}
    by_name: dict[str, set[int]] = {}
    for mapping, _slug in list_mappings(session):
        target = by_geocode if mapping.kind == AreaKind.GEOCODE else by_name
        target.setdefault(mapping.value, set()).add(mapping.community_id)
    found: set[int] = set()
    unknown: list[str] = []
    any_area = False
    for i, info in enumerate(alert.infos, start=1):
        for j, area in enumerate(info.areas, start=1):
            any_area = True
            ids = set(by_name.get(name_key(area.desc), set()))
            for geocode in area.geocodes:
                for key in _geocode_keys(geocode):
                    ids |= by_geocode.get(key, set())
            if ids:
                found |= ids
            else:
                unknown.append(_area_label(f"alert/info[{i}]/area[{j}]", area))
    if not any_area:
        raise InvalidInput(
            "the alert has no <area>: riskcast needs to know which communities to warn",
            field="alert/info/area",
        )
    if unknown:
        raise InvalidInput(
            f"{len(unknown):,} area(s) map to no community:\n{listed(unknown)}\n"
            "map each one by geocode or by name, then import again, e.g.\n"
            "  riskcast cap map --geocode ISO3166-2=LA-BK --community bokeo\n"
            "  riskcast cap map --name 'Bokeo province' --community bokeo",
            field="area",
        )
    slugs = session.scalars(select(Community.slug).where(Community.id.in_(found)))
    return sorted(slugs)


# -- import ---------------------------------------------------------------------------


def _referenced_alerts(session: Session, references: Sequence[Reference]) -> list[CapAlert]:
    """The stored alerts ``references`` name, and those each of them referenced in turn
    (an Update of an Update of an Alert is one thread)."""
    seen: dict[int, CapAlert] = {}
    pending = [(r.sender, r.identifier) for r in references]
    while pending:
        conditions = [
            (CapAlert.sender == sender) & (CapAlert.identifier == identifier)
            for sender, identifier in pending
        ]
        pending = []
        for row in session.scalars(select(CapAlert).where(or_(*conditions))):
            if row.id in seen:
                continue
            seen[row.id] = row
            for triple in (row.references or "").split():
                sender, _, rest = triple.partition(",")
                pending.append((sender, rest.partition(",")[0]))
    return sorted(seen.values(), key=lambda row: row.id)


def _check_importable(alert: Alert) -> None:
    if alert.status not in IMPORTED_STATUSES:
        raise InvalidInput(
            f"{alert.status!r} alerts are not imported (only Actual and Exercise): "
            "they are not meant for the public",
            field="alert/status",
        )
    if alert.scope != "Public":
        raise InvalidInput(
            f"{alert.scope!r} alerts are not for the public; riskcast imports Public ones",
            field="alert/scope",
        )
    if alert.msg_type not in ("Alert", "Update", "Cancel"):
        raise InvalidInput(
            f"an {alert.msg_type} message has nothing to broadcast; riskcast takes Alert, "
            "Update and Cancel",
            field="alert/msgType",
        )
    if alert.msg_type in ("Update", "Cancel") and not alert.references:
        raise InvalidInput(
            f"an {alert.msg_type} names the alert(s) it is about in <references>",
            field="alert/references",
        )


def _store(
    session: Session, alert: Alert, xml: bytes, campaign_id: int | None, user: User | None
) -> CapAlert:
    try:
        text = xml.decode("utf-8")
    except UnicodeDecodeError:
        text = to_xml(alert).decode("utf-8")  # the document in another encoding: as parsed
    row = CapAlert(
        identifier=alert.identifier,
        sender=alert.sender,
        sent=alert.sent,
        msg_type=alert.msg_type,
        references=" ".join(str(r) for r in alert.references) or None,
        campaign_id=campaign_id,
        xml=text,
        imported_by=user.id if user is not None else None,
    )
    session.add(row)
    session.flush()
    return row


def _cancel(session: Session, result: CapImport, referenced: Sequence[CapAlert]) -> None:
    for row in referenced:
        if row.campaign_id is None:
            continue
        campaign = campaigns.get(session, row.campaign_id)
        if campaign.state in CANCELLABLE:
            campaigns.cancel(session, campaign.id)
            result.cancelled.append(campaign.id)
        else:
            result.warnings.append(
                f"campaign {campaign.id} ({row.identifier}) is {campaign.state}; "
                "nothing left to stop"
            )


def _check_references(
    session: Session, caller: Actor, alert: Alert, referenced: Sequence[CapAlert]
) -> None:
    """An Update or Cancel follows the rules the API does: only the original alert's sender
    follows it up, the caller must see each referenced campaign in their areas, and a
    Cancel is someone's who may cancel it (an operator there, or the official who made it)."""
    for row in referenced:
        if row.sender != alert.sender:
            raise Forbidden(
                f"alert {row.identifier} was sent by {row.sender}; only its sender "
                f"({alert.msg_type} from {alert.sender} refused) updates or cancels it"
            )
        if row.campaign_id is None:
            continue
        campaign = campaigns.get(session, row.campaign_id)
        if not actions.visible(caller, campaign):
            raise Forbidden(f"the campaign of alert {row.identifier} is outside your areas")
        if alert.msg_type == "Cancel" and not actions.may_operate(caller, campaign):
            raise Forbidden(
                f"campaign {campaign.id} of alert {row.identifier} is cancelled by an operator "
                "or by the official who made it"
            )


def _never_imported(missing: Sequence[str]) -> list[str]:
    """A warning per referenced alert riskcast does not hold (the first MAX_LISTED)."""
    warnings = [f"referenced alert {m} was never imported" for m in missing[:MAX_LISTED]]
    if len(missing) > MAX_LISTED:
        warnings.append(f"... and {len(missing) - MAX_LISTED:,} more never imported")
    return warnings


def import_alert(
    session: Session, xml: bytes, *, caller: Actor, now: datetime | None = None
) -> CapImport:
    """Take in one CAP 1.2 document (see the module docstring) as ``caller``: its draft is
    theirs, in their areas and organisation. The caller's transaction makes it all or
    nothing; nothing is sent."""
    user = session.get(User, caller.user_id) if caller.user_id is not None else None
    alert = parse(xml)
    _check_importable(alert)
    previous = session.scalar(
        select(CapAlert).where(
            CapAlert.sender == alert.sender, CapAlert.identifier == alert.identifier
        )
    )
    if previous is not None:
        made = f" (campaign {previous.campaign_id})" if previous.campaign_id else ""
        raise IllegalState(
            f"alert {alert.identifier} from {alert.sender} was already imported{made}"
        )
    result = CapImport(alert.identifier, alert.sender, alert.msg_type)
    referenced = _referenced_alerts(session, alert.references) if alert.references else []
    result.referenced = sorted({r.campaign_id for r in referenced if r.campaign_id})
    _check_references(session, caller, alert, referenced)
    known = {(r.sender, r.identifier) for r in referenced}
    missing = [str(r) for r in alert.references if (r.sender, r.identifier) not in known]
    if alert.msg_type == "Cancel":
        if not referenced:
            raise InvalidInput(
                f"none of the referenced alerts was imported into riskcast:\n"
                f"{listed(missing)}\nnothing to cancel",
                field="alert/references",
            )
        result.warnings += _never_imported(missing)
        _cancel(session, result, referenced)
        _store(session, alert, xml, None, user)
        return result

    result.warnings += _never_imported(missing)
    spec, warnings = to_template(alert)
    result.warnings += warnings
    expires = alert.expires
    if expires is not None and expires <= (now or utcnow()):
        raise InvalidInput(
            f"the alert expired at {expires.isoformat()}; there is nothing left to send",
            field="alert/info/expires",
        )
    slugs = resolve_areas(session, alert)
    scope.check_communities(
        session, caller, communities.resolve_ids(session, slugs, descendants=False)
    )
    templates.save_template(session, spec)
    priority = Priority.URGENT.value if alert.urgent else Priority.BULK.value
    campaign = campaigns.create_campaign(
        session,
        name=spec.name,
        template_key=spec.key,
        community_slugs=slugs,
        priority=priority,
        valid_until=expires,
        created_by=user.id if user is not None else None,
        organisation_id=caller.organisation_id,
    )
    for campaign_id in result.referenced:
        earlier = campaigns.get(session, campaign_id)
        if earlier.state in (CampaignState.DRAFT, CampaignState.SCHEDULED):
            result.warnings.append(
                f"campaign {campaign_id}, of the alert this updates, is still {earlier.state}: "
                f"cancel it if this update replaces it (riskcast campaigns cancel {campaign_id})"
            )
    _store(session, alert, xml, campaign.id, user)
    result.campaign_id = campaign.id
    result.template_key = spec.key
    result.priority = priority
    result.valid_until = expires
    result.communities = slugs
    result.languages = sorted(spec.variants)
    return result


# -- export ---------------------------------------------------------------------------


def sender_for(public_url: str) -> str:
    """riskcast's CAP sender: ``riskcast@`` the host it is reached at."""
    return f"riskcast@{urlsplit(public_url).hostname or 'localhost'}"


def _original(session: Session, campaign_id: int) -> Alert | None:
    """The CAP alert a campaign was imported from, if any."""
    row = session.scalar(
        select(CapAlert).where(CapAlert.campaign_id == campaign_id, CapAlert.msg_type != "Cancel")
    )
    if row is None:
        return None
    try:
        return parse_alert(row.xml.encode("utf-8"))
    except CapError:  # stored by an older riskcast with other rules: publish without it
        return None


def _areas(session: Session, community_ids: Iterable[int]) -> tuple[Area, ...]:
    ids = sorted(set(community_ids))
    rows = session.scalars(select(Community).where(Community.id.in_(ids)).order_by(Community.id))
    geocodes: dict[int, list[ValuePair]] = {}
    for mapping in session.scalars(
        select(CapAreaMapping)
        .where(CapAreaMapping.community_id.in_(ids), CapAreaMapping.kind == AreaKind.GEOCODE)
        .order_by(CapAreaMapping.value)
    ):
        name, sep, value = mapping.value.partition("=")
        if sep:  # a bare value names no scheme, so it cannot be published
            geocodes.setdefault(mapping.community_id, []).append(ValuePair(name, value))
    return tuple(Area(desc=c.name, geocodes=tuple(geocodes.get(c.id, []))) for c in rows)


def _bodies(session: Session, campaign: Campaign, area_names: Sequence[str]) -> dict[str, str]:
    version = session.scalars(
        select(TemplateVersion)
        .where(TemplateVersion.id == campaign.template_version_id)
        .options(selectinload(TemplateVersion.variants))
    ).one()
    values = {k: str(v) for k, v in campaign.variables.items() if k not in CONTACT_VARIABLES}
    values.update({"name": "", "community": area_names[0] if area_names else ""})
    bodies = {}
    for language, body in version.bodies().items():
        try:
            bodies[language] = render(body, values)
        except TemplateError:  # a body that needs the person's name: not publishable
            continue
    return bodies


def campaign_alert(session: Session, campaign: Campaign, *, public_url: str) -> Alert:
    """A sent campaign as a CAP 1.2 alert: one ``<info>`` per language, each the body as
    sent (its first line the headline, the rest the instruction), for its communities."""
    original = _original(session, campaign.id)
    first = original.infos[0] if original and original.infos else None
    urgent = campaign.priority == Priority.URGENT
    areas = _areas(session, campaign.audience.get("communities", []))
    bodies = _bodies(session, campaign, [a.desc for a in areas])
    infos = []
    for language, text in sorted(bodies.items(), key=lambda item: (item[0] != "en", item[0])):
        headline, instruction = split_body(text)
        infos.append(
            Info(
                language=language,
                categories=first.categories if first else ("Other",),
                event=first.event if first else campaign.name,
                # riskcast knows only its own priority: urgent is published as
                # Immediate/Severe (what an import maps back to urgent), bulk as Unknown.
                urgency=first.urgency if first else ("Immediate" if urgent else "Unknown"),
                severity=first.severity if first else ("Severe" if urgent else "Unknown"),
                certainty=first.certainty if first else "Unknown",
                expires=campaign.valid_until,
                sender_name="riskcast",
                headline=headline,
                # one line is the headline alone: a description would be read as the
                # instruction on import
                description=text if instruction else None,
                instruction=instruction,
                areas=areas,
            )
        )
    sent = campaign.launched_at or campaign.send_at or campaign.created_at
    return Alert(
        identifier=f"riskcast-campaign-{campaign.id}",
        sender=sender_for(public_url),
        sent=sent,
        status="Actual",
        msg_type="Alert",
        scope="Public",
        infos=tuple(infos),
    )


def published(session: Session, campaign_id: int) -> Campaign:
    """A campaign that was sent; NotFound for any other, so drafts never leak out."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.state not in PUBLISHED_STATES:
        raise NotFound(f"no published alert {campaign_id}")
    return campaign


def campaign_xml(session: Session, campaign_id: int, *, public_url: str) -> bytes:
    return to_xml(campaign_alert(session, published(session, campaign_id), public_url=public_url))


def feed(session: Session, *, public_url: str) -> bytes:
    """The newest sent campaigns (at most FEED_SIZE) as an Atom feed of CAP alerts."""
    base = public_url.rstrip("/")
    rows = session.scalars(
        select(Campaign)
        .where(Campaign.state.in_(PUBLISHED_STATES))
        .order_by(Campaign.id.desc())
        .limit(FEED_SIZE)
    ).all()
    entries = [
        FeedEntry(
            id=f"{base}/cap/{c.id}.xml",
            title=c.name,
            updated=c.completed_at or c.launched_at or c.created_at,
            link=f"{base}/cap/{c.id}.xml",
        )
        for c in rows
    ]
    updated = max((e.updated for e in entries), default=utcnow())
    return atom_feed(
        feed_id=f"{base}/cap/feed.atom",
        title=f"riskcast alerts ({urlsplit(public_url).hostname or 'localhost'})",
        self_link=f"{base}/cap/feed.atom",
        updated=updated,
        entries=entries,
    )
