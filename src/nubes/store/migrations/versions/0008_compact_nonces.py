"""signature nonces, compact: a 16-byte digest keyed table (WITHOUT ROWID on SQLite), expiry in
epoch seconds and no expiry index, so that recording a nonce writes one B-tree page path

Revision ID: 0008
Revises: 0007
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _epoch(value: object) -> int:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def upgrade() -> None:
    # the nonces still in their window carry over: the new digest is the old one's first half
    kept = op.get_bind().execute(sa.text("SELECT digest, expires_at FROM signature_nonces")).all()
    op.drop_index("ix_signature_nonces_expires_at", table_name="signature_nonces")
    op.drop_table("signature_nonces")
    table = op.create_table(
        "signature_nonces",
        sa.Column("digest", sa.LargeBinary(length=16), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
        sqlite_with_rowid=False,
    )
    if kept:
        op.bulk_insert(
            table,
            [
                {"digest": bytes.fromhex(digest[:32]), "expires_at": _epoch(expires_at)}
                for digest, expires_at in kept
            ],
        )


def downgrade() -> None:
    op.drop_table("signature_nonces")
    op.create_table(
        "signature_nonces",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_signature_nonces_expires_at", "signature_nonces", ["expires_at"], unique=False)
