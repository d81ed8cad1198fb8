"""instance attributes the tools read: the maintenance policy and the private pool match mode;
resource groups (a default one per account, which the ECS resources without a group join)

Revision ID: 0016
Revises: 0015
"""

import secrets
import string
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
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

    op.create_table(
        "resource_groups",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("resource_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_resource_groups_account_id"), ["account_id"], unique=False)
    for table in UNGROUPED_UNTIL_JOINED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("resource_group_id", sa.String(length=64), nullable=False, server_default="")
            )
    _default_groups()


# The ECS resources with a group column: those without one join their account's default group.
GROUPED = ("instances", "security_groups", "key_pairs", "network_interfaces")
# Those whose group column is new: "" stands for the account's default group until they join one.
UNGROUPED_UNTIL_JOINED = ("images", "disks", "snapshots")


def _default_groups() -> None:
    """A default group for each account there is (nubes.domain.resource_groups makes the later
    ones), and the resources that had no group in it."""
    bind = op.get_bind()
    now = datetime.now(UTC)
    alphabet = string.ascii_lowercase + string.digits
    for (account_id,) in bind.execute(sa.text("SELECT id FROM accounts")).fetchall():
        group_id = "rg-acfm" + "".join(secrets.choice(alphabet) for _ in range(11))
        bind.execute(
            sa.text(
                "INSERT INTO resource_groups (id, account_id, name, display_name, is_default, created_at) "
                "VALUES (:id, :account, 'default', 'default resource group', :yes, :now)"
            ),
            {"id": group_id, "account": account_id, "yes": True, "now": now},
        )
        for table in GROUPED:
            bind.execute(
                sa.text(
                    f"UPDATE {table} SET resource_group_id = :group "
                    "WHERE account_id = :account AND resource_group_id = ''"
                ),
                {"group": group_id, "account": account_id},
            )


def downgrade() -> None:
    for table in UNGROUPED_UNTIL_JOINED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("resource_group_id")
    with op.batch_alter_table("resource_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resource_groups_account_id"))
    op.drop_table("resource_groups")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        for column in (
            "private_pool_match",
            "maintenance_end",
            "maintenance_start",
            "maintenance_notify",
            "maintenance_action",
        ):
            batch_op.drop_column(column)
