"""audience: index deliveries by contact, for erasure and retention

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 11:25:14.184700
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Erasing a person sets contact_id NULL on their deliveries (and PostgreSQL's foreign
    # key action looks them up on every contact delete): without an index, a scan of all
    # deliveries per erased contact.
    op.create_index("ix_delivery_contact_id", "delivery", ["contact_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_delivery_contact_id", table_name="delivery")
