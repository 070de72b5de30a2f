"""Outbox events carry the request id of the API request whose change they report (NULL when
no request caused it: booking upkeep, a sync): the webhook deliveries of the event log with it
(docs/operations-logs.md).
"""

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"


def upgrade() -> None:
    # Nullable, no default: PostgreSQL adds it without rewriting the table.
    op.execute("ALTER TABLE outbox_events ADD COLUMN request_id text")


def downgrade() -> None:
    op.execute("ALTER TABLE outbox_events DROP COLUMN request_id")
