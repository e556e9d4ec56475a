"""Eval runs, their answers and capacity searches: writes and the figures read back.

A run is one feature's eval set against some backends (`airisk eval run`). Answers are written as they
come, one row per (run, backend, case), so an interrupted run is resumed by its next start: the same
feature, the same cases (by the file's hash) and the same backends find the unfinished run and skip
what it already answered. The figures (`monitor.quality.figures`) come from each (feature, backend)'s
latest run that answered anything for it.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from monitor.quality.figures import CapacityFigure, QualityFigure
from monitor.store.models import EvalAnswerRow, EvalCapacityRow, EvalRunRow, utcnow

ANSWER_STORED = 8 * 1024  # characters of an answer kept: enough to see why a check failed
REASON_STORED = 300


def start_or_resume(session: Session, *, feature: str, cases_file: str, cases_hash: str,
                    backends: Sequence[str], cases: int) -> tuple[int, set[tuple[str, str]]]:
    """The run to write to, and the (backend, case id) pairs it already answered (empty for a new run).

    An unfinished run of the same feature, cases and backends is resumed; any other starts afresh."""
    wanted = sorted(backends)
    unfinished = session.exec(
        select(EvalRunRow).where(EvalRunRow.feature == feature, EvalRunRow.cases_hash == cases_hash,
                                 EvalRunRow.cases == cases, EvalRunRow.ended_at.is_(None))
        .order_by(EvalRunRow.id.desc())).all()
    for run in unfinished:
        if sorted(run.backends) == wanted:
            done = session.exec(select(EvalAnswerRow.backend, EvalAnswerRow.case_id)
                                .where(EvalAnswerRow.run_id == run.id)).all()
            return run.id, {(b, c) for b, c in done}
    run = EvalRunRow(feature=feature, cases_file=cases_file, cases_hash=cases_hash, backends=wanted, cases=cases)
    session.add(run)
    session.commit()
    return run.id, set()


def record_answers(session: Session, rows: Iterable[EvalAnswerRow]) -> int:
    """Stores answers (capped text made `storable`, ids too); one already stored for its (run, backend, case) is
    kept as it was. Returns how many were new."""
    new = 0
    for row in rows:
        row.feature, row.backend, row.case_id = storable(row.feature), storable(row.backend), storable(row.case_id)
        exists = session.exec(select(EvalAnswerRow.id).where(
            EvalAnswerRow.run_id == row.run_id, EvalAnswerRow.backend == row.backend,
            EvalAnswerRow.case_id == row.case_id)).first()
        if exists is not None:
            continue
        row.answer = storable(row.answer)[:ANSWER_STORED]
        row.checks = [{**c, "reason": storable(str(c.get("reason", "")))[:REASON_STORED]} for c in row.checks]
        session.add(row)
        new += 1
    session.commit()
    return new


def finish_run(session: Session, run_id: int, at: datetime | None = None) -> None:
    run = session.get(EvalRunRow, run_id)
    if run is not None:
        run.ended_at = at or utcnow()
        session.add(run)
        session.commit()


def run_answers(session: Session, run_id: int) -> list[EvalAnswerRow]:
    return list(session.exec(select(EvalAnswerRow).where(EvalAnswerRow.run_id == run_id)
                             .order_by(EvalAnswerRow.backend, EvalAnswerRow.id)).all())


def quality_figures(session: Session, *, since: datetime | None = None, feature: str | None = None,
                    run_id: int | None = None) -> dict[tuple[str, str], QualityFigure]:
    """Per (feature, backend): the figure of its latest run with answers for it (or of ``run_id``)."""
    runs = select(EvalRunRow.id, EvalRunRow.started_at)
    if since is not None:
        runs = runs.where(EvalRunRow.started_at >= since)
    if feature is not None:
        runs = runs.where(EvalRunRow.feature == feature)
    if run_id is not None:
        runs = runs.where(EvalRunRow.id == run_id)
    started = {rid: at for rid, at in session.exec(runs).all()}
    if not started:
        return {}
    latest = (select(EvalAnswerRow.feature, EvalAnswerRow.backend, sa.func.max(EvalAnswerRow.run_id))
              .where(EvalAnswerRow.run_id.in_(started))
              .group_by(EvalAnswerRow.feature, EvalAnswerRow.backend))
    pairs = {(f, b): rid for f, b, rid in session.exec(latest).all()}
    rows: dict[tuple[str, str], list[EvalAnswerRow]] = defaultdict(list)
    if pairs:
        for row in session.exec(select(EvalAnswerRow).where(EvalAnswerRow.run_id.in_(set(pairs.values())))).all():
            if pairs.get((row.feature, row.backend)) == row.run_id:
                rows[(row.feature, row.backend)].append(row)
    return {key: figure_of(key[0], key[1], pairs[key], started[pairs[key]], answers)
            for key, answers in rows.items()}


def figure_of(feature: str, backend: str, run_id: int, at: datetime, rows: Sequence[EvalAnswerRow]) -> QualityFigure:
    """One backend's figure from its answer rows (pure: also used on rows not yet stored)."""
    errors = Counter(r.error_kind for r in rows if r.error_kind is not None)
    answered = [r for r in rows if r.error_kind is None]
    costs = [r.cost_usd for r in rows if r.cost_usd is not None]
    return QualityFigure(
        feature=feature, backend=backend, run_id=run_id, at=at, cases=len(rows),
        passed=sum(1 for r in answered if r.passed is True),
        failed=sum(1 for r in answered if r.passed is False),
        unjudged=sum(1 for r in answered if r.passed is None),
        errors=dict(errors),
        ttft_p50_ms=_pct([r.ttft_ms for r in answered], 50), ttft_p95_ms=_pct([r.ttft_ms for r in answered], 95),
        total_p50_ms=_pct([r.total_ms for r in answered], 50), total_p95_ms=_pct([r.total_ms for r in answered], 95),
        input_tokens=sum(r.input_tokens or 0 for r in rows), output_tokens=sum(r.output_tokens or 0 for r in rows),
        cost_usd=sum(costs) if costs else None, local=any(r.local for r in rows),
    )


def record_capacity(session: Session, figure: CapacityFigure, *, duration_s: float | None = None) -> int:
    row = EvalCapacityRow(feature=figure.feature, backend=figure.backend, at=figure.at, rate_rps=figure.rate_rps,
                          p95_ms=figure.p95_ms, pass_rate=figure.pass_rate, budget_ms=figure.budget_ms,
                          steps=[dict(s) for s in figure.steps], duration_s=duration_s)
    session.add(row)
    session.commit()
    return row.id


def capacity_figures(session: Session, *, since: datetime | None = None) -> dict[tuple[str, str], CapacityFigure]:
    """Per (feature, backend): its latest capacity search."""
    query = select(EvalCapacityRow).order_by(EvalCapacityRow.at, EvalCapacityRow.id)
    if since is not None:
        query = query.where(EvalCapacityRow.at >= since)
    out: dict[tuple[str, str], CapacityFigure] = {}
    for row in session.exec(query).all():
        out[(row.feature, row.backend)] = CapacityFigure(
            feature=row.feature, backend=row.backend, at=row.at, rate_rps=row.rate_rps, p95_ms=row.p95_ms,
            pass_rate=row.pass_rate, budget_ms=row.budget_ms, steps=tuple(row.steps))
    return out


def _pct(values: Iterable[float | None], q: int) -> float | None:
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return None
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1]


def storable(text: str) -> str:
    """``text`` as the database keeps it: NUL removed (PostgreSQL refuses it), lone surrogates (which a JSON
    ``\\ud800`` escape can make, and UTF-8 cannot encode) replaced by ``?``. A resumed run compares case ids
    in this form."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")
