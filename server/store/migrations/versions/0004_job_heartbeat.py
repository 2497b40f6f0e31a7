"""DEV-10: a background job's heartbeat and the server process running it, so that a job whose
server stopped can be failed as `interrupted` without touching another live server's jobs.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.store.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("heartbeat_at", server.store.models.UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("runner_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("runner_id")
        batch.drop_column("heartbeat_at")
