"""Times in the history: int64 microseconds since the epoch (exact, and what numpy computes with)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
S = 1_000_000  # µs per second
MINUTE, HOUR, DAY = 60 * S, 3600 * S, 86400 * S


def to_us(dt: datetime) -> int:
    delta = dt.astimezone(UTC) - EPOCH
    return (delta.days * 86400 + delta.seconds) * S + delta.microseconds


def to_dt(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))
