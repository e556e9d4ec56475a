"""Drills: every run, and per run its phases (faults), a per-second timeline per feature, and the verdicts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlmodel import Session

from dashboard.queries.common import duration_text, frame
from monitor.store.queries import drill_run, drill_summaries

RUN_COLUMNS = ("id", "name", "started_at", "duration", "result", "passed", "aborted", "features", "failing")
PHASE_COLUMNS = ("name", "start", "end", "start_s", "end_s", "faulted", "faults")
TIMELINE_COLUMNS = ("s", "at", "feature", "n", "ok", "deg", "ok_rate", "answered_rate", "p50_ms")
VERDICT_COLUMNS = ("feature", "expected", "verdict", "meets", "requests", "ok_rate", "answered_rate", "p50_ms",
                   "p95_ms", "recovery_s", "answered_by", "faulted_routes")


@dataclass(frozen=True, slots=True)
class DrillDetail:
    id: int
    name: str
    started_at: datetime
    ended_at: datetime
    passed: bool
    aborted: str | None
    phases: pd.DataFrame  # PHASE_COLUMNS; start_s/end_s: seconds from the drill's start
    timeline: pd.DataFrame  # TIMELINE_COLUMNS: per second and feature
    verdicts: pd.DataFrame  # VERDICT_COLUMNS

    @property
    def result(self) -> str:
        return run_result(self.passed, self.aborted)


def run_result(passed: bool, aborted: str | None) -> str:
    return f"aborted: {aborted}" if aborted else "passed" if passed else "failed"


def fault_text(faults: list[dict[str, Any]]) -> str:
    """``openai: overloaded (p=0.5)``, one per fault."""
    out = []
    for f in faults:
        extra = [f"p={f['probability']:g}"] if f.get("probability", 1) != 1 else []
        extra += [f"{k}={v}" for k, v in (f.get("params") or {}).items()]
        extra += [f"{k}={f[k]}" for k in ("model", "feature") if f.get(k)]
        out.append(f"{f.get('route') or '*'}: {f.get('type', '?')}" + (f" ({', '.join(extra)})" if extra else ""))
    return "; ".join(out)


def drill_list(*, session: Session, limit: int = 500) -> pd.DataFrame:
    """Every drill run (the newest ``limit``), newest first, whatever the window: drills are rare and
    each one matters."""
    rows = [{**r, "duration": duration_text((r["ended_at"] - r["started_at"]).total_seconds()),
             "result": run_result(r["passed"], r["aborted"]), "failing": ", ".join(r["failing"])}
            for r in drill_summaries(session=session, limit=limit)]
    return frame(rows, RUN_COLUMNS)


def drill_detail(*, session: Session, run_id: int) -> DrillDetail | None:
    """One run: its phases, its timeline and each feature's verdict against what was expected."""
    run = drill_run(session=session, run_id=run_id)
    if run is None:
        return None
    t0 = run["started_at"].timestamp()
    phases = frame(({"name": p.get("name", ""), "start": datetime.fromtimestamp(p["start"], UTC),
                     "end": datetime.fromtimestamp(p["end"], UTC), "start_s": p["start"] - t0, "end_s": p["end"] - t0,
                     "faulted": bool(p.get("faults")), "faults": fault_text(p.get("faults") or [])}
                    for p in run["phases"] if p.get("start") is not None and p.get("end") is not None), PHASE_COLUMNS)
    timeline = frame(({**e, "at": datetime.fromtimestamp(t0 + e["s"], UTC),
                       "ok_rate": e["ok"] / e["n"] if e.get("n") else None,
                       "answered_rate": (e["ok"] + e.get("deg", 0)) / e["n"] if e.get("n") else None}
                      for e in run["timeline"]), TIMELINE_COLUMNS)
    verdicts = frame(({**f, "answered_by": ", ".join(f.get("answered_by") or []),
                       "faulted_routes": ", ".join(f.get("faulted_routes") or [])} for f in run["features"]),
                     VERDICT_COLUMNS)
    return DrillDetail(run["id"], run["name"], run["started_at"], run["ended_at"], run["passed"], run["aborted"],
                       phases, timeline, verdicts)
