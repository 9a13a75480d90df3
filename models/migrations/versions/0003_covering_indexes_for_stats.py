"""covering indexes for the public statistics

/stats counts the last 12 weeks' items with their accept and resolve clocks. ``ix_items_received_at`` gains
the other columns it reads of an item (``answered_at``, ``rating``, and the ``id`` it joins on), and the
clocks' ``(item_id, due_date, met_at)`` index gains ``kind`` after the item, so that both the items and each
clock come from the indexes alone; the digest's uses of both indexes keep their leading columns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 21:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_received_at")
        batch_op.create_index(
            "ix_items_received_at", ["received_at", "unit_code", "answered_at", "rating", "id"], unique=False
        )
    with op.batch_alter_table("clocks", schema=None) as batch_op:
        batch_op.drop_index("ix_clocks_item_due_met")
        batch_op.create_index("ix_clocks_item_kind_due_met", ["item_id", "kind", "due_date", "met_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("clocks", schema=None) as batch_op:
        batch_op.drop_index("ix_clocks_item_kind_due_met")
        batch_op.create_index("ix_clocks_item_due_met", ["item_id", "due_date", "met_at"], unique=False)
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_received_at")
        batch_op.create_index("ix_items_received_at", ["received_at", "unit_code"], unique=False)
