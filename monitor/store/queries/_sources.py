"""Which table answers a window, and how it is read: the plumbing every subject's queries share.

Windows are half-open ``[since, until)`` with aware datetimes. Which table answers depends on
the window's length: raw results up to 2 hours (exact percentiles), minute rollups up to 2 days,
hour rollups beyond (percentiles from the histograms, within one bucket, < 15 %). When the
chosen table has been pruned past ``since`` and a coarser one reaches further back, the coarser
one answers. Rollups cover whole buckets: results say which ``source`` answered and the span
it actually covered. Confirmation probes are not counted (see `monitor.store.results`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from monitor.store.models import ProbeRow, RollupHour, RollupMinute
from monitor.store.results import _aware, floor_hour, floor_minute

RAW_MAX = timedelta(hours=2)
MINUTE_MAX = timedelta(days=2)
SOURCES = {  # name: (table, time column, bucket width, floor)
    "raw": (ProbeRow.__table__, "at", None, None),
    "minute": (RollupMinute.__table__, "bucket", timedelta(minutes=1), floor_minute),
    "hour": (RollupHour.__table__, "bucket", timedelta(hours=1), floor_hour),
}


def _oldest(session: Session, source: str) -> datetime | None:
    table, col, _, _ = SOURCES[source]
    return session.exec(sa.select(sa.func.min(table.c[col]))).scalar_one_or_none()


def pick_source(*, session: Session, since: datetime, until: datetime) -> str:
    """``raw`` | ``minute`` | ``hour``: which table answers for ``[since, until)`` (see module doc)."""
    span = until - since
    order = ["raw", "minute", "hour"] if span <= RAW_MAX else ["minute", "hour"] if span <= MINUTE_MAX else ["hour"]
    # How far back each reaches (to the minute). The finest that covers `since` answers.
    reach = {s: floor_minute(o) for s in order if (o := _oldest(session, s)) is not None}
    if not reach:
        return order[0]
    for source in order:
        if source in reach and reach[source] <= since:
            return source
    # None does (the window starts before the history): the one reaching furthest back, judged
    # by the hour so that a fresh database, where all three start together, keeps the finest.
    earliest = min(floor_hour(r) for r in reach.values())
    return next(s for s in order if s in reach and floor_hour(reach[s]) == earliest)


def window(source: str, since: datetime, until: datetime) -> tuple[datetime, datetime]:
    width, floor = SOURCES[source][2], SOURCES[source][3]
    if floor is None:
        return since, until
    end = floor(until)
    return floor(since), end if end == until else end + width


def fetch(session: Session, source: str, since: datetime, until: datetime, where: list[Any]) -> list[Any]:
    table, col, _, _ = SOURCES[source]
    lo, hi = window(source, since, until)
    cond = [table.c[col] >= lo, table.c[col] < hi, *where]
    if source == "raw":
        cond.append(table.c.confirm.is_(False))
        cols = [table.c[c] for c in ("target", "region", "at", "status", "error_kind", "ttft_ms", "total_ms",
                                     "cost_usd", "tokens_per_s")]
        return session.exec(sa.select(*cols).where(*cond)).all()
    return session.exec(sa.select(table).where(*cond)).all()


def filters(source: str, target: str | None, region: str | None) -> list[Any]:
    table = SOURCES[source][0]
    return [c for c in (table.c.target == target if target is not None else None,
                        table.c.region == region if region is not None else None) if c is not None]


def choose_source(session: Session, since: datetime, until: datetime, source: str | None) -> str:
    if source is None:
        return pick_source(session=session, since=since, until=until)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    return source


def span(session: Session, since: datetime, until: datetime, source: str | None) -> tuple[str, Any, datetime,
                                                                                      datetime, list[Any]]:
    """For one aggregate over every target: ``(source, columns, lo, hi, where)``: the table answering
    ``[since, until)`` (``source``, or the one `pick_source` chooses), its columns, the span it covers
    (rollups: whole buckets) and the condition selecting that span."""
    since, until = _aware(since, "since"), _aware(until, "until")
    source = choose_source(session, since, until, source)
    table, col, _, _ = SOURCES[source]
    lo, hi = window(source, since, until)
    c = table.c
    return source, c, lo, hi, [c[col] >= lo, c[col] < hi]


def aware_utc(at: datetime) -> datetime:
    # Aggregates (min/max) bypass the column type, so SQLite hands back naive UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def bin_plan(session: Session, since: datetime, until: datetime, step: timedelta,
              source: str | None) -> tuple[str, datetime, datetime, timedelta, int]:
    """(source, lo, hi, step, bins) as `availability_series` lays its bins out."""
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    source = choose_source(session, since, until, source)
    width = SOURCES[source][2]
    if width is not None:
        step = width * max(1, math.ceil(step / width))
    lo, hi = window(source, since, until)
    n = math.ceil((hi - lo) / step)
    if n > 20_000:
        raise ValueError(f"{n} bins: use a longer step")
    return source, lo, hi, step, n
