"""cap: CAP alerts taken in, and the CAP area -> community mapping

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 12:08:07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import broadcaster.orm

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cap_area_mapping",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("created_at", broadcaster.orm.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_cap_area_mapping_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cap_area_mapping")),
        sa.UniqueConstraint("kind", "value", "community_id", name=op.f("uq_cap_area_mapping_kind")),
    )
    op.create_index(
        "ix_cap_area_mapping_kind_value", "cap_area_mapping", ["kind", "value"], unique=False
    )
    op.create_table(
        "cap_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=255), nullable=False),
        sa.Column("sender", sa.String(length=255), nullable=False),
        sa.Column("sent", broadcaster.orm.UTCDateTime(timezone=True), nullable=False),
        sa.Column("msg_type", sa.String(length=16), nullable=False),
        sa.Column("references", sa.Text(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("imported_by", sa.Integer(), nullable=True),
        sa.Column("created_at", broadcaster.orm.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
            name=op.f("fk_cap_alert_campaign_id_campaign"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["imported_by"],
            ["app_user.id"],
            name=op.f("fk_cap_alert_imported_by_app_user"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cap_alert")),
        sa.UniqueConstraint("sender", "identifier", name=op.f("uq_cap_alert_sender")),
    )
    op.create_index(op.f("ix_cap_alert_campaign_id"), "cap_alert", ["campaign_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_cap_alert_campaign_id"), table_name="cap_alert")
    op.drop_table("cap_alert")
    op.drop_index("ix_cap_area_mapping_kind_value", table_name="cap_area_mapping")
    op.drop_table("cap_area_mapping")
