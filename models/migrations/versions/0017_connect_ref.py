"""the hosted signup page: onboardings and abandoned signups keep the invitation's customer ref

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 23:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("onboardings", "abandoned_signups"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("connect_ref", sa.String(length=64), nullable=True))
            batch_op.create_index(f"ix_{table}_connect_ref", ["connect_ref"], unique=False)


def downgrade() -> None:
    for table in ("onboardings", "abandoned_signups"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_connect_ref")
            batch_op.drop_column("connect_ref")
