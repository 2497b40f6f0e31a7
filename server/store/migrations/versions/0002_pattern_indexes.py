"""PostgreSQL: pattern-ops indexes so DEV-11 prefix searches use an index under any collation.

Under a non-C collation (en_US.UTF-8, and C.UTF-8 before PostgreSQL 17) a plain btree cannot serve
`LIKE 'A425%'`; a varchar_pattern_ops btree can. SQLite's GLOB uses its binary index already.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = {"ix_devices_mac_pattern": "mac", "ix_devices_serial_pattern": "serial", "ix_devices_model_pattern": "model"}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, column in INDEXES.items():
        op.create_index(name, "devices", [column], postgresql_ops={column: "varchar_pattern_ops"})


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.drop_index(name, table_name="devices")
