"""For the risk model (`monitor.risk`): availability within a latency budget, and what drills saw."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from monitor.store import histogram
from monitor.store.drills import quality_short
from monitor.store.models import ProbeRow, RollupHour
from monitor.store.queries._sources import aware_utc
from monitor.store.results import _aware, floor_hour


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
        raw_oldest = aware_utc(raw_oldest)
        split = floor_hour(raw_oldest)
        split = split if split == raw_oldest else split + timedelta(hours=1)
        if hour_oldest is None or aware_utc(hour_oldest) >= floor_hour(raw_oldest) or raw_oldest <= since:
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
            bucket = aware_utc(row.bucket)
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
        lo, hi = aware_utc(raw[3]), aware_utc(raw[4])
        first_at = lo if first_at is None else min(first_at, lo)
        last_at = hi if last_at is None else max(last_at, hi)
    return BudgetCounts(names, count, answered, within, first_at, last_at, from_rollups)


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
        out.append(DrillObservation(f.feature, name, f.run_id, aware_utc(started), tuple(f.faulted_routes or ()),
                                    answered, tuple(sorted(f.backends or {})), f.requests, f.ok_rate,
                                    f.answered_rate))
    return out
