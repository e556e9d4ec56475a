"""Drill runs as the Drills page lists and shows them (the risk model's view: `risk.drill_observations`)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from monitor.store.queries._sources import aware_utc
from monitor.store.results import _aware


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
    return [{"id": run.id, "name": run.name, "started_at": aware_utc(run.started_at),
             "ended_at": aware_utc(run.ended_at), "passed": bool(run.passed), "aborted": run.aborted,
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
    return {"id": run.id, "name": run.name, "started_at": aware_utc(run.started_at),
            "ended_at": aware_utc(run.ended_at), "passed": bool(run.passed), "aborted": run.aborted,
            "phases": list(run.phases or []), "timeline": list(run.timeline or []),
            "features": [{k: getattr(x, k) for k in DrillFeatureRow.model_fields if k not in ("id", "run_id")}
                         for x in features]}
