"""public addresses: the operator's public ranges, EIPs and instances' public IPs, and the public
bandwidth of instances

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "public_address_pools",
        sa.Column("cidr", sa.String(length=64), nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cidr"),
    )
    op.create_table(
        "public_addresses",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ip_address", sa.String(length=64), nullable=False),
        sa.Column("pool_cidr", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=256), nullable=False),
        sa.Column("bandwidth_out", sa.Integer(), nullable=False),
        sa.Column("bandwidth_in", sa.Integer(), nullable=False),
        sa.Column("internet_charge_type", sa.String(length=16), nullable=False),
        sa.Column("isp", sa.String(length=32), nullable=False),
        sa.Column("charge_type", sa.String(length=16), nullable=False),
        sa.Column("resource_group_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("instance_type", sa.String(length=32), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("network_interface_id", sa.String(length=64), nullable=False),
        sa.Column("private_ip", sa.String(length=64), nullable=False),
        sa.Column("vpc_id", sa.String(length=64), nullable=False),
        sa.Column("client_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("associated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ip_address"),
    )
    for column in ("account_id", "instance_id", "network_interface_id", "vpc_id"):
        op.create_index(f"ix_public_addresses_{column}", "public_addresses", [column], unique=False)
    with op.batch_alter_table("instances") as batch:
        batch.add_column(
            sa.Column(
                "internet_charge_type", sa.String(length=16), nullable=False, server_default="PayByTraffic"
            )
        )
        batch.add_column(
            sa.Column("internet_max_bandwidth_out", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("internet_max_bandwidth_in", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("internet_max_bandwidth_in")
        batch.drop_column("internet_max_bandwidth_out")
        batch.drop_column("internet_charge_type")
    for column in ("account_id", "instance_id", "network_interface_id", "vpc_id"):
        op.drop_index(f"ix_public_addresses_{column}", table_name="public_addresses")
    op.drop_table("public_addresses")
    op.drop_table("public_address_pools")
