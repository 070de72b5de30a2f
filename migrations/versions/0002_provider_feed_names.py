"""Remember which feeds a provider published at its last good sync.

A feed that disappears from discovery must not silently empty a table: the sync compares the
feeds it got with these and keeps the last good data when one is missing.
"""

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    op.execute("ALTER TABLE providers ADD COLUMN feed_names text[] NOT NULL DEFAULT '{}'")


def downgrade() -> None:
    op.execute("ALTER TABLE providers DROP COLUMN feed_names")
