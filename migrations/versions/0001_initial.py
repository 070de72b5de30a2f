"""Initial schema: providers, reference data, vehicles, stations, zones, regions, sync runs."""

from alembic import op

revision: str = "0001"
down_revision: str | None = None


def _execute_script(script: str) -> None:
    # asyncpg prepares each statement, and a prepared statement holds exactly one command.
    for statement in script.split(";\n"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    # The extension is created by `mobility migrate` before Alembic runs (it needs a superuser
    # on most installations); this is a guard so a bare `alembic upgrade` says what is wrong.
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    _execute_script(
        """
        CREATE TABLE providers (
            id text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
            name text NOT NULL,
            adapter text NOT NULL,
            config jsonb NOT NULL DEFAULT '{}'::jsonb,
            enabled boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            gbfs_version text,
            system_info jsonb NOT NULL DEFAULT '{}'::jsonb,
            global_rules jsonb NOT NULL DEFAULT '[]'::jsonb,
            ttl_seconds integer,
            last_sync_at timestamptz,
            last_success_at timestamptz,
            last_error text,
            stale boolean NOT NULL DEFAULT false,
            consecutive_failures integer NOT NULL DEFAULT 0,
            next_sync_at timestamptz
        );

        CREATE TABLE vehicle_types (
            id text PRIMARY KEY,
            provider_id text NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
            external_id text NOT NULL,
            form_factor text NOT NULL,
            propulsion_type text NOT NULL,
            name text,
            max_range_meters double precision,
            rider_capacity integer,
            default_pricing_plan_id text,
            return_constraint text,
            co2_grams_per_km double precision,
            default_reserve_time_minutes integer,
            raw_form_factor text
        );
        CREATE INDEX ix_vehicle_types_provider_id ON vehicle_types (provider_id);

        CREATE TABLE pricing_plans (
            id text PRIMARY KEY,
            provider_id text NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
            external_id text NOT NULL,
            name text NOT NULL,
            description text,
            currency char(3) NOT NULL,
            price_minor bigint NOT NULL,
            is_taxable boolean NOT NULL,
            per_km_pricing jsonb NOT NULL DEFAULT '[]'::jsonb,
            per_min_pricing jsonb NOT NULL DEFAULT '[]'::jsonb,
            surge_pricing boolean NOT NULL DEFAULT false,
            url text
        );
        CREATE INDEX ix_pricing_plans_provider_id ON pricing_plans (provider_id);

        CREATE TABLE stations (
            id text PRIMARY KEY,
            provider_id text NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
            external_id text NOT NULL,
            name text NOT NULL,
            short_name text,
            geom geometry(Point, 4326) NOT NULL,
            capacity integer,
            region_id text,
            is_virtual boolean NOT NULL DEFAULT false,
            rental_uris jsonb,
            num_vehicles_available integer,
            num_vehicles_disabled integer,
            num_docks_available integer,
            is_installed boolean,
            is_renting boolean,
            is_returning boolean,
            vehicle_types_available jsonb NOT NULL DEFAULT '[]'::jsonb,
            last_reported timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX ix_stations_provider_id ON stations (provider_id);
        -- Radius queries run on geography; the index matches that expression.
        CREATE INDEX ix_stations_geog ON stations USING gist ((geom::geography));
        CREATE INDEX ix_stations_geom ON stations USING gist (geom);

        CREATE TABLE vehicles (
            id text PRIMARY KEY,
            provider_id text NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
            external_id text NOT NULL,
            vehicle_type_id text,
            pricing_plan_id text,
            station_id text,
            geom geometry(Point, 4326) NOT NULL,
            form_factor text NOT NULL,
            propulsion_type text NOT NULL,
            is_reserved boolean NOT NULL,
            is_disabled boolean NOT NULL,
            current_range_meters double precision,
            current_fuel_percent double precision,
            rental_uris jsonb,
            last_reported timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX ix_vehicles_provider_id ON vehicles (provider_id);
        CREATE INDEX ix_vehicles_geog ON vehicles USING gist ((geom::geography));
        CREATE INDEX ix_vehicles_geom ON vehicles USING gist (geom);

        CREATE TABLE geofencing_zones (
            id text PRIMARY KEY,
            provider_id text NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
            ordinal integer NOT NULL,
            name text,
            geom geometry(MultiPolygon, 4326) NOT NULL,
            rules jsonb NOT NULL,
            starts_at timestamptz,
            ends_at timestamptz
        );
        CREATE INDEX ix_geofencing_zones_provider_id ON geofencing_zones (provider_id);
        CREATE INDEX ix_geofencing_zones_geom ON geofencing_zones USING gist (geom);

        CREATE TABLE system_regions (
            id text PRIMARY KEY,
            provider_id text NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
            external_id text NOT NULL,
            name text NOT NULL
        );
        CREATE INDEX ix_system_regions_provider_id ON system_regions (provider_id);

        CREATE TABLE sync_runs (
            id bigserial PRIMARY KEY,
            provider_id text NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
            started_at timestamptz NOT NULL,
            finished_at timestamptz,
            status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
            error text,
            counts jsonb NOT NULL DEFAULT '{}'::jsonb,
            error_count integer NOT NULL DEFAULT 0,
            warning_count integer NOT NULL DEFAULT 0,
            findings jsonb NOT NULL DEFAULT '[]'::jsonb
        );
        CREATE INDEX ix_sync_runs_provider_started ON sync_runs (provider_id, started_at DESC);
        """
    )


def downgrade() -> None:
    _execute_script(
        """
        DROP TABLE sync_runs;
        DROP TABLE system_regions;
        DROP TABLE geofencing_zones;
        DROP TABLE vehicles;
        DROP TABLE stations;
        DROP TABLE pricing_plans;
        DROP TABLE vehicle_types;
        DROP TABLE providers;
        """
    )
