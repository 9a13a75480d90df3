"""audit events sealed into the chain after commit

An audited write no longer locks the chain's head until its transaction ends: it inserts its event with no
place in the chain, and a sealer chains the committed events soon after (``bot.audit.seal``). ``seq`` is an
event's place in the chain (the id it had so far, for the events already chained), ``prev_hash`` and ``hash``
are empty until the event is sealed, and a partial index holds the events waiting for their seal. The head
now counts places (``last_seq``). On PostgreSQL the id sequence catches up with the ids the application
used to choose itself.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=True)
    op.execute("UPDATE audit_events SET seq = id")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_audit_events_seq"), ["seq"])
        batch_op.create_index(
            "ix_audit_events_unsealed",
            ["id"],
            unique=False,
            sqlite_where=sa.text("seq IS NULL"),
            postgresql_where=sa.text("seq IS NULL"),
        )
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.alter_column("last_event_id", new_column_name="last_seq", existing_type=sa.BigInteger())
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), COALESCE(MAX(id), 0) + 1, false) "
            "FROM audit_events"
        )


def downgrade() -> None:
    # The old chain hashed each event with its id: every event must be sealed (`pakn audit verify` seals), and
    # ids become the places in the chain (through negative ids, so that no two rows ever share one).
    unsealed = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM audit_events WHERE seq IS NULL")).scalar_one()
    if unsealed:
        raise RuntimeError(f"{unsealed} audit events are not sealed yet: run `pakn audit verify` first")
    op.execute("UPDATE audit_events SET id = -seq")
    op.execute("UPDATE audit_events SET id = -id")
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.alter_column("last_seq", new_column_name="last_event_id", existing_type=sa.BigInteger())
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_unsealed")
        batch_op.drop_constraint(batch_op.f("uq_audit_events_seq"), type_="unique")
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("seq")
