"""A provider may push vehicle status to ``POST /ingest/{provider}/vehicles``, signed with a
secret we keep: HMAC needs the key itself, so it is stored, and never returned by the API or
logged. NULL means the provider cannot push.
"""

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    op.execute("ALTER TABLE providers ADD COLUMN ingest_secret text")


def downgrade() -> None:
    op.execute("ALTER TABLE providers DROP COLUMN ingest_secret")
