"""VPCs, vSwitches, route entries, security groups and rules, network interfaces, ClientTokens,
network generations

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _account() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )


def _created() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "idempotency",
        sa.Column("id", sa.Integer, primary_key=True),
        _account(),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("token", sa.String(128), nullable=False),
        sa.Column("params_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        _created(),
        sa.UniqueConstraint("account_id", "action", "token"),
    )
    op.create_table(
        "vpcs",
        sa.Column("id", sa.String(64), primary_key=True),
        _account(),
        sa.Column("region_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.String(256), nullable=False),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("vrouter_id", sa.String(64), nullable=False),
        sa.Column("route_table_id", sa.String(64), nullable=False),
        sa.Column("resource_group_id", sa.String(64), nullable=False),
        _created(),
    )
    op.create_index("ix_vpcs_account_id", "vpcs", ["account_id"])
    op.create_table(
        "vswitches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("vpc_id", sa.String(64), sa.ForeignKey("vpcs.id", ondelete="CASCADE"), nullable=False),
        _account(),
        sa.Column("region_id", sa.String(32), nullable=False),
        sa.Column("zone_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.String(256), nullable=False),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _created(),
    )
    op.create_index("ix_vswitches_vpc_id", "vswitches", ["vpc_id"])
    op.create_index("ix_vswitches_account_id", "vswitches", ["account_id"])
    op.create_table(
        "route_entries",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("route_table_id", sa.String(64), nullable=False),
        sa.Column("vpc_id", sa.String(64), sa.ForeignKey("vpcs.id", ondelete="CASCADE"), nullable=False),
        _account(),
        sa.Column("destination_cidr", sa.String(64), nullable=False),
        sa.Column("next_hop_type", sa.String(32), nullable=False),
        sa.Column("next_hop_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _created(),
    )
    op.create_index("ix_route_entries_route_table_id", "route_entries", ["route_table_id"])
    op.create_index("ix_route_entries_vpc_id", "route_entries", ["vpc_id"])
    op.create_table(
        "security_groups",
        sa.Column("id", sa.String(64), primary_key=True),
        _account(),
        sa.Column("region_id", sa.String(32), nullable=False),
        sa.Column("vpc_id", sa.String(64), sa.ForeignKey("vpcs.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.String(256), nullable=False),
        sa.Column("group_type", sa.String(16), nullable=False),
        sa.Column("inner_access_policy", sa.String(16), nullable=False),
        sa.Column("resource_group_id", sa.String(64), nullable=False),
        _created(),
    )
    op.create_index("ix_security_groups_account_id", "security_groups", ["account_id"])
    op.create_index("ix_security_groups_vpc_id", "security_groups", ["vpc_id"])
    op.create_table(
        "security_group_rules",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "group_id", sa.String(64), sa.ForeignKey("security_groups.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("ip_protocol", sa.String(8), nullable=False),
        sa.Column("port_range", sa.String(16), nullable=False),
        sa.Column("source_port_range", sa.String(16), nullable=False),
        sa.Column("peer_cidr", sa.String(64), nullable=False),
        sa.Column("peer_group_id", sa.String(64), nullable=False),
        sa.Column("policy", sa.String(8), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("nic_type", sa.String(16), nullable=False),
        sa.Column("description", sa.String(512), nullable=False),
        _created(),
    )
    op.create_index("ix_security_group_rules_group_id", "security_group_rules", ["group_id"])
    op.create_index("ix_security_group_rules_peer_group_id", "security_group_rules", ["peer_group_id"])
    op.create_table(
        "network_interfaces",
        sa.Column("id", sa.String(64), primary_key=True),
        _account(),
        sa.Column("region_id", sa.String(32), nullable=False),
        sa.Column("zone_id", sa.String(64), nullable=False),
        sa.Column("vpc_id", sa.String(64), sa.ForeignKey("vpcs.id", ondelete="RESTRICT"), nullable=False),
        sa.Column(
            "vswitch_id", sa.String(64), sa.ForeignKey("vswitches.id", ondelete="RESTRICT"), nullable=False
        ),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.String(256), nullable=False),
        sa.Column("mac", sa.String(17), nullable=False, unique=True),
        sa.Column("primary_ip", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("eni_type", sa.String(16), nullable=False),
        sa.Column("instance_id", sa.String(64), nullable=False),
        sa.Column("attachment", sa.String(16), nullable=False),
        sa.Column("resource_group_id", sa.String(64), nullable=False),
        _created(),
    )
    op.create_index("ix_network_interfaces_account_id", "network_interfaces", ["account_id"])
    op.create_index("ix_network_interfaces_vpc_id", "network_interfaces", ["vpc_id"])
    op.create_index("ix_network_interfaces_vswitch_id", "network_interfaces", ["vswitch_id"])
    op.create_table(
        "network_interface_groups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "interface_id",
            sa.String(64),
            sa.ForeignKey("network_interfaces.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "group_id",
            sa.String(64),
            sa.ForeignKey("security_groups.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.UniqueConstraint("interface_id", "group_id"),
    )
    op.create_index("ix_network_interface_groups_interface_id", "network_interface_groups", ["interface_id"])
    op.create_index("ix_network_interface_groups_group_id", "network_interface_groups", ["group_id"])

    op.create_table(
        "network_generations",
        sa.Column("vpc_id", sa.String(64), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "network_generations",
        "network_interface_groups",
        "network_interfaces",
        "security_group_rules",
        "security_groups",
        "route_entries",
        "vswitches",
        "vpcs",
        "idempotency",
    ):
        op.drop_table(table)
