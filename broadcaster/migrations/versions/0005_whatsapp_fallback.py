"""whatsapp fallback: a delivery may be the SMS fallback of another

The one-delivery-per-(campaign, contact) rule now holds for first deliveries only
(a partial unique index); each delivery has at most one fallback.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIRST_ONLY = sa.text("fallback_of IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fallback_of", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_delivery_fallback_of_delivery"),
            "delivery",
            ["fallback_of"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_unique_constraint(op.f("uq_delivery_fallback_of"), ["fallback_of"])
        batch_op.drop_constraint("uq_delivery_campaign_id", type_="unique")
    op.create_index(
        "uq_delivery_campaign_contact",
        "delivery",
        ["campaign_id", "contact_id"],
        unique=True,
        postgresql_where=FIRST_ONLY,
        sqlite_where=FIRST_ONLY,
    )


def downgrade() -> None:
    op.execute("DELETE FROM delivery WHERE fallback_of IS NOT NULL")
    op.drop_index("uq_delivery_campaign_contact", table_name="delivery")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_delivery_campaign_id", ["campaign_id", "contact_id"])
        batch_op.drop_constraint(op.f("uq_delivery_fallback_of"), type_="unique")
        batch_op.drop_constraint(op.f("fk_delivery_fallback_of_delivery"), type_="foreignkey")
        batch_op.drop_column("fallback_of")
