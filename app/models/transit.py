"""Public transport (migration 0016): GTFS feeds, each loaded as an immutable version whose
rows carry its id; `TransitFeed.active_version` says which one is read (docs/transit.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


def _version_fk() -> Mapped[int]:
    return mapped_column(
        BigInteger,
        ForeignKey("transit_feed_versions.id", ondelete="CASCADE"),
        primary_key=True,
    )


class TransitFeed(Base):
    __tablename__ = "transit_feeds"

    slug: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)  # a path or an http(s) URL
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    active_version: Mapped[int | None] = mapped_column(
        BigInteger,
        ForeignKey(
            "transit_feed_versions.id",
            name="fk_transit_feeds_active_version",
            deferrable=True,
            initially="DEFERRED",
            use_alter=True,
        ),
    )
    timezone: Mapped[str | None] = mapped_column(Text)
    realtime: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    last_loaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class TransitFeedVersion(Base):
    __tablename__ = "transit_feed_versions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    feed: Mapped[str] = mapped_column(
        Text, ForeignKey("transit_feeds.slug", ondelete="CASCADE"), nullable=False, index=True
    )
    loaded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    sha256: Mapped[str] = mapped_column(Text, nullable=False)
    feed_version: Mapped[str | None] = mapped_column(Text)
    counts: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    findings: Mapped[list[Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )


class TransitAgency(Base):
    __tablename__ = "transit_agencies"

    version_id: Mapped[int] = _version_fk()
    agency_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    timezone: Mapped[str] = mapped_column(Text, nullable=False)


class TransitStop(Base):
    __tablename__ = "transit_stops"
    __table_args__ = (
        Index("ix_transit_stops_geog", text("(geom::geography)"), postgresql_using="gist"),
        Index("ix_transit_stops_geom", "geom", postgresql_using="gist"),
    )

    version_id: Mapped[int] = _version_fk()
    stop_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    lat: Mapped[float] = mapped_column(Float, nullable=False)
    lon: Mapped[float] = mapped_column(Float, nullable=False)
    geom: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=False
    )
    location_type: Mapped[int] = mapped_column(
        SmallInteger, nullable=False, server_default=text("0")
    )
    parent_station: Mapped[str | None] = mapped_column(Text)
    platform_code: Mapped[str | None] = mapped_column(Text)
    code: Mapped[str | None] = mapped_column(Text)


class TransitRoute(Base):
    __tablename__ = "transit_routes"

    version_id: Mapped[int] = _version_fk()
    route_id: Mapped[str] = mapped_column(Text, primary_key=True)
    agency_id: Mapped[str] = mapped_column(Text, nullable=False)
    short_name: Mapped[str | None] = mapped_column(Text)
    long_name: Mapped[str | None] = mapped_column(Text)
    route_type: Mapped[int] = mapped_column(Integer, nullable=False)
    color: Mapped[str | None] = mapped_column(Text)
    text_color: Mapped[str | None] = mapped_column(Text)


class TransitTrip(Base):
    __tablename__ = "transit_trips"

    version_id: Mapped[int] = _version_fk()
    trip_id: Mapped[str] = mapped_column(Text, primary_key=True)
    route_id: Mapped[str] = mapped_column(Text, nullable=False)
    service_id: Mapped[str] = mapped_column(Text, nullable=False)
    headsign: Mapped[str | None] = mapped_column(Text)
    direction_id: Mapped[int | None] = mapped_column(SmallInteger)
    short_name: Mapped[str | None] = mapped_column(Text)


# No primary key (loaded with COPY, read whole per version; see the migration): a Core table.
transit_stop_times = Table(
    "transit_stop_times",
    Base.metadata,
    # No foreign key to the version (the migration says why): app/transit/loader.py deletes a
    # version's stop times with it.
    Column("version_id", BigInteger, nullable=False),
    Column("trip_id", Text, nullable=False),
    Column("stop_sequence", Integer, nullable=False),
    Column("stop_id", Text, nullable=False),
    Column("arrival", Integer),
    Column("departure", Integer),
    Column("headsign", Text),
    Column("pickup_type", SmallInteger, nullable=False, server_default=text("0")),
    Column("drop_off_type", SmallInteger, nullable=False, server_default=text("0")),
    Index("ix_transit_stop_times_version", "version_id"),
)


class TransitCalendar(Base):
    __tablename__ = "transit_calendars"

    version_id: Mapped[int] = _version_fk()
    service_id: Mapped[str] = mapped_column(Text, primary_key=True)
    weekdays: Mapped[list[bool]] = mapped_column(ARRAY(Boolean), nullable=False)
    start_date: Mapped[date] = mapped_column(Date, nullable=False)
    end_date: Mapped[date] = mapped_column(Date, nullable=False)


class TransitCalendarDate(Base):
    __tablename__ = "transit_calendar_dates"

    version_id: Mapped[int] = _version_fk()
    service_id: Mapped[str] = mapped_column(Text, primary_key=True)
    date: Mapped[date] = mapped_column(Date, primary_key=True)
    added: Mapped[bool] = mapped_column(Boolean, nullable=False)


class TransitFrequency(Base):
    __tablename__ = "transit_frequencies"

    version_id: Mapped[int] = _version_fk()
    trip_id: Mapped[str] = mapped_column(Text, primary_key=True)
    start_time: Mapped[int] = mapped_column(Integer, primary_key=True)
    end_time: Mapped[int] = mapped_column(Integer, nullable=False)
    headway_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    exact_times: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))


class TransitFootpath(Base):
    __tablename__ = "transit_footpaths"

    version_id: Mapped[int] = _version_fk()
    from_stop_id: Mapped[str] = mapped_column(Text, primary_key=True)
    to_stop_id: Mapped[str] = mapped_column(Text, primary_key=True)
    seconds: Mapped[int] = mapped_column(Integer, nullable=False)
