"""The fault proxy's request log in the store: written by `airisk proxy --store` and drills,
read for dependency discovery (which feature was seen reaching which provider route)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from monitor.store.models import ProxyRequestRow

_FIELDS = ("route", "method", "path", "model", "feature", "stream", "status", "broken", "ttfb_ms", "total_ms")


def write_proxy_requests(*, session: Session, entries: Iterable[Mapping[str, Any]], source: str = "") -> int:
    """Inserts request-log entries (as `chaos.requestlog` makes them); returns the row count."""
    rows = []
    for e in entries:
        row = {k: e.get(k) for k in _FIELDS}
        row.update(at=datetime.fromtimestamp(e["at"], UTC), source=source, faults=list(e.get("faults") or []),
                   error=str(e.get("error") or "")[:500], method=e.get("method") or "POST", path=e.get("path") or "")
        rows.append(row)
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
