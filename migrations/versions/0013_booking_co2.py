"""Bookings keep their vehicle type's CO2 per km as it was at reservation (like the pricing
plan): a month's usage report does not change when an operator edits its vehicle types later.
"""

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"


def upgrade() -> None:
    op.execute("ALTER TABLE bookings ADD COLUMN co2_grams_per_km double precision")
    # Bookings made before: the best knowledge there is, the type as it is now.
    op.execute(
        "UPDATE bookings b SET co2_grams_per_km = t.co2_grams_per_km "
        "FROM vehicle_types t WHERE t.id = b.vehicle_type_id AND t.co2_grams_per_km >= 0"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE bookings DROP COLUMN co2_grams_per_km")
