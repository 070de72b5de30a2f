"""A lease for the one change of a booking in flight, and a mark for bookings whose state at
the operator must be re-read (an action whose outcome is unknown, a compensation still due).
"""

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE bookings
            ADD COLUMN action_token text,
            ADD COLUMN action_until timestamptz,
            ADD COLUMN reconcile_after timestamptz
        """
    )
    op.execute(
        "CREATE INDEX ix_bookings_reconcile ON bookings (reconcile_after) "
        "WHERE reconcile_after IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_bookings_reconcile")
    op.execute(
        "ALTER TABLE bookings DROP COLUMN reconcile_after, DROP COLUMN action_until, "
        "DROP COLUMN action_token"
    )
