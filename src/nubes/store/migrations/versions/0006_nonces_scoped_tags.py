"""signature nonces in the store; tags keyed by the resource's owner-scoped identity

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TAG_COLUMNS = ("id", "account_id", "region_id", "resource_type", "resource_id", "key", "value")


def _create_tags(unique: tuple[str, ...]) -> None:
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.String(length=32), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(*unique),
    )
    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tags_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tags_resource_id"), ["resource_id"], unique=False)


def _rebuild_tags(unique: tuple[str, ...]) -> None:
    """The old unique constraint has no name to drop on every backend: copy, recreate, refill."""
    bind = op.get_bind()
    rows = [dict(r._mapping) for r in bind.execute(sa.text(f"SELECT {', '.join(_TAG_COLUMNS)} FROM tags"))]
    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tags_resource_id"))
        batch_op.drop_index(batch_op.f("ix_tags_account_id"))
    op.drop_table("tags")
    _create_tags(unique)
    if rows:
        table = sa.table("tags", *(sa.column(c) for c in _TAG_COLUMNS))
        op.bulk_insert(table, rows)
    if bind.dialect.name == "postgresql":
        bind.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence('tags', 'id'), COALESCE(MAX(id), 0) + 1, false) "
                "FROM tags"
            )
        )


def upgrade() -> None:
    op.create_table(
        "signature_nonces",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    with op.batch_alter_table("signature_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signature_nonces_expires_at"), ["expires_at"], unique=False)
    _rebuild_tags(("account_id", "region_id", "resource_type", "resource_id", "key"))


def downgrade() -> None:
    _rebuild_tags(("resource_id", "key"))
    with op.batch_alter_table("signature_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signature_nonces_expires_at"))
    op.drop_table("signature_nonces")
