"""Remember which feeds a provider published at its last good sync.

A feed that disappears from discovery must not silently empty a table: the sync compares the
feeds it got with these and keeps the last good data when one is missing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE providers ADD COLUMN feed_names text[] NOT NULL DEFAULT '{}'")


def downgrade() -> None:
    op.execute("ALTER TABLE providers DROP COLUMN feed_names")
