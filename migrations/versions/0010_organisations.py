"""B2B fleet clients (issue 6): organisations, members, cost centres, invitations, API keys,
policies, webhooks with their outbox and delivery log; bookings and providers learn about them.
"""

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE organisations (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name text NOT NULL,
            timezone text NOT NULL DEFAULT 'UTC',
            plan text NOT NULL DEFAULT 'STANDARD',
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE cost_centres (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
            code text NOT NULL,
            name text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (organisation_id, code)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE organisation_members (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
            user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            role text NOT NULL CHECK (role IN ('OWNER', 'ADMIN', 'BOOKER', 'RIDER')),
            cost_centre_id uuid REFERENCES cost_centres (id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (organisation_id, user_id)
        )
        """
    )
    op.execute("CREATE INDEX ix_organisation_members_user ON organisation_members (user_id)")
    op.execute(
        """
        CREATE TABLE invitations (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
            email text NOT NULL,
            role text NOT NULL CHECK (role IN ('OWNER', 'ADMIN', 'BOOKER', 'RIDER')),
            cost_centre_id uuid REFERENCES cost_centres (id) ON DELETE SET NULL,
            token_hash bytea NOT NULL UNIQUE,
            invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            accepted_at timestamptz,
            accepted_by uuid REFERENCES users (id) ON DELETE SET NULL,
            revoked_at timestamptz
        )
        """
    )
    op.execute("CREATE INDEX ix_invitations_organisation ON invitations (organisation_id)")
    op.execute(
        """
        CREATE TABLE api_keys (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
            name text NOT NULL,
            prefix text NOT NULL,
            key_hash bytea NOT NULL UNIQUE,
            scopes text[] NOT NULL,
            created_by uuid REFERENCES users (id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz,
            last_used_at timestamptz,
            revoked_at timestamptz,
            replaced_by uuid REFERENCES api_keys (id) ON DELETE SET NULL
        )
        """
    )
    op.execute("CREATE INDEX ix_api_keys_organisation ON api_keys (organisation_id)")
    op.execute(
        """
        CREATE TABLE policies (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
            cost_centre_id uuid REFERENCES cost_centres (id) ON DELETE CASCADE,
            allowed_form_factors text[],
            allowed_providers text[],
            max_price_minor bigint,
            currency char(3),
            allowed_weekdays int[],
            allowed_from time,
            allowed_until time,
            business_area geometry(MultiPolygon, 4326),
            monthly_budget_minor bigint,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # One organisation-wide policy, and at most one per cost centre.
    op.execute(
        "CREATE UNIQUE INDEX ux_policies_organisation ON policies (organisation_id) "
        "WHERE cost_centre_id IS NULL"
    )
    op.execute(
        "CREATE UNIQUE INDEX ux_policies_cost_centre ON policies (cost_centre_id) "
        "WHERE cost_centre_id IS NOT NULL"
    )
    op.execute(
        """
        CREATE TABLE webhook_endpoints (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
            url text NOT NULL,
            secret text NOT NULL,
            events text[] NOT NULL,
            enabled boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_webhook_endpoints_organisation ON webhook_endpoints (organisation_id)"
    )
    op.execute(
        """
        CREATE TABLE outbox_events (
            id bigserial PRIMARY KEY,
            organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
            event_type text NOT NULL,
            payload jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            dispatched_at timestamptz
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_outbox_events_undispatched ON outbox_events (id) "
        "WHERE dispatched_at IS NULL"
    )
    op.execute(
        """
        CREATE TABLE webhook_deliveries (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
            event_id bigint NOT NULL REFERENCES outbox_events (id) ON DELETE CASCADE,
            status text NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz,
            last_attempt_at timestamptz,
            last_status_code integer,
            last_response text,
            last_error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            delivered_at timestamptz,
            UNIQUE (endpoint_id, event_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries (next_attempt_at) "
        "WHERE status = 'PENDING'"
    )
    op.execute(
        """
        ALTER TABLE bookings
            ADD COLUMN organisation_id uuid REFERENCES organisations (id) ON DELETE RESTRICT,
            ADD COLUMN cost_centre_id uuid REFERENCES cost_centres (id) ON DELETE SET NULL,
            ADD COLUMN booked_by_user_id uuid REFERENCES users (id) ON DELETE SET NULL,
            ADD COLUMN booked_by_api_key_id uuid REFERENCES api_keys (id) ON DELETE SET NULL
        """
    )
    op.execute(
        "CREATE INDEX ix_bookings_organisation_created ON bookings (organisation_id, created_at) "
        "WHERE organisation_id IS NOT NULL"
    )
    op.execute(
        "ALTER TABLE providers ADD COLUMN private_to uuid "
        "REFERENCES organisations (id) ON DELETE RESTRICT"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE providers DROP COLUMN private_to")
    op.execute("DROP INDEX ix_bookings_organisation_created")
    op.execute(
        "ALTER TABLE bookings DROP COLUMN booked_by_api_key_id, DROP COLUMN booked_by_user_id, "
        "DROP COLUMN cost_centre_id, DROP COLUMN organisation_id"
    )
    for table in (
        "webhook_deliveries",
        "outbox_events",
        "webhook_endpoints",
        "policies",
        "api_keys",
        "invitations",
        "organisation_members",
        "cost_centres",
        "organisations",
    ):
        op.execute(f"DROP TABLE {table}")
