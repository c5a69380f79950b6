"""in doubt: what the provider's read API said of a delivery whose send may have left

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from broadcaster.orm import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lookups", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("looked_up_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("lookup_note", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("lookup_note")
        batch_op.drop_column("looked_up_at")
        batch_op.drop_column("lookups")
