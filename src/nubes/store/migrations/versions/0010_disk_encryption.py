"""disk encryption: the Encrypted flag of disks, snapshots and images, and each account's data key
(wrapped under the server's master key)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_FLAGGED = ("disks", "snapshots", "images")


def upgrade() -> None:
    for table in _FLAGGED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("encrypted", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "account_disk_keys",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id"),
    )


def downgrade() -> None:
    op.drop_table("account_disk_keys")
    for table in _FLAGGED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("encrypted")
