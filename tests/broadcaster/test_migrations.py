"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from broadcaster.models import Base, Campaign, User
from broadcaster.schema import upgrade
from broadcaster.users import auth


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_existing_people_become_national_and_campaigns_get_their_area(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/old.db")
    upgrade(engine, "0006")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO app_user (id, name, role, active, created_at) "
                "VALUES (1, 'olivia', 'official', 1, CURRENT_TIMESTAMP)"
            )
        )
        for cid, slug, path in ((1, "laos", "/1/"), (2, "bokeo", "/1/2/"), (3, "huay", "/1/2/3/")):
            conn.execute(
                text(
                    "INSERT INTO community (id, slug, name, kind, path, language, timezone, "
                    "created_at) VALUES (:i, :s, :s, 'other', :p, 'lo', 'Asia/Vientiane', "
                    "CURRENT_TIMESTAMP)"
                ),
                {"i": cid, "s": slug, "p": path},
            )
        conn.execute(
            text(
                "INSERT INTO template (id, key, name, current_version, created_at) "
                "VALUES (1, 't', 'T', 1, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO template_version (id, template_id, version, default_language, "
                "variables, review, created_at) VALUES (1, 1, 1, 'lo', '{}', 0, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO campaign (id, name, template_version_id, state, priority, channel, "
                "variables, audience, fanout_cursor, recipients, created_by, created_at) "
                "VALUES (1, 'c', 1, 'draft', 'bulk', 'sms', '{}', :a, 0, 0, 1, CURRENT_TIMESTAMP)"
            ),
            {"a": json.dumps({"communities": [2, 3], "descendants": True})},
        )
    upgrade(engine)
    with Session(engine) as session:
        user = session.get_one(User, 1)
        assert user.national and user.organisation_id is not None
        actor = auth.actor_for(session, user, "test")
        assert actor.areas is None and actor.organisation_id == user.organisation_id
        campaign = session.get_one(Campaign, 1)
        assert campaign.area_path == "/1/2/"  # Bokeo holds both of its communities
        assert campaign.organisation_id == user.organisation_id
    engine.dispose()
