"""Settings from the environment, prefix ``MOBILITY_``. Tests build ``Settings(...)`` explicitly."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.smtp_url import smtp_target

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    # hide_input_in_errors: several settings are secrets (URLs with passwords, keys); a bad one
    # must not be printed whole by a start-up error.
    model_config = SettingsConfigDict(
        env_prefix="MOBILITY_", env_nested_delimiter="__", hide_input_in_errors=True
    )

    environment: Literal["development", "test", "production"] = "development"
    # A plain libpq-style URL; the async driver is chosen in app.db.
    database_url: str = "postgresql://postgres@127.0.0.1:5432/mobility"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Namespaces every Redis key, so several deployments (or test runs) can share one server.
    redis_prefix: str = "mob"

    # Search limits: every request is bounded.
    max_radius_meters: float = 5_000.0
    max_first: int = 200
    default_first: int = 50
    max_bbox_span_degrees: float = 2.0
    # Providers, vehicle types and pricing plans are cached per process this long (see
    # app/reference.py); a sync in the same process invalidates at once.
    reference_ttl_seconds: float = 5.0

    # GraphQL hardening.
    max_query_depth: int = 10
    max_aliases: int = 30
    # What one request's root fields may cost together (graphql_schema/cost.py): tripOptions
    # and usageReport cost 10, quote and rideEndCheck 3, any other field 1.
    max_query_cost: int = Field(default=30, ge=10)
    # Anonymous expensive operations (tripOptions) running at once per process; more wait for
    # a turn, holding no database connection, so cheap queries always find one. (usageReport
    # needs an organisation's credentials, and so a rate-limited caller.)
    max_concurrent_costly_operations: int = Field(default=4, ge=1)
    max_tokens: int = 2_000
    graphiql: bool | None = None  # None: on outside production
    # Schema introspection, and "Did you mean …?" suggestions in error messages (both map the
    # schema for a stranger). None: on outside production, off in it.
    graphql_introspection: bool | None = None
    graphql_suggestions: bool | None = None
    # Every request body and WebSocket message (app/edge.py); push ingest has its own, larger
    # cap (providers/push.MAX_BODY_BYTES). A GraphQL document is at most max_tokens anyway.
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    # `mobility serve` (app/server.py): a request's headers, and then its body, must arrive
    # within these; at most max_connections connections and requests in flight per process.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=4096, ge=1)
    # Browser apps of these origins (scheme://host[:port]) may call the API: CORS, preflight
    # included. None by default; a comma-separated list or a JSON array. Credentials travel in
    # the Authorization header (never cookies), so no origin is ever sent "allow credentials".
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # What the API serves to browsers (GraphiQL's assets), built from npm packages by
    # `make install` (web/, `npm ci && npm run build`).
    web_dist_dir: Path = PROJECT_ROOT / "web" / "dist"

    # Sync cadence: a provider is polled at its feeds' ttl, bounded by these.
    sync_min_interval_seconds: float = 10.0
    sync_max_interval_seconds: float = 300.0
    sync_http_timeout_seconds: float = 10.0
    sync_deadline_seconds: float = 60.0
    # A feed body larger than this is refused, read as a stream and never held whole.
    sync_max_feed_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    background_sync: bool = True
    # A provider whose last good sync is older than this is reported stale even if no sync
    # failed (the scheduler may be stopped, or the provider disabled).
    stale_after_seconds: float = 900.0
    # Search leaves out the vehicles of a provider whose data is stale (above), instead of
    # showing positions that may be long gone as if they were current (app/health.py).
    hide_stale_vehicles: bool = True
    # A stale provider whose last this many syncs failed in a row is reported DOWN.
    provider_down_after_failures: int = Field(default=3, ge=1)
    # Where the scheduler sends a due sync (providers/dispatch.py): run it in the scheduler's
    # own process ("inprocess", the one-machine default of `mobility serve`), or put it on the
    # Redis stream that `mobility worker` processes consume ("queue").
    sync_dispatch: Literal["inprocess", "queue"] = "inprocess"
    # Syncs one process runs at the same time (in-process scheduler, or one worker).
    sync_concurrency: int = Field(default=4, ge=1)
    # With queued dispatch: at most this many syncs queued or running at once, all workers
    # together (more would only wait in the stream until their claims lapse).
    sync_max_queued: int = Field(default=50, ge=1)
    # How long a dispatched sync's claim stands before the provider may be claimed again (its
    # worker presumed dead). Unset: twice the sync deadline plus 30 s.
    sync_claim_lease_seconds: float | None = Field(default=None, gt=0)
    # A failing provider is retried with exponential backoff and full jitter, capped here.
    sync_max_backoff_seconds: float = 3600.0
    # Circuit breaker per provider, its state in Redis so every worker shares it: after this
    # many consecutive failures no call goes to the operator until a cool-down has passed
    # (doubling on each failed trial, capped at the max), then one trial call is let through.
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = 60.0
    breaker_max_cooldown_seconds: float = 3600.0
    # Live updates (subscription vehicleUpdates): deltas are gathered this long into one
    # message; with nothing to send, a subscription re-checks which providers are servable
    # this often (a provider turning stale is a change no delta announces).
    subscription_batch_seconds: float = Field(default=0.25, ge=0)
    subscription_recheck_seconds: float = Field(default=30.0, gt=0)
    # Server pings on graphql-transport-ws sockets, so mobile networks and proxies keep idle
    # sockets open; 0 turns them off.
    ws_keepalive_seconds: float = Field(default=15.0, ge=0)
    max_subscriptions_per_socket: int = Field(default=10, ge=1)
    # Preferred language for GBFS v3 localized strings (then the feed's first, then any).
    preferred_language: str = "en"

    # Demo operators: feeds this project writes, served on their own local port.
    demo_feeds: bool = True
    demo_feeds_host: str = "127.0.0.1"
    demo_feeds_port: int = 8001

    conformance_dir: Path = Field(default=PROJECT_ROOT.parent / "shared" / "conformance")

    # --- Accounts (app/accounts) ---
    # Signs our own access tokens (HS256). Unset outside production: a per-process random key
    # (tokens then die with the process, fine for development and tests); production refuses
    # to start without one.
    jwt_secret: str | None = Field(default=None, repr=False)
    jwt_issuer: str = "mobility-aggregator"
    # Seal the secrets we must read back (operator credentials, webhook and push secrets) at
    # rest: comma-separated 32-byte base64url keys, the first sealing (app/secret_box.py).
    # Required in production; development and tests use a fixed development key.
    secrets_keys: str | None = Field(default=None, repr=False)
    # Once `mobility secrets reseal` has sealed what was stored before sealing existed: refuse
    # any unsealed value (one written into a column behind our back is never used).
    secrets_require_sealed: bool = False

    # --- Email (app/mail.py): invitations to organisations ---
    # smtp://[user:password@]host[:port] (STARTTLS when offered) or smtps://…; unset: no email,
    # the inviting admin passes the token on.
    smtp_url: str | None = Field(default=None, repr=False)
    mail_from: str = "Mobility <no-reply@localhost>"
    # The app's accept link, with {token} where the invitation token goes.
    invitation_link: str | None = None
    access_token_ttl_seconds: int = Field(default=900, ge=30)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    # Trust an external identity provider's JWTs instead of (or as well as) ours: its issuer,
    # the JWKS URL its signing keys are published at, and the audience our API is registered as.
    # false: riders sign in only through that identity provider (signUp, logIn and
    # refreshSession are refused, and our own access tokens are not accepted).
    password_accounts: bool = True
    external_idp_issuer: str | None = None
    external_idp_jwks_url: str | None = None
    external_idp_audience: str | None = None
    # Password hashing (argon2id). Tests lower the cost; the defaults are argon2-cffi's.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8)
    # Password hashes computed at once per process (app/accounts/passwords.py): each takes
    # argon2_memory_kib of memory and a core for its duration.
    password_hash_concurrency: int = Field(default=2, ge=1)
    # Password attempts (log-ins and sign-ups) per client address, and log-ins per account:
    # [burst, per_second] token buckets in Redis (app/accounts/throttle.py). An app retries a
    # mistyped password a few times; a person does not sign up every minute.
    password_attempts_per_address: tuple[float, float] = (20, 1 / 6)
    password_attempts_per_account: tuple[float, float] = (10, 1 / 30)

    # --- Quotes and trip options (app/booking/quotes) ---
    quote_ttl_seconds: int = Field(default=120, ge=5)
    walking_speed_kmh: float = Field(default=4.8, gt=0)
    # How far from the start point trip options look for vehicles.
    trip_options_radius_meters: float = Field(default=1_000.0, gt=0)
    # Straight-line distance times this is the ride distance estimate (streets are not straight).
    detour_factor: float = Field(default=1.3, ge=1)
    # Average ride speeds per form factor, km/h, for ride-time estimates.
    ride_speed_kmh: dict[str, float] = Field(
        default_factory=lambda: {
            "bicycle": 15.0,
            "cargo_bicycle": 12.0,
            "scooter_standing": 15.0,
            "scooter_seated": 18.0,
            "scooter": 15.0,
            "moped": 25.0,
            "car": 30.0,
            "other": 12.0,
        }
    )

    # --- Booking (app/booking) ---
    # Eligibility per form factor: minimum age and whether a verified licence is needed. The
    # keys are form factors; a form factor not listed has no requirement.
    eligibility_rules: dict[str, dict[str, int | bool]] = Field(
        default_factory=lambda: {
            "car": {"min_age": 18, "licence_required": True},
            "moped": {"min_age": 16, "licence_required": True},
        }
    )
    # Timeout for one call to an operator's booking API, and the overall deadline of a
    # reservation (planning + booking + commit).
    booking_http_timeout_seconds: float = Field(default=10.0, gt=0)
    booking_deadline_seconds: float = Field(default=20.0, gt=0)
    # A reservation is held this long when the operator does not say (GBFS
    # default_reserve_time is per vehicle type and wins).
    default_reservation_minutes: int = Field(default=15, ge=1)
    # Quotes and trip options cover rides up to this straight-line distance (TRIP_TOO_LONG).
    max_trip_distance_meters: float = Field(default=100_000.0, gt=0)
    # Bookings one rider may hold at once (reserved, riding or paused), whoever booked them
    # (the rider, or a booker or API key of their organisation): one account cannot hoard a fleet.
    max_active_bookings_per_rider: int = Field(default=3, ge=1)
    # Bookings left PENDING longer than this (a crash between the operator's answer and our
    # commit) are settled by the reconciliation task, which asks the operator.
    booking_reconcile_after_seconds: float = Field(default=60.0, gt=0)
    booking_maintenance_interval_seconds: float = Field(default=15.0, gt=0)
    # Idempotency keys are kept this long, then forgotten.
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    # Rate limits of authenticated callers (app/rate_limit.py; numbers per plan there). Off
    # only for load tests that play many requests of one rider (bench/booking.py).
    rate_limits_enabled: bool = True
    # Per organisation plan: {"STANDARD": [burst, per_second], …}; unset: the built-in table
    # (app/rate_limit.PLAN_LIMITS). An organisation's plan is set by staff (setOrganisationPlan).
    rate_limit_plans: dict[str, tuple[int, float]] | None = None
    # Per signed-in rider: [burst, per_second]; unset: app/rate_limit.RIDER_LIMIT.
    rate_limit_rider: tuple[int, float] | None = None
    # TOMP operator simulators for the demo, on their own local ports (providers/simulators).
    demo_tomp_port: int = 8002

    @field_validator("database_url")
    @classmethod
    def _plain_postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise ValueError("MOBILITY_DATABASE_URL must be a postgresql:// URL")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _cors_origins(cls, value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError("MOBILITY_CORS_ORIGINS: not a JSON array") from exc
            else:
                value = [part for part in text.split(",") if part.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError("MOBILITY_CORS_ORIGINS: a list of origins such as https://app.example")
        return tuple(_origin(v) for v in value)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        # Refused at start-up rather than at the first invitation.
        if value:
            smtp_target(value)
        return value or None

    @property
    def introspection_enabled(self) -> bool:
        if self.graphql_introspection is not None:
            return self.graphql_introspection
        return self.environment != "production"

    @property
    def suggestions_enabled(self) -> bool:
        if self.graphql_suggestions is not None:
            return self.graphql_suggestions
        return self.environment != "production"

    @property
    def graphiql_enabled(self) -> bool:
        return self.environment != "production" if self.graphiql is None else self.graphiql

    @property
    def demo_feeds_base_url(self) -> str:
        return f"http://{self.demo_feeds_host}:{self.demo_feeds_port}"


_ORIGIN = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


def _origin(value: str) -> str:
    """An origin exactly as a browser sends it in ``Origin``: scheme, host, optional port; no
    path, no trailing slash, no wildcard (the list is an allow-list)."""
    origin = value.strip().lower()
    if not _ORIGIN.match(origin):
        raise ValueError(
            f"MOBILITY_CORS_ORIGINS: {value.strip()!r} is not an origin; write it as "
            "https://host or http://host:port, without a path or a wildcard"
        )
    return origin


@lru_cache
def get_settings() -> Settings:
    return Settings()
