"""Secondary private IPv4 addresses of network interfaces (AssignPrivateIpAddresses)

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "network_interface_private_ips",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interface_id", sa.String(length=64), nullable=False),
        sa.Column("vswitch_id", sa.String(length=64), nullable=False),
        sa.Column("ip_address", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["interface_id"], ["network_interfaces.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["vswitch_id"], ["vswitches.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("vswitch_id", "ip_address"),
    )
    op.create_index(
        op.f("ix_network_interface_private_ips_interface_id"),
        "network_interface_private_ips",
        ["interface_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_network_interface_private_ips_interface_id"), table_name="network_interface_private_ips"
    )
    op.drop_table("network_interface_private_ips")
