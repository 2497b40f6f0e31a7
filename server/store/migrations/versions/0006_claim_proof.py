"""Issue 13, DEV-3 claim proof: a device's label code (kept as a hash) and an account's claim
policy (its claims need a label code).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("label_code_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("label_code_required", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("label_code_required")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("label_code_hash")
