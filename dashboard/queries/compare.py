"""Local vs outsourced: every target side by side on latency, availability, canary pass rate and cost."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlmodel import Session

from dashboard.queries.common import frame
from dashboard.windows import Window
from monitor.store.queries import canary_counts, known_targets, latency_by_target, totals_by_target

COMPARE_COLUMNS = ("target", "owned", "provider", "model", "probes", "availability", "ttft_p50_ms", "ttft_p95_ms",
                   "total_p50_ms", "total_p95_ms", "tokens_per_s", "canary_pass_rate", "canary_exact", "cost_usd",
                   "cost_per_1k_probes_usd", "source")


def comparison(*, session: Session, now: datetime, window: Window) -> pd.DataFrame:
    """One row per probed target over ``window``, owned (local) ones first. Cost is what the probes were
    billed (a local model has no per-call price). Three statements over all targets at once; windows over
    two hours read the hour rollups."""
    since, until = window.bounds(now)
    source = window.all_targets_source
    catalog = {t["name"]: t for t in known_targets(session=session)}
    canary = {c["target"]: c for c in canary_counts(session=session, since=since, until=until, source=source)}
    latency = {r["target"]: r for r in latency_by_target(session=session, since=since, until=until, source=source)}
    rows = []
    for s in totals_by_target(session=session, since=since, until=until, source=source):
        name = s["target"]
        t, c, lat = catalog.get(name, {}), canary.get(name, {}), latency.get(name, {})
        rows.append({
            "target": name, "owned": bool(t.get("local", False)), "provider": t.get("provider", ""),
            "model": t.get("model", ""), "probes": s["count"], "availability": s["availability"],
            **{f"{k}_ms": lat.get(k) for k in ("ttft_p50", "ttft_p95", "total_p50", "total_p95")},
            "tokens_per_s": s["tokens_per_s"], "canary_pass_rate": c.get("pass_rate"), "canary_exact": c.get("exact"),
            "cost_usd": s["cost_usd"],
            "cost_per_1k_probes_usd": s["cost_usd"] / s["count"] * 1000 if s["count"] else None,
            "source": s["source"],
        })
    rows.sort(key=lambda r: (not r["owned"], r["target"]))
    return frame(rows, COMPARE_COLUMNS)
