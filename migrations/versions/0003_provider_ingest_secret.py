"""A provider may push vehicle status to ``POST /ingest/{provider}/vehicles``, signed with a
secret we keep: HMAC needs the key itself, so it is stored, and never returned by the API or
logged. NULL means the provider cannot push.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE providers ADD COLUMN ingest_secret text")


def downgrade() -> None:
    op.execute("ALTER TABLE providers DROP COLUMN ingest_secret")
