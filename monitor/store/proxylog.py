"""The fault proxy's request log in the store: written by `airisk proxy --store` and drills,
read for dependency discovery (which feature was seen reaching which provider route)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from monitor.store.models import ProxyRequestRow

# Longest text kept per column (characters). Entries come from requests anyone can send through
# the proxy: a row holds what dependency discovery reads, not whatever a client made up.
_CAPS = {"source": 200, "route": 100, "method": 16, "path": 2000, "model": 200, "feature": 200, "broken": 64,
         "error": 500}
_MAX_FAULTS, _FAULT_CAP = 20, 64
_MAX_MS = 1e12  # ~30 years: any finite time beyond it is a bug, not a measurement


def _text(value: Any, cap: int) -> str:
    """``value`` as text a database takes: NUL removed (PostgreSQL refuses it), unencodable
    characters (lone surrogates) replaced, at most ``cap`` characters."""
    if not isinstance(value, str):
        try:
            value = json.dumps(value, default=repr) if isinstance(value, dict | list) else str(value)
        except (ValueError, TypeError, RecursionError):  # a cycle, deep nesting
            value = repr(type(value))
    value = value[: cap * 2]  # before the work below: an oversized value costs no more than a capped one
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value[:cap]


def _opt_text(value: Any, cap: int) -> str | None:
    return None if value is None else _text(value, cap)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and abs(value) <= _MAX_MS else None


def _at(value: Any, now: datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    seconds = _number(value)
    if seconds is not None:
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):  # beyond the years a datetime holds
            pass
    return now


def proxy_row(entry: Mapping[str, Any], *, source: str = "", now: datetime | None = None) -> dict[str, Any]:
    """The `ProxyRequestRow` values for one request-log entry, every field coerced to its column's
    type and capped, so that no entry (a ``"model": {}`` body, a path with NUL, a huge error) can
    make the database refuse the row; a missing or impossible ``at`` becomes ``now``."""
    now = now or datetime.now(UTC)
    status = entry.get("status")
    stream = entry.get("stream")
    faults = entry.get("faults")
    return {
        "at": _at(entry.get("at"), now),
        "source": _text(source, _CAPS["source"]),
        "route": _text(entry.get("route") or "", _CAPS["route"]),
        "method": _text(entry.get("method") or "POST", _CAPS["method"]),
        "path": _text(entry.get("path") or "", _CAPS["path"]),
        "model": _opt_text(entry.get("model"), _CAPS["model"]) or None,
        "feature": _opt_text(entry.get("feature"), _CAPS["feature"]),
        "stream": stream if isinstance(stream, bool) else None,
        "status": status if type(status) is int and 100 <= status <= 999 else None,
        "faults": [_text(f, _FAULT_CAP) for f in faults[:_MAX_FAULTS]] if isinstance(faults, list | tuple) else [],
        "broken": _opt_text(entry.get("broken"), _CAPS["broken"]) or None,
        "ttfb_ms": _number(entry.get("ttfb_ms")),
        "total_ms": _number(entry.get("total_ms")),
        "error": _text(entry.get("error") or "", _CAPS["error"]),
    }


def write_proxy_requests(*, session: Session, entries: Iterable[Mapping[str, Any]], source: str = "") -> int:
    """Inserts request-log entries (as `chaos.requestlog` makes them, coerced by `proxy_row`);
    returns the row count. Never commits: the caller owns the transaction."""
    now = datetime.now(UTC)
    rows = [proxy_row(e, source=source, now=now) for e in entries]
    if rows:
        session.exec(sa.insert(ProxyRequestRow.__table__), params=rows)
    return len(rows)


def proxy_requests(*, session: Session, since: datetime | None = None, until: datetime | None = None,
                   feature: str | None = None, source: str | None = None, limit: int | None = None,
                   ) -> list[ProxyRequestRow]:
    query = select(ProxyRequestRow).order_by(ProxyRequestRow.at, ProxyRequestRow.id)
    if since is not None:
        query = query.where(ProxyRequestRow.at >= since)
    if until is not None:
        query = query.where(ProxyRequestRow.at < until)
    if feature is not None:
        query = query.where(ProxyRequestRow.feature == feature)
    if source is not None:
        query = query.where(ProxyRequestRow.source == source)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


@dataclass(frozen=True, slots=True)
class ObservedEdge:
    """A feature seen reaching a route: how often, and how often the route answered well."""

    feature: str
    route: str
    requests: int
    answered: int  # 2xx with no fault that broke the answer
    last_at: datetime


def observed_dependencies(*, session: Session, since: datetime | None = None) -> list[ObservedEdge]:
    """Feature -> route edges seen in the proxy log (requests without a feature header are left out)."""
    t = ProxyRequestRow.__table__.c
    ok = sa.and_(t.status >= 200, t.status < 300, t.broken.is_(None))
    query = (sa.select(t.feature, t.route, sa.func.count(), sa.func.sum(sa.case((ok, 1), else_=0)), sa.func.max(t.at))
             .where(t.feature.is_not(None)).group_by(t.feature, t.route).order_by(t.feature, t.route))
    if since is not None:
        query = query.where(t.at >= since)
    return [ObservedEdge(f, r, int(n), int(a or 0), last.replace(tzinfo=UTC) if last.tzinfo is None else last)
            for f, r, n, a, last in session.execute(query)]


@dataclass(frozen=True, slots=True)
class PeakRate:
    """A feature's busiest minute in the proxy log: its requests / 60 is the peak rate the risk model uses."""

    feature: str
    minute: datetime
    """The busiest minute's start (the earliest, of equals)."""
    requests: int

    @property
    def rps(self) -> float:
        return self.requests / 60


def _minute(column: Any, dialect: str) -> Any:
    # SQLite keeps a timestamp as text "YYYY-MM-DD HH:MM:SS.ffffff" (UTC, see UTCDateTime): its first
    # 16 characters are the minute, and they sort as the minutes do.
    if dialect == "sqlite":
        return sa.func.substr(column, 1, 16)
    return sa.func.date_trunc("minute", column)


def _minute_start(value: Any) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(f"{value[:16]}:00").replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def peak_rates(*, session: Session, since: datetime | None = None, until: datetime | None = None,
               ) -> dict[str, PeakRate]:
    """Per feature: the minute with the most requests in the proxy log, every route together.

    Drills' own requests (source ``drill:...``) are left out: a drill's load is made up, not the
    product's traffic. A request the product retried on a fallback counts once per attempt, which
    makes the peak higher, not lower: the risk model's side of caution."""
    t = ProxyRequestRow.__table__.c
    minute = _minute(t.at, session.get_bind().dialect.name)
    per_minute = (sa.select(t.feature.label("feature"), minute.label("minute"), sa.func.count().label("n"))
                  .where(t.feature.is_not(None), sa.not_(t.source.startswith("drill:")))
                  .group_by(t.feature, minute))
    if since is not None:
        per_minute = per_minute.where(t.at >= since)
    if until is not None:
        per_minute = per_minute.where(t.at < until)
    counts = per_minute.subquery()
    top = sa.select(counts.c.feature, sa.func.max(counts.c.n).label("n")).group_by(counts.c.feature).subquery()
    query = (sa.select(counts.c.feature, sa.func.min(counts.c.minute), top.c.n)
             .join(top, sa.and_(counts.c.feature == top.c.feature, counts.c.n == top.c.n))
             .group_by(counts.c.feature, top.c.n))
    return {f: PeakRate(f, _minute_start(m), int(n)) for f, m, n in session.execute(query)}
