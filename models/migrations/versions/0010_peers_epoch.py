"""an onboarding's peers epoch: changed by every merge, so workers may keep peers they found

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 21:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("onboardings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("peers_epoch", sa.String(length=32), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text("UPDATE onboardings SET peers_epoch = md5(random()::text || id::text)"))
    else:
        op.execute(sa.text("UPDATE onboardings SET peers_epoch = lower(hex(randomblob(16)))"))


def downgrade() -> None:
    with op.batch_alter_table("onboardings", schema=None) as batch_op:
        batch_op.drop_column("peers_epoch")
