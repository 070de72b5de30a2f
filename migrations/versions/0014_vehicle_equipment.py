"""Vehicles carry GBFS's ``vehicle_equipment`` (v2.3+): child seats, winter tyres, snow chains.
NULL: not reported; an empty array: reported as none.
"""

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"


def upgrade() -> None:
    op.execute("ALTER TABLE vehicles ADD COLUMN vehicle_equipment text[]")


def downgrade() -> None:
    op.execute("ALTER TABLE vehicles DROP COLUMN vehicle_equipment")
