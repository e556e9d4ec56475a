"""Per-target reads (the Providers page's): summaries, series per bin, error counts, latest states,
vendor status and the configured targets. Which table answers: `monitor.store.queries._sources`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from monitor.store import histogram
from monitor.store.models import IncidentRow, ProbeRow, RollupHour, RollupMinute, StatusSnapshot, TargetRow
from monitor.store.queries._sources import SOURCES, bin_plan, choose_source, fetch, filters, window
from monitor.store.results import Agg, _aware, floor_hour

_LATEST_COLUMNS = ("at", "status", "error_kind", "http_status", "ttft_ms", "total_ms", "message", "confirm")


@dataclass(frozen=True, slots=True)
class TargetState:
    """A target's latest result as seen from one region, and its open incident if any."""

    target: str
    region: str
    provider: str | None
    model: str | None
    latest: dict[str, Any] | None  # the latest result's fields (_LATEST_COLUMNS); None: never probed
    open_incident: bool
    incident_id: int | None


@dataclass(frozen=True, slots=True)
class TargetSummary:
    target: str
    source: str  # raw | minute | hour
    since: datetime  # the span actually covered (rollups: whole buckets)
    until: datetime
    count: int
    up: int
    degraded: int
    down: int
    availability: float | None  # up / count; None without probes
    degraded_share: float | None  # degraded / count
    ttft_p50: float | None
    ttft_p95: float | None
    ttft_p99: float | None
    total_p50: float | None
    total_p95: float | None
    total_p99: float | None
    errors: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    tokens_per_s: float | None = None  # mean over probes that measured it


def target_summary(
    *,
    session: Session,
    since: datetime,
    until: datetime,
    target: str | None = None,
    region: str | None = None,
    source: str | None = None,
) -> list[TargetSummary]:
    """One summary per target (all regions together unless ``region``), sorted by target.

    ``source`` (``raw`` | ``minute`` | ``hour``) overrides the choice by window length.
    """
    since, until = _aware(since, "since"), _aware(until, "until")
    source = choose_source(session, since, until, source)
    lo, hi = window(source, since, until)
    aggs: dict[str, Agg] = defaultdict(Agg)
    exact: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for row in fetch(session, source, since, until, filters(source, target, region)):
        if source == "raw":
            values = row._asdict()
            aggs[row.target].add(values)
            # The same latencies the rollups count, kept as values for exact percentiles.
            for kept, v in zip(exact[row.target], Agg.latencies(values), strict=True):
                if v is not None:
                    kept.append(v)
        else:
            aggs[row.target].merge_row(row)
    out = []
    for name in sorted(aggs):
        a = aggs[name]
        if source == "raw":
            ttft, tot = exact[name]
            pct = [histogram.exact_percentile(v, q) for v in (ttft, tot) for q in (0.5, 0.95, 0.99)]
        else:
            pct = [histogram.percentile(h, q) for h in (a.ttft_hist, a.total_hist) for q in (0.5, 0.95, 0.99)]
        out.append(TargetSummary(
            name, source, lo, hi, a.count, a.up, a.degraded, a.down,
            a.up / a.count if a.count else None, a.degraded / a.count if a.count else None, *pct,
            errors=dict(sorted(a.errors.items())), cost_usd=a.cost_usd,
            tokens_per_s=a.tokens_per_s_sum / a.tokens_per_s_n if a.tokens_per_s_n else None,
        ))
    return out


def availability_series(
    *,
    session: Session,
    target: str,
    since: datetime,
    until: datetime,
    step: timedelta,
    region: str | None = None,
    source: str | None = None,
) -> list[dict[str, Any]]:
    """Availability per ``step``-long bin: ``start, end, count, up, degraded, down, availability, source``.

    Empty bins are included (``availability`` None), so a chart shows gaps. The step is rounded
    up to a whole number of the source's buckets.
    """
    since, until = _aware(since, "since"), _aware(until, "until")
    source, lo, _, step, n = bin_plan(session, since, until, step, source)
    bins = [Agg() for _ in range(n)]
    col = "at" if source == "raw" else "bucket"
    for row in fetch(session, source, since, until, filters(source, target, region)):
        i = int((getattr(row, col) - lo) // step)
        if source == "raw":
            bins[i].add(row._asdict())
        else:
            bins[i].merge_row(row)
    return [
        {"start": lo + i * step, "end": lo + (i + 1) * step, "count": b.count, "up": b.up,
         "degraded": b.degraded, "down": b.down, "availability": b.up / b.count if b.count else None,
         "source": source}
        for i, b in enumerate(bins)
    ]


def error_counts(
    *, session: Session, since: datetime, until: datetime, target: str | None = None, source: str | None = None
) -> list[dict[str, Any]]:
    """``{target, error_kind, count, source}`` for each kind seen (``ok`` excluded), most first."""
    since, until = _aware(since, "since"), _aware(until, "until")
    source = choose_source(session, since, until, source)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in fetch(session, source, since, until, filters(source, target, None)):
        if source == "raw":
            if row.error_kind != "ok":
                counts[(row.target, row.error_kind)] += 1
        else:
            for kind, n in (row.errors or {}).items():
                counts[(row.target, kind)] += n
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"target": t, "error_kind": k, "count": n, "source": source} for (t, k), n in ordered]


def current_states(*, session: Session) -> list[TargetState]:
    """Each (target, region)'s latest result, configured-but-never-probed targets included."""
    known = {t.name: t for t in session.exec(sa.select(TargetRow)).scalars()}
    # Pairs come from the minute rollups (small, indexed) rather than a scan of the raw table.
    pairs = {(t, r) for t, r in session.exec(sa.select(RollupMinute.target, RollupMinute.region).distinct())}
    open_rows = session.exec(sa.select(IncidentRow).where(IncidentRow.closed_at.is_(None),
                                                          IncidentRow.scope == "regional")).scalars()
    open_ids = {(r.target, r.region): r.id for r in sorted(open_rows, key=lambda r: r.opened_at)}
    cols = [getattr(ProbeRow, c) for c in _LATEST_COLUMNS]
    out = []
    for name in sorted(known.keys() - {t for t, _ in pairs}):
        # No recent scheduled probe: the latest result from any region, if there is one.
        row = session.exec(sa.select(ProbeRow.region, *cols).where(ProbeRow.target == name)
                           .order_by(ProbeRow.at.desc(), ProbeRow.id.desc()).limit(1)).first()
        pairs.add((name, row.region if row else ""))
    for name, region in sorted(pairs):
        row = session.exec(sa.select(*cols).where(ProbeRow.target == name, ProbeRow.region == region)
                           .order_by(ProbeRow.at.desc(), ProbeRow.id.desc()).limit(1)).first()
        t = known.get(name)
        incident = open_ids.get((name, region))
        out.append(TargetState(name, region, t.provider if t else None, t.model if t else None,
                               row._asdict() if row else None, incident is not None, incident))
    return out


def latest_status(*, session: Session) -> list[dict[str, Any]]:
    """Each provider's latest status-page snapshot: ``provider, fetched_at, indicator, description, incidents``."""
    newest = (sa.select(StatusSnapshot.provider, sa.func.max(StatusSnapshot.fetched_at).label("at"))
              .group_by(StatusSnapshot.provider).subquery())
    q = (sa.select(StatusSnapshot)
         .join(newest, sa.and_(StatusSnapshot.provider == newest.c.provider, StatusSnapshot.fetched_at == newest.c.at))
         .order_by(StatusSnapshot.provider, StatusSnapshot.id.desc()))
    out: dict[str, dict[str, Any]] = {}
    for r in session.exec(q).scalars():
        out.setdefault(r.provider, {"provider": r.provider, "fetched_at": r.fetched_at, "indicator": r.indicator,
                                    "description": r.description, "incidents": list(r.incidents or [])})
    return list(out.values())


def latency_series(
    *,
    session: Session,
    target: str,
    since: datetime,
    until: datetime,
    step: timedelta,
    region: str | None = None,
    source: str | None = None,
) -> list[dict[str, Any]]:
    """Latency percentiles per ``step``-long bin of one target: ``start, end, count, ttft_p50, ttft_p95,
    ttft_p99, total_p50, total_p95, total_p99, source``.

    Bins as in `availability_series` (empty ones included, percentiles None). Raw rows give exact
    percentiles; rollups give them from the histograms (within one bucket, < 15 %). Which latencies
    count is `monitor.store.results.Agg.latencies`' rule (no total time for a down probe).
    """
    since, until = _aware(since, "since"), _aware(until, "until")
    source, lo, hi, step, n = bin_plan(session, since, until, step, source)
    counts = [0] * n
    if source == "raw":
        values: list[tuple[list[float], list[float]]] = [([], []) for _ in range(n)]
        for row in fetch(session, source, since, until, filters(source, target, region)):
            i = int((row.at - lo) // step)
            counts[i] += 1
            for kept, v in zip(values[i], Agg.latencies(row._asdict()), strict=True):
                if v is not None:
                    kept.append(v)
        pct = [[histogram.exact_percentile(v, q) for v in pair for q in (0.5, 0.95, 0.99)] for pair in values]
    else:
        hists = [(histogram.empty(), histogram.empty()) for _ in range(n)]
        table = SOURCES[source][0]
        cols = [table.c.bucket, table.c["count"], table.c.ttft_hist, table.c.total_hist]
        where = [table.c.bucket >= lo, table.c.bucket < hi, *filters(source, target, region)]
        for bucket, count, ttft, total in session.exec(sa.select(*cols).where(*where)):
            i = int((bucket - lo) // step)
            counts[i] += count or 0
            for into, h in zip(hists[i], (ttft or [], total or []), strict=True):
                for j, k in enumerate(h):
                    if k:
                        into[j] += k
        pct = [[histogram.percentile(h, q) for h in pair for q in (0.5, 0.95, 0.99)] for pair in hists]
    names = ("ttft_p50", "ttft_p95", "ttft_p99", "total_p50", "total_p95", "total_p99")
    return [{"start": lo + i * step, "end": lo + (i + 1) * step, "count": counts[i],
             **dict(zip(names, pct[i], strict=True)), "source": source} for i in range(n)]


def known_targets(*, session: Session) -> list[dict[str, Any]]:
    """Every target as last configured: ``name, provider, model, dialect, base_url, local, updated_at``."""
    rows = session.exec(sa.select(TargetRow).order_by(TargetRow.name)).scalars()
    return [{"name": r.name, "provider": r.provider, "model": r.model, "dialect": r.dialect, "base_url": r.base_url,
             "local": bool(r.local), "updated_at": r.updated_at} for r in rows]


def target_with_history(*, session: Session, targets: Sequence[str], since: datetime) -> str | None:
    """One of ``targets`` with raw results at or after ``since``, or hour rollups from the hour ``since``
    falls in; None when none has (where emulated history, `chaos.history`, may be written)."""
    since = _aware(since, "since")
    p, h = ProbeRow.__table__.c, RollupHour.__table__.c
    names = list(targets)
    found = (session.exec(sa.select(p.target).where(p.target.in_(names), p.at >= since).limit(1)).first()
             or session.exec(sa.select(h.target).where(h.target.in_(names), h.bucket >= floor_hour(since))
                             .limit(1)).first())
    return found[0] if found else None
