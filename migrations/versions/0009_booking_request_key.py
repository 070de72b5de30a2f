"""The reserveVehicle request behind each booking (its idempotency key's owner and key), so the
reconciliation task can answer that request when it settles a booking after a crash.
"""

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"


def upgrade() -> None:
    op.execute("ALTER TABLE bookings ADD COLUMN idempotency_owner text")
    op.execute("ALTER TABLE bookings ADD COLUMN idempotency_key text")


def downgrade() -> None:
    op.execute("ALTER TABLE bookings DROP COLUMN idempotency_key")
    op.execute("ALTER TABLE bookings DROP COLUMN idempotency_owner")
