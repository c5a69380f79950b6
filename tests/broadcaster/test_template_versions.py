"""Template versions: a changed file is a new version, a campaign keeps its own; and a
campaign never sends an empty body, whatever languages its audience speaks."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.campaigns import scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import fanout_page
from broadcaster.campaigns.preview import preview_campaign, preview_template
from broadcaster.db import utcnow
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.models import CampaignMessage, Delivery, TemplateVersion
from broadcaster.templates import service as templates
from messages import TemplateError, load_template_file, parse_template
from tests import factories

V1 = """\
key: hotline
name: Hotline
default_language: en
variables:
  hotline: "1166"
variants:
  en: Call {{ hotline }} if you feel unwell.
  lo: ໂທ {{ hotline }} ຖ້າບໍ່ສະບາຍ.
"""
V2 = V1.replace("Call {{ hotline }} if you feel unwell.", "Feeling unwell? Call {{ hotline }}.")


def _save(session: Session, tmp_path: Path, text: str) -> templates.SaveResult:
    path = tmp_path / "hotline.yaml"
    path.write_text(text, encoding="utf-8")
    return templates.save_template(session, load_template_file(path))


def _fan_out(session: Session, campaign_id: int) -> dict[int, str]:
    campaigns.schedule(session, campaign_id)
    claimed = scheduling.claim_due(session, utcnow())
    assert campaign_id in [cid for cid, _ in claimed]
    while not fanout_page(session, campaign_id, page_size=2, batch_size=10).done:
        pass
    rows = session.execute(
        select(Delivery.contact_id, CampaignMessage.body)
        .join(CampaignMessage, CampaignMessage.id == Delivery.message_id)
        .where(Delivery.campaign_id == campaign_id)
    )
    return {row.contact_id: row.body for row in rows}


def test_changed_file_is_a_new_version_and_campaigns_keep_theirs(
    session: Session, tmp_path: Path
) -> None:
    factories.community(session, "village", language="en")
    person = factories.contact(session, community_slugs=("village",), language="en")

    first = _save(session, tmp_path, V1)
    assert (first.created, first.changed, first.version.version) == (True, True, 1)
    again = _save(session, tmp_path, V1)
    assert (again.created, again.changed, again.version.id) == (False, False, first.version.id)

    old = factories.campaign(session, ["village"], key="hotline")
    assert old.template_version_id == first.version.id

    second = _save(session, tmp_path, V2)
    assert (second.created, second.changed, second.version.version) == (False, True, 2)
    assert templates.current_version(session, "hotline").id == second.version.id
    # version 1 is untouched
    kept = session.get_one(TemplateVersion, first.version.id)
    assert kept.bodies()["en"] == "Call {{ hotline }} if you feel unwell."

    new = factories.campaign(session, ["village"], key="hotline", name="new")
    assert new.template_version_id == second.version.id

    old_preview = preview_campaign(session, old.id, prices={})
    assert old_preview.template_version == 1 and old_preview.current_version == 2
    assert old_preview.languages[0].text == "Call 1166 if you feel unwell."
    assert "old_version" in {w.kind for w in old_preview.warnings}
    new_preview = preview_campaign(session, new.id, prices={})
    assert new_preview.languages[0].text == "Feeling unwell? Call 1166."

    assert _fan_out(session, old.id) == {person.id: "Call 1166 if you feel unwell."}
    assert _fan_out(session, new.id) == {person.id: "Feeling unwell? Call 1166."}


def test_template_preview_of_an_old_version(session: Session, tmp_path: Path) -> None:
    _save(session, tmp_path, V1)
    _save(session, tmp_path, V2)
    assert preview_template(session, "hotline").variants[0].text == "Feeling unwell? Call 1166."
    old = preview_template(session, "hotline", version=1)
    assert old.variants[0].text == "Call 1166 if you feel unwell."
    assert (old.version, old.current_version) == (1, 2)
    with pytest.raises(NotFound, match="has no version 7"):
        preview_template(session, "hotline", version=7)


def test_saving_many_refuses_a_key_given_twice(session: Session) -> None:
    spec = parse_template(factories.THREE_LANGUAGES)
    with pytest.raises(InvalidInput, match="given twice"):
        templates.save_templates(session, [spec, spec])


def test_fan_out_never_stores_an_empty_body(session: Session) -> None:
    """Languages with no variant fall back (contact -> community -> template default)."""
    factories.community(session, "laos", language="lo")
    factories.community(session, "khmer-site", language="km")
    key = factories.template(
        session,
        {
            "key": "two-languages",
            "name": "Two languages",
            "default_language": "en",
            "variables": {"hotline": "1166"},
            "variants": {
                "en": "Call {{ hotline }}, {{ name }}.",
                "lo": "ໂທ {{ hotline }}.",
            },
        },
    )
    people = [
        factories.contact(session, community_slugs=("laos",), language="lo"),
        factories.contact(session, community_slugs=("laos",), language="th"),  # -> lo
        factories.contact(session, community_slugs=("laos",)),  # no language -> lo
        factories.contact(session, community_slugs=("khmer-site",), language="km"),  # -> en
        factories.contact(session, community_slugs=("khmer-site",), language="vi"),  # -> en
        factories.contact(session, community_slugs=("khmer-site",)),  # community km has none -> en
    ]
    camp = factories.campaign(session, ["laos", "khmer-site"], key=key)
    bodies = _fan_out(session, camp.id)
    assert set(bodies) == {p.id for p in people}
    assert all(body.strip() for body in bodies.values())
    assert bodies[people[1].id] == "ໂທ 1166."
    assert bodies[people[5].id] == "Call 1166, ."  # no name on record: still says something
    stored = session.scalars(
        select(CampaignMessage.body).where(CampaignMessage.campaign_id == camp.id)
    ).all()
    assert stored and all(body.strip() for body in stored)


def test_a_body_that_renders_empty_without_a_name_is_refused() -> None:
    data = {
        "key": "only-name",
        "name": "Only a name",
        "default_language": "en",
        "variants": {"en": "{{ name }}"},
    }
    with pytest.raises(TemplateError, match="renders empty for a contact with no name"):
        parse_template(data)
