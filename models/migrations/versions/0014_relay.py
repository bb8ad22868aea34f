"""the relay: inbox rows keep their writing transaction, Meta's signature and content type;
onboardings remember the webhook override coexist set

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 21:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows stored before this revision get tx 0 (a constant default: no table rewrite), then
    # new rows take their writing transaction's id.
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tx", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(sa.Column("signature", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("content_type", sa.String(length=128), nullable=True))
    if op.get_bind().dialect.name == "postgresql":  # models.feed.CurrentTx, as feed_events.tx
        op.execute(
            sa.text(
                "ALTER TABLE inbox ALTER COLUMN tx SET DEFAULT (pg_current_xact_id()::text::bigint)"
            )
        )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_position", ["tx", "id"], unique=False)
    with op.batch_alter_table("onboardings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_override_set", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("onboardings", schema=None) as batch_op:
        batch_op.drop_column("webhook_override_set")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_position")
        batch_op.drop_column("content_type")
        batch_op.drop_column("signature")
        batch_op.drop_column("tx")
