"""Public transport's live data: one polling row per transit feed with GTFS-Realtime URLs.

The row is the feed's claim and its health, as ``providers`` rows are for GBFS syncs
(providers/dispatch.py): the scheduler claims a due feed by writing a fresh ``poll_token`` and
pushing ``next_poll_at`` a lease ahead, the poll completes only while the token is still its
own, and the next poll is scheduled from the interval or with backoff. Rows are made by the
claim itself for every feed whose ``realtime`` names a URL, and go with their feed. The live
data itself is not here but in Redis (app/transit/realtime_poll.py), read by every API process.
"""

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE transit_realtime_polls (
            feed text PRIMARY KEY REFERENCES transit_feeds(slug) ON DELETE CASCADE,
            next_poll_at timestamptz,
            poll_token text,
            claimed_at timestamptz,
            requested_at timestamptz,
            last_attempt_at timestamptz,
            last_success_at timestamptz,
            consecutive_failures integer NOT NULL DEFAULT 0,
            last_error text,
            -- The latest good poll's figures: entities per kind, unknown trips, dropped values.
            stats jsonb NOT NULL DEFAULT '{}'::jsonb
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE transit_realtime_polls")
