"""Issue 13: the factory-certificate deny-list and a manufacturer-CA allow-list per account.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.store.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "denied_certificates",
        sa.Column("thumbprint", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("denied_at", server.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("denied_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("thumbprint", name=op.f("pk_denied_certificates")),
    )
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("manufacturers", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("manufacturers")
    op.drop_table("denied_certificates")
