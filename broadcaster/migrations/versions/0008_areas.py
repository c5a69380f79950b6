"""organisations and areas; the approval binds to a recipient count

Every existing user joins the default organisation and stays national (sees everything,
as before); every existing campaign belongs to the default organisation, its area the
deepest community holding its whole audience.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 13:00:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from broadcaster.orm import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def common_path(paths: list[str]) -> str:
    """The deepest community path holding every one of ``paths`` (as of this revision)."""
    split = [p.strip("/").split("/") for p in paths if p.strip("/")]
    shared: list[str] = []
    for parts in zip(*split, strict=False) if split else ():
        if len(set(parts)) != 1:
            break
        shared.append(parts[0])
    return "/" + "".join(f"{p}/" for p in shared)


def upgrade() -> None:
    organisation = op.create_table(
        "organisation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation")),
        sa.UniqueConstraint("slug", name=op.f("uq_organisation_slug")),
    )
    op.create_table(
        "user_area",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_user_area_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_user_area_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "community_id", name=op.f("pk_user_area")),
    )
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organisation_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("national", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.create_index(
            batch_op.f("ix_app_user_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_foreign_key(
            op.f("fk_app_user_organisation_id_organisation"),
            "organisation",
            ["organisation_id"],
            ["id"],
            ondelete="RESTRICT",
        )
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approved_recipients", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("organisation_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("area_path", sa.String(length=512), nullable=False, server_default="/")
        )
        batch_op.create_index(
            batch_op.f("ix_campaign_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_foreign_key(
            op.f("fk_campaign_organisation_id_organisation"),
            "organisation",
            ["organisation_id"],
            ["id"],
            ondelete="RESTRICT",
        )

    bind = op.get_bind()
    bind.execute(
        sa.insert(organisation).values(
            slug="default", name="Default organisation", created_at=sa.func.now()
        )
    )
    org_id = bind.execute(sa.text("SELECT id FROM organisation WHERE slug = 'default'")).scalar()
    bind.execute(sa.text("UPDATE app_user SET organisation_id = :o"), {"o": org_id})
    paths = {int(i): str(p) for i, p in bind.execute(sa.text("SELECT id, path FROM community"))}
    for campaign_id, stored in bind.execute(sa.text("SELECT id, audience FROM campaign")).all():
        audience = json.loads(stored) if isinstance(stored, str) else stored
        ids = (audience or {}).get("communities") or []
        area = common_path([paths[i] for i in ids if i in paths])
        bind.execute(
            sa.text("UPDATE campaign SET organisation_id = :o, area_path = :p WHERE id = :c"),
            {"o": org_id, "p": area, "c": campaign_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_constraint(
            op.f("fk_campaign_organisation_id_organisation"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_campaign_organisation_id"))
        batch_op.drop_column("area_path")
        batch_op.drop_column("organisation_id")
        batch_op.drop_column("approved_recipients")
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.drop_constraint(
            op.f("fk_app_user_organisation_id_organisation"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_app_user_organisation_id"))
        batch_op.drop_column("national")
        batch_op.drop_column("organisation_id")
    op.drop_table("user_area")
    op.drop_table("organisation")
