"""A sync asked for by staff while one is running: honoured when that one completes.

``force_sync`` used to clear the running sync's claim, so its completion (with the interval it
had computed: backoff, ``Retry-After``, an open breaker) was thrown away and the forced sync ran
into the advisory lock. Now it only records ``sync_requested_at``; the running sync, when it
completes, makes the provider due at once instead of after its interval.
"""

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"


def upgrade() -> None:
    op.execute("ALTER TABLE providers ADD COLUMN sync_requested_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE providers DROP COLUMN sync_requested_at")
