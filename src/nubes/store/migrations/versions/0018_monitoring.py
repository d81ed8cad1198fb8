"""monitoring samples and screenshots

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_samples",
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("minute", sa.Integer(), nullable=False),
        sa.Column("span_ms", sa.Integer(), nullable=False),
        sa.Column("cpu_ms", sa.Integer(), nullable=True),
        sa.Column("vcpus", sa.Integer(), nullable=True),
        sa.Column("read_bytes", sa.BigInteger(), nullable=True),
        sa.Column("write_bytes", sa.BigInteger(), nullable=True),
        sa.Column("read_ops", sa.Integer(), nullable=True),
        sa.Column("write_ops", sa.Integer(), nullable=True),
        sa.Column("read_us", sa.BigInteger(), nullable=True),
        sa.Column("write_us", sa.BigInteger(), nullable=True),
        sa.Column("rx_bytes", sa.BigInteger(), nullable=True),
        sa.Column("tx_bytes", sa.BigInteger(), nullable=True),
        sa.Column("rx_packets", sa.Integer(), nullable=True),
        sa.Column("tx_packets", sa.Integer(), nullable=True),
        sa.Column("rx_dropped", sa.Integer(), nullable=True),
        sa.Column("tx_dropped", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("resource_id", "minute"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "screenshots",
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wake_up", sa.Boolean(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("png", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["instances.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("instance_id"),
    )


def downgrade() -> None:
    op.drop_table("screenshots")
    op.drop_table("monitor_samples")
