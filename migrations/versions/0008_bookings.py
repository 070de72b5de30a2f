"""Bookings, their event log, and idempotency keys (issue 5).

``ux_bookings_active_vehicle`` is what makes double booking impossible: at most one booking per
vehicle in an active state (app/booking/states.ACTIVE), whatever the races above it.
"""

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"

_STATES = (
    "'PENDING', 'CONFIRMED', 'STARTED', 'PAUSED', 'FINISHED', 'CANCELLED', 'EXPIRED', "
    "'REJECTED', 'FAILED'"
)
_ACTIVE = "'PENDING', 'CONFIRMED', 'STARTED', 'PAUSED'"


def upgrade() -> None:
    op.execute("ALTER TABLE providers ADD COLUMN booking jsonb")
    op.execute(
        f"""
        CREATE TABLE bookings (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
            provider_id text NOT NULL,
            vehicle_id text NOT NULL,
            vehicle_external_id text NOT NULL,
            vehicle_type_id text,
            form_factor text NOT NULL,
            state text NOT NULL CHECK (state IN ({_STATES})),
            operator_booking_id text,
            operator_leg_id text,
            pricing_plan jsonb,
            currency char(3),
            estimated_price_minor bigint,
            final_price_minor bigint,
            receipt jsonb,
            start_lat double precision,
            start_lon double precision,
            end_lat double precision,
            end_lon double precision,
            distance_meters double precision,
            reserved_until timestamptz,
            started_at timestamptz,
            ended_at timestamptz,
            failure_code text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        f"CREATE UNIQUE INDEX ux_bookings_active_vehicle ON bookings (vehicle_id) "
        f"WHERE state IN ({_ACTIVE})"
    )
    op.execute("CREATE INDEX ix_bookings_user_created ON bookings (user_id, created_at DESC)")
    # The maintenance task's scans: reservations to expire, PENDING bookings to reconcile.
    op.execute(
        "CREATE INDEX ix_bookings_open ON bookings (state, updated_at) "
        "WHERE state IN ('PENDING', 'CONFIRMED')"
    )
    op.execute(
        """
        CREATE TABLE booking_events (
            id bigserial PRIMARY KEY,
            booking_id uuid NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
            at timestamptz NOT NULL,
            event text NOT NULL,
            from_state text,
            to_state text NOT NULL,
            cause text NOT NULL,
            detail jsonb NOT NULL DEFAULT '{}'
        )
        """
    )
    op.execute("CREATE INDEX ix_booking_events_booking ON booking_events (booking_id, id)")
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            owner text NOT NULL,
            key text NOT NULL,
            operation text NOT NULL,
            request_hash bytea NOT NULL,
            status text NOT NULL CHECK (status IN ('IN_PROGRESS', 'DONE')),
            response jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            locked_until timestamptz NOT NULL,
            expires_at timestamptz NOT NULL,
            PRIMARY KEY (owner, key)
        )
        """
    )
    op.execute("CREATE INDEX ix_idempotency_keys_expires ON idempotency_keys (expires_at)")


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys")
    op.execute("DROP TABLE booking_events")
    op.execute("DROP TABLE bookings")
    op.execute("ALTER TABLE providers DROP COLUMN booking")
