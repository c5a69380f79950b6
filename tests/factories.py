"""Test data built through the same domain functions the service uses."""

from __future__ import annotations

import itertools

from sqlalchemy.orm import Session

from broadcaster.audit.service import Actor
from broadcaster.campaigns import scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import fanout_page
from broadcaster.communities import service as communities
from broadcaster.contacts import service as contacts
from broadcaster.db import utcnow
from broadcaster.models import Campaign, Community, Contact, Membership
from broadcaster.templates import service as templates
from messages import parse_template

# Someone national with every right, for service calls that need an actor but are not
# about who acts.
SYSTEM = Actor(user_id=None, name="test", role="admin", source="test")

_seq = itertools.count(1)

THREE_LANGUAGES = {
    "key": "covid-test",
    "name": "Testing and hotline",
    "default_language": "en",
    "variables": {"hotline": "1166"},
    "variants": {
        "en": "Free COVID-19 testing is available. Call {{ hotline }}.",
        "lo": "ມີການກວດ COVID-19 ຟຣີ. ໂທ {{ hotline }}.",
        "th": "มีบริการตรวจโควิด-19 ฟรี โทร {{ hotline }}",
    },
}


def lao_number(n: int) -> str:
    return f"+856205{n:07d}"


def thai_number(n: int) -> str:
    return f"+6681{n:07d}"


def community(session: Session, slug: str | None = None, **kwargs: object) -> Community:
    slug = slug or f"c{next(_seq)}"
    return communities.add_community(session, slug, name=kwargs.pop("name", slug.title()), **kwargs)  # type: ignore[arg-type]


def contact(
    session: Session,
    phone: str | None = None,
    *,
    community_slugs: tuple[str, ...] = (),
    language: str | None = None,
    name: str | None = None,
) -> Contact:
    phone = phone or lao_number(next(_seq))
    row, _ = contacts.add_contact(
        session, phone, region="LA", language=language, name=name, communities=community_slugs
    )
    return row


def raw_contact(session: Session, phone: str, community_slug: str) -> Contact:
    """A contact stored as given, skipping validation: Twilio's test numbers (+1 500 555 ...)
    are not real mobiles, but the simulator answers them as Twilio does."""
    row = Contact(phone=phone, country="US", status="active")
    session.add(row)
    session.flush()
    session.add(
        Membership(
            contact_id=row.id, community_id=communities.get_by_slug(session, community_slug).id
        )
    )
    session.flush()
    return row


def template(session: Session, data: dict[str, object] | None = None) -> str:
    spec = parse_template(data or THREE_LANGUAGES)
    templates.save_template(session, spec)
    return spec.key


def english_template(session: Session, key: str, body: str) -> str:
    """A template of one English variant, ``body``, with ``hotline`` = 1166."""
    data = {
        "key": key,
        "name": key.title(),
        "default_language": "en",
        "variables": {"hotline": "1166"},
        "variants": {"en": body},
    }
    return template(session, data)


def campaign(
    session: Session, community_slugs: list[str], *, key: str | None = None, **kwargs: object
) -> Campaign:
    key = key or template(session)
    return campaigns.create_campaign(
        session,
        name=str(kwargs.pop("name", "test campaign")),
        template_key=key,
        community_slugs=community_slugs,
        **kwargs,  # type: ignore[arg-type]
    )


def fanned_out(session: Session, campaign_id: int) -> int:
    """A launched campaign claimed as the scheduler claims it and fanned out in one page as
    the fan-out task writes it; returns how many deliveries were created. The caller
    commits."""
    claimed = scheduling.claim_due(session, utcnow())
    assert campaign_id in {cid for cid, _ in claimed}, f"campaign {campaign_id} was not due"
    return fanout_page(session, campaign_id, page_size=1000, batch_size=100).created
