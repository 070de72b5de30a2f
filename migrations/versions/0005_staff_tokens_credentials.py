"""Staff API tokens (the admin role) and operators' API credentials.

``staff_tokens``: tokens for staff tools and scripts, shown once when created and stored only as
a SHA-256 hash (a token is 256 random bits: a plain hash is enough, no slow KDF needed); the
prefix is kept to recognise a token in lists and logs; revocation is immediate.

``provider_credentials``: what an adapter needs to call an operator's API (bearer token, API
key header, OAuth2 client credentials). Kept out of ``providers`` so that no query reading
providers for the API can select it by accident; never returned by the API or logged.
"""

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE staff_tokens (
            id bigserial PRIMARY KEY,
            name text NOT NULL,
            prefix text NOT NULL,
            token_hash bytea NOT NULL UNIQUE,
            role text NOT NULL DEFAULT 'ADMIN' CHECK (role IN ('ADMIN')),
            created_at timestamptz NOT NULL DEFAULT now(),
            last_used_at timestamptz,
            revoked_at timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE provider_credentials (
            provider_id text PRIMARY KEY REFERENCES providers(id) ON DELETE CASCADE,
            kind text NOT NULL
                CHECK (kind IN ('bearer_token', 'api_key', 'oauth2_client_credentials')),
            secret jsonb NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE provider_credentials")
    op.execute("DROP TABLE staff_tokens")
