"""Public transport's live data (migration 0017): a polling row per transit feed, its claim and
its health (app/transit/realtime_poll.py; docs/transit.md, "Live data")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class TransitRealtimePoll(Base):
    __tablename__ = "transit_realtime_polls"

    feed: Mapped[str] = mapped_column(
        Text, ForeignKey("transit_feeds.slug", ondelete="CASCADE"), primary_key=True
    )
    next_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    poll_token: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consecutive_failures: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default=text("0")
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    stats: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
