"""instance attributes the tools read: the maintenance policy and the private pool match mode

Revision ID: 0015
Revises: 0013

0014 is another branch's; whoever merges both re-chains this one onto it (down_revision "0014").
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "maintenance_action", sa.String(length=16), nullable=False, server_default="AutoRecover"
            )
        )
        batch_op.add_column(
            sa.Column("maintenance_notify", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("maintenance_start", sa.String(length=8), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("maintenance_end", sa.String(length=8), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("private_pool_match", sa.String(length=8), nullable=False, server_default="None")
        )


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        for column in (
            "private_pool_match",
            "maintenance_end",
            "maintenance_start",
            "maintenance_notify",
            "maintenance_action",
        ):
            batch_op.drop_column(column)
