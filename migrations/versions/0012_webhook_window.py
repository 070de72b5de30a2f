"""Webhook deliveries get their own retry-window start (a replay reopens it; ``created_at``
stays the delivery's creation), and dispatched outbox events an index for their retention.
"""

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"


def upgrade() -> None:
    op.execute("ALTER TABLE webhook_deliveries ADD COLUMN window_opened_at timestamptz")
    op.execute("UPDATE webhook_deliveries SET window_opened_at = created_at")
    op.execute(
        "ALTER TABLE webhook_deliveries ALTER COLUMN window_opened_at SET NOT NULL, "
        "ALTER COLUMN window_opened_at SET DEFAULT now()"
    )
    op.execute(
        "CREATE INDEX ix_outbox_events_dispatched ON outbox_events (dispatched_at) "
        "WHERE dispatched_at IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_outbox_events_dispatched")
    op.execute("ALTER TABLE webhook_deliveries DROP COLUMN window_opened_at")
