"""ORM models: the system of record, one module per domain. The schema itself changes only
through ``migrations/``; everything imports the models from here (``from app.models import X``)."""

from app.models.accounts import (
    RefreshToken,
    StaffToken,
    User,
)
from app.models.base import Base
from app.models.booking import (
    ACTIVE_BOOKING_STATES,
    Booking,
    BookingEventRow,
    IdempotencyKey,
)
from app.models.fleet import (
    ApiKey,
    CostCentre,
    Invitation,
    Organisation,
    OrganisationMember,
    OutboxEvent,
    Policy,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.models.providers import (
    GeofencingZone,
    PricingPlan,
    Provider,
    ProviderCredentials,
    Station,
    SyncRun,
    SystemRegion,
    Vehicle,
    VehicleType,
)
from app.models.transit import (
    TransitAgency,
    TransitCalendar,
    TransitCalendarDate,
    TransitFeed,
    TransitFeedVersion,
    TransitFootpath,
    TransitFrequency,
    TransitRoute,
    TransitStop,
    TransitTrip,
    transit_stop_times,
)
from app.models.transit_realtime import TransitRealtimePoll

__all__ = [
    "ACTIVE_BOOKING_STATES",
    "ApiKey",
    "Base",
    "Booking",
    "BookingEventRow",
    "CostCentre",
    "GeofencingZone",
    "IdempotencyKey",
    "Invitation",
    "Organisation",
    "OrganisationMember",
    "OutboxEvent",
    "Policy",
    "PricingPlan",
    "Provider",
    "ProviderCredentials",
    "RefreshToken",
    "StaffToken",
    "Station",
    "SyncRun",
    "SystemRegion",
    "TransitAgency",
    "TransitCalendar",
    "TransitCalendarDate",
    "TransitFeed",
    "TransitFeedVersion",
    "TransitFootpath",
    "TransitFrequency",
    "TransitRealtimePoll",
    "TransitRoute",
    "TransitStop",
    "TransitTrip",
    "User",
    "Vehicle",
    "VehicleType",
    "WebhookDelivery",
    "WebhookEndpoint",
    "transit_stop_times",
]
