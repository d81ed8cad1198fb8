"""custom route tables: the tables, and the custom table each vSwitch is associated with

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "route_tables",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("vpc_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resource_group_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["vpc_id"], ["vpcs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_route_tables_vpc_id", "route_tables", ["vpc_id"], unique=False)
    op.create_index("ix_route_tables_account_id", "route_tables", ["account_id"], unique=False)
    with op.batch_alter_table("vswitches") as batch:
        batch.add_column(sa.Column("route_table_id", sa.String(length=64), nullable=True))
        batch.create_index("ix_vswitches_route_table_id", ["route_table_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("vswitches") as batch:
        batch.drop_index("ix_vswitches_route_table_id")
        batch.drop_column("route_table_id")
    op.drop_index("ix_route_tables_account_id", table_name="route_tables")
    op.drop_index("ix_route_tables_vpc_id", table_name="route_tables")
    op.drop_table("route_tables")
