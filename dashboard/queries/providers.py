"""Providers: one target over the window: latency percentiles and availability over time, errors by
kind, its incidents, and our detection beside the vendor's status page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlmodel import Session

from dashboard.queries.common import frame, safe_url
from dashboard.queries.overview import incident_table
from dashboard.windows import Window
from monitor.store.queries import (
    TargetSummary,
    availability_series,
    current_states,
    error_counts,
    incidents,
    known_targets,
    latency_series,
    latest_status,
    target_summary,
)

LATENCY_COLUMNS = ("start", "end", "count", "ttft_p50", "ttft_p95", "ttft_p99", "total_p50", "total_p95", "total_p99")
HEATMAP_COLUMNS = ("start", "day", "hour", "count", "up", "degraded", "down", "availability")
VENDOR_COLUMNS = ("id", "target", "provider", "opened_at", "vendor_first_post_at", "lead_time_s", "state")


@dataclass(frozen=True, slots=True)
class ProviderView:
    target: str
    since: datetime
    until: datetime
    summary: TargetSummary | None  # None: no probe in the window
    latency: pd.DataFrame  # LATENCY_COLUMNS, one row per window step
    availability: pd.DataFrame  # HEATMAP_COLUMNS, one row per hour
    errors: pd.DataFrame  # error_kind, count
    incidents: pd.DataFrame  # overview.INCIDENT_COLUMNS
    about: str = ""  # provider, model, where (the base URL without credentials), owned or outsourced

    @property
    def source(self) -> str:
        return self.summary.source if self.summary else ""


def target_names(*, session: Session) -> list[str]:
    """Every target known to the store: configured (the target table) or probed."""
    names = {t["name"] for t in known_targets(session=session)}
    names |= {s.target for s in current_states(session=session)}
    return sorted(names)


def provider_view(*, session: Session, now: datetime, window: Window, target: str) -> ProviderView:
    """``target`` over ``window`` ending ``now``."""
    since, until = window.bounds(now)
    (summary,) = target_summary(session=session, since=since, until=until, target=target) or (None,)
    latency = frame(latency_series(session=session, target=target, since=since, until=until, step=window.step),
                    LATENCY_COLUMNS)
    # An hour a cell, whatever the window: the heatmap is hour of day by day.
    hours = availability_series(session=session, target=target, since=since, until=until, step=timedelta(hours=1))
    heat = frame(({**h, "day": h["start"].date().isoformat(), "hour": h["start"].hour} for h in hours),
                 HEATMAP_COLUMNS)
    errors = frame(error_counts(session=session, since=since, until=until, target=target), ("error_kind", "count"))
    info = next((t for t in known_targets(session=session) if t["name"] == target), None)
    about = "" if info is None else (f"{info['provider']} · {info['model']} · {safe_url(info['base_url'])} · "
                                     + ("owned (local)" if info["local"] else "outsourced"))
    return ProviderView(target, since, until, summary, latency, heat, errors,
                        incident_table(session=session, now=now, since=since, target=target), about)


def detection_vs_vendor(*, session: Session, now: datetime, window: Window) -> pd.DataFrame:
    """Incidents of the window that the vendor also posted about: when we detected each, when the vendor
    first posted, and our lead time (positive: we were first)."""
    since, _ = window.bounds(now)
    rows = [{"id": i.id, "target": i.target, "provider": i.provider, "opened_at": i.opened_at,
             "vendor_first_post_at": i.vendor_first_post_at, "lead_time_s": i.lead_time_s, "state": i.state}
            for i in incidents(session=session, since=since) if i.vendor_first_post_at is not None]
    return frame(rows, VENDOR_COLUMNS)


def vendor_status(*, session: Session) -> pd.DataFrame:
    """What each vendor's status page said when last polled."""
    rows = [{**s, "open_posts": len(s["incidents"])} for s in latest_status(session=session)]
    return frame(rows, ("provider", "indicator", "description", "open_posts", "fetched_at"))
