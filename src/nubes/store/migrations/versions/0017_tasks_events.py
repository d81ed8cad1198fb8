"""ECS tasks (TaskId) and instance system events

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ecs_tasks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("related", sa.Text(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=False),
        sa.Column("error_message", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ecs_tasks_account_id", "ecs_tasks", ["account_id"], unique=False)
    op.create_index("ix_ecs_tasks_resource_id", "ecs_tasks", ["resource_id"], unique=False)
    op.create_table(
        "system_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.String(length=32), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("real_ops", sa.Boolean(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_system_events_account_id", "system_events", ["account_id"], unique=False)
    op.create_index("ix_system_events_instance_id", "system_events", ["instance_id"], unique=False)
    op.create_index("ix_system_events_status", "system_events", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_system_events_status", table_name="system_events")
    op.drop_index("ix_system_events_instance_id", table_name="system_events")
    op.drop_index("ix_system_events_account_id", table_name="system_events")
    op.drop_table("system_events")
    op.drop_index("ix_ecs_tasks_resource_id", table_name="ecs_tasks")
    op.drop_index("ix_ecs_tasks_account_id", table_name="ecs_tasks")
    op.drop_table("ecs_tasks")
