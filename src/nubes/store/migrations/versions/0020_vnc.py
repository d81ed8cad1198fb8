"""vnc: an instance's VNC password and the one-time tickets of DescribeInstanceVncUrl

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vnc_password", sa.String(16), nullable=False, server_default=""))
    op.create_table(
        "vnc_tickets",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "instance_id", sa.String(64), sa.ForeignKey("instances.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("display", sa.String(256), nullable=False),
        sa.Column("error", sa.String(256), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_vnc_tickets_instance_id", "vnc_tickets", ["instance_id"])
    op.create_index("ix_vnc_tickets_expires_at", "vnc_tickets", ["expires_at"])


def downgrade() -> None:
    op.drop_table("vnc_tickets")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("vnc_password")
