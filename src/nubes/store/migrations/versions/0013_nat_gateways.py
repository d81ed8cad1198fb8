"""NAT gateways: the gateways, their SNAT entries and their forward (DNAT) entries

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nat_gateways",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.String(length=32), nullable=False),
        sa.Column("zone_id", sa.String(length=64), nullable=False),
        sa.Column("vpc_id", sa.String(length=64), nullable=False),
        sa.Column("vswitch_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=256), nullable=False),
        sa.Column("nat_type", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.String(length=16), nullable=False),
        sa.Column("network_type", sa.String(length=16), nullable=False),
        sa.Column("internet_charge_type", sa.String(length=16), nullable=False),
        sa.Column("eip_bind_mode", sa.String(length=16), nullable=False),
        sa.Column("icmp_reply_enabled", sa.Boolean(), nullable=False),
        sa.Column("deletion_protection", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("snat_table_id", sa.String(length=64), nullable=False),
        sa.Column("forward_table_id", sa.String(length=64), nullable=False),
        sa.Column("private_ip", sa.String(length=64), nullable=False),
        sa.Column("resource_group_id", sa.String(length=64), nullable=False),
        sa.Column("client_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["vpc_id"], ["vpcs.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["vswitch_id"], ["vswitches.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("snat_table_id"),
        sa.UniqueConstraint("forward_table_id"),
    )
    op.create_index("ix_nat_gateways_account_id", "nat_gateways", ["account_id"], unique=False)
    op.create_index("ix_nat_gateways_vpc_id", "nat_gateways", ["vpc_id"], unique=False)
    op.create_index("ix_nat_gateways_vswitch_id", "nat_gateways", ["vswitch_id"], unique=False)
    op.create_table(
        "snat_entries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("nat_gateway_id", sa.String(length=64), nullable=False),
        sa.Column("snat_table_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("source_cidr", sa.String(length=64), nullable=False),
        sa.Column("source_vswitch_id", sa.String(length=64), nullable=False),
        sa.Column("snat_ips", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("eip_affinity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("client_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["nat_gateway_id"], ["nat_gateways.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "forward_entries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("nat_gateway_id", sa.String(length=64), nullable=False),
        sa.Column("forward_table_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("external_ip", sa.String(length=64), nullable=False),
        sa.Column("external_port", sa.String(length=16), nullable=False),
        sa.Column("internal_ip", sa.String(length=64), nullable=False),
        sa.Column("internal_port", sa.String(length=16), nullable=False),
        sa.Column("ip_protocol", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("port_break", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("client_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["nat_gateway_id"], ["nat_gateways.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    for table, column in (
        ("snat_entries", "nat_gateway_id"),
        ("snat_entries", "snat_table_id"),
        ("snat_entries", "account_id"),
        ("forward_entries", "nat_gateway_id"),
        ("forward_entries", "forward_table_id"),
        ("forward_entries", "account_id"),
    ):
        op.create_index(f"ix_{table}_{column}", table, [column], unique=False)


def downgrade() -> None:
    op.drop_table("forward_entries")
    op.drop_table("snat_entries")
    for column in ("vswitch_id", "vpc_id", "account_id"):
        op.drop_index(f"ix_nat_gateways_{column}", table_name="nat_gateways")
    op.drop_table("nat_gateways")
