"""Sync dispatch claims: which dispatch of a provider's sync is the current one.

The scheduler claims a due provider atomically (``UPDATE … RETURNING``) by writing a fresh
``sync_token`` and pushing ``next_sync_at`` a lease ahead; the worker that runs the sync must
still hold that token to act on it. A task redelivered after its worker died, once a newer
dispatch exists, finds another token and is dropped, so a provider is never synced twice for
one interval. ``sync_claimed_at`` says since when a claim is outstanding (for the CLI and
for diagnosing a stuck worker).
"""

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    op.execute("ALTER TABLE providers ADD COLUMN sync_token text")
    op.execute("ALTER TABLE providers ADD COLUMN sync_claimed_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE providers DROP COLUMN sync_claimed_at")
    op.execute("ALTER TABLE providers DROP COLUMN sync_token")
