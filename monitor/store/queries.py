"""Every read the dashboard and the CLI need. Plain dataclasses and dicts out, never ORM rows.

Windows are half-open ``[since, until)`` with aware datetimes. Which table answers depends on
the window's length: raw results up to 2 hours (exact percentiles), minute rollups up to 2 days,
hour rollups beyond (percentiles from the histograms, within one bucket, < 15 %). When the
chosen table has been pruned past ``since`` and a coarser one reaches further back, the coarser
one answers. Rollups cover whole buckets: results say which ``source`` answered and the span
it actually covered. Confirmation probes are not counted (see `monitor.store.results`).

The incident helpers the monitor writes with live in `monitor.store.incidents` and are
re-exported here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from monitor.store import histogram
from monitor.store.drills import quality_short
from monitor.store.incidents import (  # noqa: F401  (re-exported)
    close_incident,
    open_incident,
    open_incident_for,
    record_status,
    set_vendor_post,
)
from monitor.store.models import (
    IncidentRow,
    ProbeRow,
    RollupHour,
    RollupMinute,
    StatusSnapshot,
    TargetRow,
    VantageRow,
)
from monitor.store.results import Agg, _aware, floor_hour, floor_minute

RAW_MAX = timedelta(hours=2)
MINUTE_MAX = timedelta(days=2)
_SOURCES = {  # name: (table, time column, bucket width, floor)
    "raw": (ProbeRow.__table__, "at", None, None),
    "minute": (RollupMinute.__table__, "bucket", timedelta(minutes=1), floor_minute),
    "hour": (RollupHour.__table__, "bucket", timedelta(hours=1), floor_hour),
}
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


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    target: str
    provider: str
    region: str
    state: str
    opened_at: datetime
    closed_at: datetime | None
    duration_s: float | None  # None while open
    cause: dict[str, Any]
    vendor_first_post_at: datetime | None
    lead_time_s: float | None  # > 0: we detected it before the vendor posted
    scope: str = "regional"  # regional (one monitor's view) | global (the quorum's: the one that pages)
    regions: dict[str, Any] = field(default_factory=dict)  # global: region -> {"since", "state"}


def _oldest(session: Session, source: str) -> datetime | None:
    table, col, _, _ = _SOURCES[source]
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


def _window(source: str, since: datetime, until: datetime) -> tuple[datetime, datetime]:
    width, floor = _SOURCES[source][2], _SOURCES[source][3]
    if floor is None:
        return since, until
    end = floor(until)
    return floor(since), end if end == until else end + width


def _fetch(session: Session, source: str, since: datetime, until: datetime, where: list[Any]) -> list[Any]:
    table, col, _, _ = _SOURCES[source]
    lo, hi = _window(source, since, until)
    cond = [table.c[col] >= lo, table.c[col] < hi, *where]
    if source == "raw":
        cond.append(table.c.confirm.is_(False))
        cols = [table.c[c] for c in ("target", "region", "at", "status", "error_kind", "ttft_ms", "total_ms",
                                     "cost_usd", "tokens_per_s")]
        return session.exec(sa.select(*cols).where(*cond)).all()
    return session.exec(sa.select(table).where(*cond)).all()


def _filters(source: str, target: str | None, region: str | None) -> list[Any]:
    table = _SOURCES[source][0]
    return [c for c in (table.c.target == target if target is not None else None,
                        table.c.region == region if region is not None else None) if c is not None]


def _source(session: Session, since: datetime, until: datetime, source: str | None) -> str:
    if source is None:
        return pick_source(session=session, since=since, until=until)
    if source not in _SOURCES:
        raise ValueError(f"source must be one of {', '.join(_SOURCES)}, got {source!r}")
    return source


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
    source = _source(session, since, until, source)
    lo, hi = _window(source, since, until)
    aggs: dict[str, Agg] = defaultdict(Agg)
    exact: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for row in _fetch(session, source, since, until, _filters(source, target, region)):
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
    source, lo, _, step, n = _bin_plan(session, since, until, step, source)
    bins = [Agg() for _ in range(n)]
    col = "at" if source == "raw" else "bucket"
    for row in _fetch(session, source, since, until, _filters(source, target, region)):
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
    source = _source(session, since, until, source)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in _fetch(session, source, since, until, _filters(source, target, None)):
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


def incidents(
    *, session: Session, since: datetime | None = None, open_only: bool = False, target: str | None = None,
    scope: str | None = None,
) -> list[Incident]:
    """Incidents open at some time at or after ``since`` (all without it), newest first; only those
    of ``scope`` (regional | global) when given."""
    q = sa.select(IncidentRow)
    if scope is not None:
        q = q.where(IncidentRow.scope == scope)
    if open_only:
        q = q.where(IncidentRow.closed_at.is_(None))
    if since is not None:
        since = _aware(since, "since")
        q = q.where(sa.or_(IncidentRow.closed_at.is_(None), IncidentRow.closed_at >= since))
    if target is not None:
        q = q.where(IncidentRow.target == target)
    rows = session.exec(q.order_by(IncidentRow.opened_at.desc(), IncidentRow.id.desc())).scalars()
    return [
        Incident(r.id, r.target, r.provider, r.region, r.state, r.opened_at, r.closed_at,
                 (r.closed_at - r.opened_at).total_seconds() if r.closed_at else None, dict(r.cause or {}),
                 r.vendor_first_post_at, r.lead_time_s, r.scope, dict(r.regions or {}))
        for r in rows
    ]


def vantage_points(*, session: Session, now: datetime, timeout: float) -> list[dict[str, Any]]:
    """Every monitor that ever wrote a heartbeat, by region: ``region, host, pid, version, started_at,
    last_seen, alive`` (its heartbeat at most ``timeout`` s old), ``lost_at`` (when its loss was
    announced, if it still is)."""
    cutoff = _aware(now, "now") - timedelta(seconds=timeout)
    return [{"region": r.region, "host": r.host, "pid": r.pid, "version": r.version, "started_at": r.started_at,
             "last_seen": r.last_seen, "alive": r.last_seen >= cutoff, "lost_at": r.lost_at}
            for r in session.exec(sa.select(VantageRow).order_by(VantageRow.region)).scalars()]


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


# --- For the risk model (monitor.risk): availability within a latency budget, and what drills saw. ---


@dataclass(frozen=True, slots=True)
class BudgetCounts:
    """Scheduled probes of some targets over a window, and how many answered within a latency budget.

    Raw rows answer exactly. Where the raw rows have been pruned and the hour rollups reach further
    back, the older part is read from the rollups' histograms: ``within`` is then a lower bound,
    strict by up to one histogram bucket (< 15 % of the budget), and ``from_rollups`` says how many
    of the samples it concerns.
    """

    targets: tuple[str, ...]
    count: int  # scheduled probes (confirmation probes are never counted)
    answered: int  # up or degraded: the backend gave an answer
    within: int  # answered, with time to first token and total time within the budget
    first_at: datetime | None  # the span the samples cover (rollups: whole hours)
    last_at: datetime | None
    from_rollups: int = 0


def budget_counts(
    *,
    session: Session,
    targets: Sequence[str],
    since: datetime,
    until: datetime,
    first_token_ms: float | None = None,
    total_ms: float | None = None,
    exact_recent: timedelta | None = None,
) -> BudgetCounts:
    """``targets`` (all regions together) over ``[since, until)`` against a latency budget.

    An answer counts as within the budget when its TTFT (its total time when no TTFT was
    recorded) is at most ``first_token_ms`` and its total time at most ``total_ms``; an unset
    bound always holds. Raw rows answer from the hour in which the oldest raw row falls onwards;
    the hour rollups answer for the whole hours before it. With ``exact_recent``, raw rows answer
    only for that long before ``until`` and the hour rollups for the whole hours before: a month
    of raw rows takes seconds to read, a month of hour rollups milliseconds.
    """
    since, until = _aware(since, "since"), _aware(until, "until")
    names = tuple(sorted(set(targets)))
    if not names:
        return BudgetCounts(names, 0, 0, 0, None, None)
    p = ProbeRow.__table__.c
    scheduled = [p.target.in_(names), p.confirm.is_(False)]
    raw_oldest = session.exec(sa.select(sa.func.min(p.at)).where(*scheduled, p.at < until)).scalar_one_or_none()
    h = RollupHour.__table__.c
    hour_oldest = session.exec(sa.select(sa.func.min(h.bucket)).where(h.target.in_(names), h.bucket < until)
                               ).scalar_one_or_none()
    # Where raw rows start: the next whole hour, so that rollup buckets before it and raw rows
    # from it on count each probe once. Without raw rows, the rollups answer for everything.
    if raw_oldest is None:
        split = until
    else:
        raw_oldest = _aware_utc(raw_oldest)
        split = floor_hour(raw_oldest)
        split = split if split == raw_oldest else split + timedelta(hours=1)
        if hour_oldest is None or _aware_utc(hour_oldest) >= floor_hour(raw_oldest) or raw_oldest <= since:
            split = since  # the rollups hold nothing the raw rows do not
        if exact_recent is not None and hour_oldest is not None:
            split = max(split, min(until, floor_hour(until - exact_recent)))
    count = answered = within = from_rollups = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    if split > since:
        for row in session.exec(sa.select(h.bucket, h.up, h.degraded, h.down, h.ttft_hist, h.total_hist)
                                .where(h.target.in_(names), h.bucket >= floor_hour(since), h.bucket < split)):
            n = row.up + row.degraded + row.down
            if not n:
                continue
            ok = row.up + row.degraded
            over = _over(row.ttft_hist or [], first_token_ms) + _over(row.total_hist or [], total_ms)
            count, answered, from_rollups = count + n, answered + ok, from_rollups + n
            within += max(0, ok - over)
            bucket = _aware_utc(row.bucket)
            first_at = bucket if first_at is None else min(first_at, bucket)
            end = min(bucket + timedelta(hours=1), until)
            last_at = end if last_at is None else max(last_at, end)
    answer = p.status.in_(("up", "degraded"))
    fits = [answer]
    if first_token_ms is not None:
        fits.append(sa.func.coalesce(p.ttft_ms, p.total_ms) <= first_token_ms)
    if total_ms is not None:
        fits.append(p.total_ms <= total_ms)
    raw = session.exec(sa.select(
        sa.func.count(), sa.func.sum(sa.case((answer, 1), else_=0)), sa.func.sum(sa.case((sa.and_(*fits), 1), else_=0)),
        sa.func.min(p.at), sa.func.max(p.at),
    ).where(*scheduled, p.at >= max(since, split), p.at < until)).one()
    if raw[0]:
        count, answered, within = count + raw[0], answered + int(raw[1] or 0), within + int(raw[2] or 0)
        lo, hi = _aware_utc(raw[3]), _aware_utc(raw[4])
        first_at = lo if first_at is None else min(first_at, lo)
        last_at = hi if last_at is None else max(last_at, hi)
    return BudgetCounts(names, count, answered, within, first_at, last_at, from_rollups)


def _aware_utc(at: datetime) -> datetime:
    # Aggregates (min/max) bypass the column type, so SQLite hands back naive UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _over(hist: Sequence[int], budget_ms: float | None) -> int:
    """Samples in buckets not entirely within the budget (so the bucket holding it counts as over)."""
    if budget_ms is None:
        return 0
    return sum(n for i, n in enumerate(hist) if n and histogram.bounds(i)[1] > budget_ms)


@dataclass(frozen=True, slots=True)
class DrillObservation:
    """One feature in one finished (not aborted) drill: what was broken, and how the feature fared."""

    feature: str
    drill: str
    run_id: int
    started_at: datetime
    faulted_routes: tuple[str, ...]  # "*": a fault on every route
    answered_by: tuple[str, ...]  # proxy routes seen answering the feature during the faults
    backends: tuple[str, ...]  # backends the product reported answering (e.g. a degraded mode's name)
    requests: int
    ok_rate: float | None  # full answers during the faults
    answered_rate: float | None  # full or degraded answers during the faults


def drill_observations(*, session: Session, since: datetime | None = None) -> list[DrillObservation]:
    """Every feature of every drill that was not aborted (started at or after ``since``), oldest first."""
    from monitor.store.models import DrillFeatureRow, DrillRunRow

    query = (sa.select(DrillFeatureRow, DrillRunRow.name, DrillRunRow.started_at)
             .join(DrillRunRow, DrillRunRow.id == DrillFeatureRow.run_id).where(DrillRunRow.aborted.is_(None))
             .order_by(DrillRunRow.started_at, DrillRunRow.id, DrillFeatureRow.feature))
    if since is not None:
        query = query.where(DrillRunRow.started_at >= _aware(since, "since"))
    out = []
    for f, name, started in session.exec(query):
        # A route whose checked answers during the faults fell below the drill's min_pass answered with
        # a 200 but did not do the feature's job: it is not seen answering (and so verifies nothing).
        answered = tuple(r for r in f.answered_by or () if not quality_short(f.phases, r))
        out.append(DrillObservation(f.feature, name, f.run_id, _aware_utc(started), tuple(f.faulted_routes or ()),
                                    answered, tuple(sorted(f.backends or {})), f.requests, f.ok_rate,
                                    f.answered_rate))
    return out


# --- For the dashboard: all-target aggregates done in SQL, per-bin latency, canaries, targets, alerts. ---
# Long windows read rollups only, and all targets in one statement, so a page over 30 days of 50
# targets never walks raw rows nor loops a query per target.


def _bin_plan(session: Session, since: datetime, until: datetime, step: timedelta,
              source: str | None) -> tuple[str, datetime, datetime, timedelta, int]:
    """(source, lo, hi, step, bins) as `availability_series` lays its bins out."""
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    source = _source(session, since, until, source)
    width = _SOURCES[source][2]
    if width is not None:
        step = width * max(1, math.ceil(step / width))
    lo, hi = _window(source, since, until)
    n = math.ceil((hi - lo) / step)
    if n > 20_000:
        raise ValueError(f"{n} bins: use a longer step")
    return source, lo, hi, step, n


def totals_by_target(
    *, session: Session, since: datetime, until: datetime, source: str | None = None
) -> list[dict[str, Any]]:
    """Per target (regions together), sorted: ``target, count, up, degraded, down, availability, cost_usd,
    tokens_per_s, source, since, until``.

    One aggregate statement (sums only, no histograms): cheap over any window and any number of targets.
    ``since``/``until`` in the result are the span actually covered (rollups: whole buckets).
    """
    since, until = _aware(since, "since"), _aware(until, "until")
    source = _source(session, since, until, source)
    table, col, _, _ = _SOURCES[source]
    lo, hi = _window(source, since, until)
    c = table.c
    where = [c[col] >= lo, c[col] < hi]
    if source == "raw":
        where.append(c.confirm.is_(False))
        states = ("up", "degraded", "down")
        cols = [sa.func.count(), *(sa.func.sum(sa.case((c.status == s, 1), else_=0)) for s in states),
                sa.func.sum(c.cost_usd), sa.func.sum(c.tokens_per_s), sa.func.count(c.tokens_per_s)]
    else:
        cols = [sa.func.sum(c[name]) for name in ("count", "up", "degraded", "down", "cost_usd", "tokens_per_s_sum",
                                                  "tokens_per_s_n")]
    rows = session.exec(sa.select(c.target, *cols).where(*where).group_by(c.target).order_by(c.target)).all()
    out = []
    for target, *sums in rows:
        count, up, degraded, down = (int(v or 0) for v in sums[:4])
        cost, tps_sum, tps_n = float(sums[4] or 0.0), float(sums[5] or 0.0), int(sums[6] or 0)
        out.append({"target": target, "count": count, "up": up, "degraded": degraded, "down": down,
                    "availability": up / count if count else None, "cost_usd": cost,
                    "tokens_per_s": tps_sum / tps_n if tps_n else None, "source": source, "since": lo, "until": hi})
    return out


def latency_by_target(
    *, session: Session, since: datetime, until: datetime, source: str | None = None
) -> list[dict[str, Any]]:
    """Per target (regions together), sorted: ``target, ttft_p50, ttft_p95, ttft_p99, total_p50, total_p95,
    total_p99, source``: the percentiles of `target_summary`, for every target at once and lighter.

    Rollup histograms are read as text and parsed in one go by numpy, then summed per target: a month
    of hour rollups for fifty targets (36,000 rows, 6 million counts) takes a tenth of a second where
    decoding each row's JSON and merging lists takes a second.
    """
    since, until = _aware(since, "since"), _aware(until, "until")
    source = _source(session, since, until, source)
    names = ("ttft_p50", "ttft_p95", "ttft_p99", "total_p50", "total_p95", "total_p99")
    sums: dict[str, list[list[int]]] = {}
    if source == "raw":
        exact: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
        for row in _fetch(session, source, since, until, []):
            for kept, v in zip(exact[row.target], Agg.latencies(row._asdict()), strict=True):
                if v is not None:
                    kept.append(v)
        pct = {t: [histogram.exact_percentile(v, q) for v in exact[t] for q in (0.5, 0.95, 0.99)] for t in exact}
    else:
        sums = _hist_sums(session, source, since, until)
        pct = {t: [histogram.percentile(h, q) for h in sums[t] for q in (0.5, 0.95, 0.99)] for t in sums}
    return [{"target": t, **dict(zip(names, pct[t], strict=True)), "source": source} for t in sorted(pct)]


def _hist_sums(session: Session, source: str, since: datetime, until: datetime) -> dict[str, list[list[int]]]:
    """Per target, the (ttft, total) histograms of the rollup rows in the window, summed."""
    import json

    import numpy as np

    table = _SOURCES[source][0]
    lo, hi = _window(source, since, until)
    c = table.c
    rows = session.exec(sa.select(c.target, sa.cast(c.ttft_hist, sa.Text), sa.cast(c.total_hist, sa.Text))
                        .where(c.bucket >= lo, c.bucket < hi).order_by(c.target)).all()
    full = histogram.N_BUCKETS - 1  # commas in a full-length histogram
    sums: dict[str, list[list[int]]] = {}
    regular = [r for r in rows if (r[1] or "").count(",") == full and (r[2] or "").count(",") == full]
    if regular:
        # One parse for every count: "[a, b, ...]" stripped of its brackets, all joined by commas.
        text = ",".join(f"{t.strip()[1:-1]},{u.strip()[1:-1]}" for _, t, u in regular)
        counts = np.fromstring(text, dtype=np.int64, sep=",").reshape(len(regular), 2, histogram.N_BUCKETS)
        targets = [r[0] for r in regular]
        starts = [i for i, t in enumerate(targets) if i == 0 or t != targets[i - 1]]
        for i, total in zip(starts, np.add.reduceat(counts, starts, axis=0), strict=True):
            sums[targets[i]] = [total[0].tolist(), total[1].tolist()]
    for target, ttft, total in rows:  # rows with short or missing histograms (the column default is [])
        if (ttft or "").count(",") == full and (total or "").count(",") == full:
            continue
        acc = sums.setdefault(target, [histogram.empty(), histogram.empty()])
        acc[0] = histogram.merge(acc[0], json.loads(ttft or "[]"))
        acc[1] = histogram.merge(acc[1], json.loads(total or "[]"))
    return sums


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
    source, lo, hi, step, n = _bin_plan(session, since, until, step, source)
    counts = [0] * n
    if source == "raw":
        values: list[tuple[list[float], list[float]]] = [([], []) for _ in range(n)]
        for row in _fetch(session, source, since, until, _filters(source, target, region)):
            i = int((row.at - lo) // step)
            counts[i] += 1
            for kept, v in zip(values[i], Agg.latencies(row._asdict()), strict=True):
                if v is not None:
                    kept.append(v)
        pct = [[histogram.exact_percentile(v, q) for v in pair for q in (0.5, 0.95, 0.99)] for pair in values]
    else:
        hists = [(histogram.empty(), histogram.empty()) for _ in range(n)]
        table = _SOURCES[source][0]
        cols = [table.c.bucket, table.c["count"], table.c.ttft_hist, table.c.total_hist]
        where = [table.c.bucket >= lo, table.c.bucket < hi, *_filters(source, target, region)]
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


def canary_counts(
    *, session: Session, since: datetime, until: datetime, source: str | None = None
) -> list[dict[str, Any]]:
    """Per target: ``target, checked, passed, pass_rate, exact, source``: how often the canary question
    was answered right.

    Raw rows answer exactly (``canary_pass`` set: an answer came to check). Rollups keep no canary
    column: there ``passed`` is the probes that came back ``up`` (an ``ok`` result means the canary
    passed) and ``checked`` adds the ``wrong_answer`` ones, so answers cut short are left out
    (``exact`` is False).
    """
    since, until = _aware(since, "since"), _aware(until, "until")
    source = _source(session, since, until, source)
    table, col, _, _ = _SOURCES[source]
    lo, hi = _window(source, since, until)
    c = table.c
    where = [c[col] >= lo, c[col] < hi]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    if source == "raw":
        q = (sa.select(c.target, sa.func.count(c.canary_pass), sa.func.sum(sa.case((c.canary_pass.is_(True), 1),
                                                                                    else_=0)))
             .where(*where, c.confirm.is_(False)).group_by(c.target))
        for target, checked, passed in session.exec(q):
            totals[target] = [int(checked or 0), int(passed or 0)]
    else:
        for target, up, errors in session.exec(sa.select(c.target, c.up, c.errors).where(*where)):
            t = totals[target]
            t[0] += (up or 0) + int((errors or {}).get("wrong_answer", 0))
            t[1] += up or 0
    return [{"target": t, "checked": checked, "passed": passed, "pass_rate": passed / checked if checked else None,
             "exact": source == "raw", "source": source} for t, (checked, passed) in sorted(totals.items())]


def known_targets(*, session: Session) -> list[dict[str, Any]]:
    """Every target as last configured: ``name, provider, model, dialect, base_url, local, updated_at``."""
    rows = session.exec(sa.select(TargetRow).order_by(TargetRow.name)).scalars()
    return [{"name": r.name, "provider": r.provider, "model": r.model, "dialect": r.dialect, "base_url": r.base_url,
             "local": bool(r.local), "updated_at": r.updated_at} for r in rows]


def alert_log(
    *,
    session: Session,
    since: datetime | None = None,
    until: datetime | None = None,
    channel: str | None = None,
    limit: int | None = 1000,
) -> list[dict[str, Any]]:
    """Outbox rows created in ``[since, until)``, newest first: ``id, created_at, channel, rule, action,
    title, severity, target, provider, state (pending | sent | dead), attempts, sent_at, last_error``."""
    from monitor.store.models import AlertOutbox

    t = AlertOutbox.__table__.c
    q = sa.select(t.id, t.created_at, t.channel, t.rule, t.target, t.provider, t.state, t.attempts, t.sent_at,
                  t.last_error, t.payload)
    if since is not None:
        q = q.where(t.created_at >= _aware(since, "since"))
    if until is not None:
        q = q.where(t.created_at < _aware(until, "until"))
    if channel is not None:
        q = q.where(t.channel == channel)
    q = q.order_by(t.created_at.desc(), t.id.desc())
    if limit is not None:
        q = q.limit(limit)
    out = []
    for r in session.exec(q):
        payload = r.payload or {}
        out.append({"id": r.id, "created_at": r.created_at, "channel": r.channel, "rule": r.rule,
                    "action": payload.get("action", ""), "title": payload.get("title", ""),
                    "severity": payload.get("severity", ""), "target": r.target, "provider": r.provider,
                    "state": r.state, "attempts": r.attempts, "sent_at": r.sent_at, "last_error": r.last_error})
    return out


def drill_summaries(*, session: Session, since: datetime | None = None, limit: int | None = None
                    ) -> list[dict[str, Any]]:
    """Every drill run (started at or after ``since``), newest first, without its timeline:
    ``id, name, started_at, ended_at, passed, aborted, phases, features, failing`` (``features``: how many
    were judged; ``failing``: those that did worse than expected). Two statements, whatever the count."""
    from monitor.store.models import DrillFeatureRow, DrillRunRow

    r = DrillRunRow.__table__.c
    q = (sa.select(r.id, r.name, r.started_at, r.ended_at, r.passed, r.aborted, r.phases)
         .order_by(r.started_at.desc(), r.id.desc()))
    if since is not None:
        q = q.where(r.started_at >= _aware(since, "since"))
    if limit is not None:
        q = q.limit(limit)
    runs = session.exec(q).all()
    f = DrillFeatureRow.__table__.c
    judged: dict[int, list[tuple[str, bool]]] = defaultdict(list)
    ids = [run.id for run in runs]
    for start in range(0, len(ids), 400):  # keys per statement, as the writers chunk them
        for run_id, feature, meets in session.exec(sa.select(f.run_id, f.feature, f.meets)
                                                   .where(f.run_id.in_(ids[start:start + 400]))
                                                   .order_by(f.run_id, f.feature)):
            judged[run_id].append((feature, bool(meets)))
    return [{"id": run.id, "name": run.name, "started_at": _aware_utc(run.started_at),
             "ended_at": _aware_utc(run.ended_at), "passed": bool(run.passed), "aborted": run.aborted,
             "phases": list(run.phases or []), "features": len(judged[run.id]),
             "failing": [name for name, meets in judged[run.id] if not meets]} for run in runs]


def drill_run(*, session: Session, run_id: int) -> dict[str, Any] | None:
    """One drill run with its phases, per-second timeline and features (as `drill_features` stores
    them, as dicts); None if there is no such run."""
    from monitor.store.models import DrillFeatureRow, DrillRunRow

    run = session.get(DrillRunRow, run_id)
    if run is None:
        return None
    features = session.exec(sa.select(DrillFeatureRow).where(DrillFeatureRow.run_id == run_id)
                            .order_by(DrillFeatureRow.feature)).scalars()
    return {"id": run.id, "name": run.name, "started_at": _aware_utc(run.started_at),
            "ended_at": _aware_utc(run.ended_at), "passed": bool(run.passed), "aborted": run.aborted,
            "phases": list(run.phases or []), "timeline": list(run.timeline or []),
            "features": [{k: getattr(x, k) for k in DrillFeatureRow.model_fields if k not in ("id", "run_id")}
                         for x in features]}
