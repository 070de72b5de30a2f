"""Public transport: GTFS feeds, each loaded as an immutable version.

A feed's rows carry the version they were loaded in. A new version is loaded beside the
active one, then `transit_feeds.active_version` is switched in one statement and the old
version's rows deleted: a reader that read the active version reads all its rows from it, so
no search ever sees a half-loaded feed (docs/transit.md). Times of day are integer seconds
since the service day's start (GTFS's "noon minus 12 h"), so 25:10:00 is 90600.

`stop_times` has no primary key: it is the large table (a city's feed holds millions of rows),
loaded with COPY and read back whole per version; its one index, on the version, is what a
read and the deletion of an old version need. The validator rejects duplicates before COPY.
Nor has it a foreign key to its version: the check ran per row and made the COPY five times
slower (0.36 s instead of 0.07 s for Cairns' 37,790 rows); the loader, the only writer, inserts
the version first in the same transaction and deletes a version's stop times with it
(app/transit/loader.py).
"""

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"


def _run(script: str) -> None:
    # asyncpg prepares each statement: one execute per statement.
    for statement in script.split(";\n"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _run(
        """
        CREATE TABLE transit_feeds (
            slug text PRIMARY KEY,
            name text NOT NULL,
            source text NOT NULL,
            enabled boolean NOT NULL DEFAULT true,
            active_version bigint,
            timezone text,
            -- GTFS-Realtime URLs by kind: trip_updates, vehicle_positions, service_alerts.
            realtime jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            last_loaded_at timestamptz,
            last_error text
        );
        CREATE TABLE transit_feed_versions (
            id bigserial PRIMARY KEY,
            feed text NOT NULL REFERENCES transit_feeds(slug) ON DELETE CASCADE,
            loaded_at timestamptz NOT NULL DEFAULT now(),
            sha256 text NOT NULL,
            feed_version text,
            counts jsonb NOT NULL DEFAULT '{}'::jsonb,
            findings jsonb NOT NULL DEFAULT '[]'::jsonb
        );
        CREATE INDEX ix_transit_feed_versions_feed ON transit_feed_versions (feed);
        ALTER TABLE transit_feeds ADD CONSTRAINT fk_transit_feeds_active_version
            FOREIGN KEY (active_version) REFERENCES transit_feed_versions(id)
            DEFERRABLE INITIALLY DEFERRED;

        CREATE TABLE transit_agencies (
            version_id bigint NOT NULL REFERENCES transit_feed_versions(id) ON DELETE CASCADE,
            agency_id text NOT NULL,
            name text NOT NULL,
            timezone text NOT NULL,
            PRIMARY KEY (version_id, agency_id)
        );
        CREATE TABLE transit_stops (
            version_id bigint NOT NULL REFERENCES transit_feed_versions(id) ON DELETE CASCADE,
            stop_id text NOT NULL,
            name text NOT NULL,
            lat double precision NOT NULL,
            lon double precision NOT NULL,
            geom geometry(Point, 4326) NOT NULL,
            location_type smallint NOT NULL DEFAULT 0,
            parent_station text,
            platform_code text,
            code text,
            PRIMARY KEY (version_id, stop_id)
        );
        CREATE INDEX ix_transit_stops_geog ON transit_stops USING gist ((geom::geography));
        CREATE INDEX ix_transit_stops_geom ON transit_stops USING gist (geom);
        CREATE TABLE transit_routes (
            version_id bigint NOT NULL REFERENCES transit_feed_versions(id) ON DELETE CASCADE,
            route_id text NOT NULL,
            agency_id text NOT NULL,
            short_name text,
            long_name text,
            route_type integer NOT NULL,
            color text,
            text_color text,
            PRIMARY KEY (version_id, route_id)
        );
        CREATE TABLE transit_trips (
            version_id bigint NOT NULL REFERENCES transit_feed_versions(id) ON DELETE CASCADE,
            trip_id text NOT NULL,
            route_id text NOT NULL,
            service_id text NOT NULL,
            headsign text,
            direction_id smallint,
            short_name text,
            PRIMARY KEY (version_id, trip_id)
        );
        CREATE TABLE transit_stop_times (
            version_id bigint NOT NULL,
            trip_id text NOT NULL,
            stop_sequence integer NOT NULL,
            stop_id text NOT NULL,
            arrival integer,
            departure integer,
            headsign text,
            pickup_type smallint NOT NULL DEFAULT 0,
            drop_off_type smallint NOT NULL DEFAULT 0
        );
        CREATE INDEX ix_transit_stop_times_version ON transit_stop_times (version_id);
        CREATE TABLE transit_calendars (
            version_id bigint NOT NULL REFERENCES transit_feed_versions(id) ON DELETE CASCADE,
            service_id text NOT NULL,
            weekdays boolean[] NOT NULL,  -- Monday first, seven values
            start_date date NOT NULL,
            end_date date NOT NULL,
            PRIMARY KEY (version_id, service_id)
        );
        CREATE TABLE transit_calendar_dates (
            version_id bigint NOT NULL REFERENCES transit_feed_versions(id) ON DELETE CASCADE,
            service_id text NOT NULL,
            date date NOT NULL,
            added boolean NOT NULL,
            PRIMARY KEY (version_id, service_id, date)
        );
        CREATE TABLE transit_frequencies (
            version_id bigint NOT NULL REFERENCES transit_feed_versions(id) ON DELETE CASCADE,
            trip_id text NOT NULL,
            start_time integer NOT NULL,
            end_time integer NOT NULL,
            headway_seconds integer NOT NULL,
            exact_times boolean NOT NULL DEFAULT false,
            PRIMARY KEY (version_id, trip_id, start_time)
        );
        CREATE TABLE transit_footpaths (
            version_id bigint NOT NULL REFERENCES transit_feed_versions(id) ON DELETE CASCADE,
            from_stop_id text NOT NULL,
            to_stop_id text NOT NULL,
            seconds integer NOT NULL,
            PRIMARY KEY (version_id, from_stop_id, to_stop_id)
        );
        """
    )


def downgrade() -> None:
    _run(
        """
        ALTER TABLE transit_feeds DROP CONSTRAINT fk_transit_feeds_active_version;
        DROP TABLE transit_footpaths, transit_frequencies, transit_calendar_dates,
            transit_calendars, transit_stop_times, transit_trips, transit_routes,
            transit_stops, transit_agencies, transit_feed_versions, transit_feeds;
        """
    )
