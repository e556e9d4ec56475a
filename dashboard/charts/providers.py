"""Charts of one target: latency percentiles over time, availability hour by day, errors by kind,
and our detection beside the vendor's status page."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.charts.common import PERCENTILE_DASH, STATE_COLORS, empty_figure, shade_incidents, utc_naive
from dashboard.queries.common import duration_text

_METRICS = (("ttft", "time to first token", "#1f77b4"), ("total", "total time", "#9467bd"))


def latency_over_time(latency: pd.DataFrame, incidents: pd.DataFrame | None = None, *,
                      until: datetime | None = None) -> go.Figure:
    """Time to first token (top) and total time (bottom), p50/p95/p99 per step; incidents shaded."""
    if latency.empty or latency[[f"{m}_{q}" for m, _, _ in _METRICS for q in PERCENTILE_DASH]].isna().all().all():
        return empty_figure("No latency measured in this window")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("Time to first token (ms)", "Total time (ms)"))
    x = utc_naive(latency["start"])
    for row, (metric, label, color) in enumerate(_METRICS, start=1):
        for q, dash in PERCENTILE_DASH.items():
            fig.add_trace(go.Scatter(x=x, y=latency[f"{metric}_{q}"], name=f"{label} {q}", mode="lines",
                                     line={"color": color, "dash": dash}, connectgaps=False,
                                     hovertemplate=f"{label} {q}: %{{y:.0f}} ms<extra></extra>"), row=row, col=1)
    if incidents is not None and not incidents.empty and until is not None:
        shade_incidents(fig, incidents, until, row="all")
    fig.update_xaxes(title_text="UTC", row=2, col=1)
    fig.update_layout(height=520, hovermode="x unified", margin={"t": 40})
    return fig


# Red under 95 %, orange to 99 %, green at 100 %: availability differences that matter are all above 90 %.
_AVAILABILITY_SCALE = [[0.0, "#a50026"], [0.5, "#f46d43"], [0.9, "#fee08b"], [0.99, "#a6d96a"], [1.0, "#1a9850"]]


def availability_heatmap(hours: pd.DataFrame) -> go.Figure:
    """Availability (%) per hour: hour of day (UTC) across, day down; empty hours left blank."""
    if hours.empty or hours["count"].fillna(0).sum() == 0:
        return empty_figure("No probes in this window")
    pct = hours.assign(pct=hours["availability"] * 100)
    z = pct.pivot_table(index="day", columns="hour", values="pct", aggfunc="mean", dropna=False)
    n = pct.pivot_table(index="day", columns="hour", values="count", aggfunc="sum", dropna=False)
    z = z.reindex(columns=range(24))
    n = n.reindex(index=z.index, columns=range(24)).fillna(0)
    fig = go.Figure(go.Heatmap(
        z=z.values, x=list(z.columns), y=list(z.index), zmin=90, zmax=100, colorscale=_AVAILABILITY_SCALE,
        customdata=n.values, colorbar={"title": "available %"}, xgap=1, ygap=1,
        hovertemplate="%{y} %{x}:00 UTC<br>available %{z:.2f} %<br>%{customdata} probes<extra></extra>"))
    fig.update_xaxes(title_text="hour of day (UTC)", dtick=1)
    fig.update_yaxes(title_text="day", autorange="reversed", type="category")
    fig.update_layout(height=max(220, 28 * len(z.index) + 120), margin={"t": 20})
    return fig


def errors_by_kind(errors: pd.DataFrame) -> go.Figure:
    """Failed probes per error kind, most first."""
    if errors.empty:
        return empty_figure("No errors in this window")
    by_kind = errors.groupby("error_kind", as_index=False)["count"].sum().sort_values("count")
    fig = go.Figure(go.Bar(x=by_kind["count"], y=by_kind["error_kind"], orientation="h",
                           marker_color=STATE_COLORS["down"], text=by_kind["count"], textposition="auto"))
    fig.update_layout(height=max(200, 30 * len(by_kind) + 80), xaxis_title="probes", margin={"t": 20})
    return fig


def lead_text(lead_s: float | None) -> str:
    if lead_s is None or pd.isna(lead_s):
        return ""
    if lead_s >= 0:
        return f"we were {duration_text(lead_s)} ahead"
    return f"vendor was {duration_text(-lead_s)} ahead"


def detection_vs_vendor(rows: pd.DataFrame) -> go.Figure:
    """Per incident: when we detected it, when the vendor first posted about it, and the lead time between."""
    if rows.empty:
        return empty_figure("No incident in this window that the vendor also posted about")
    labels = [f"{r.target} #{r.id}" for r in rows.itertuples(index=False)]
    ours, theirs = utc_naive(rows["opened_at"]), utc_naive(rows["vendor_first_post_at"])
    xs: list = []
    ys: list = []
    for label, a, b in zip(labels, ours, theirs, strict=True):
        xs += [a, b, None]
        ys += [label, label, None]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#bbb", "width": 3}, showlegend=False,
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=ours, y=labels, mode="markers", name="airisk detected",
                             marker={"size": 12, "color": "#1f77b4"}))
    fig.add_trace(go.Scatter(x=theirs, y=labels, mode="markers+text", name="vendor's first post",
                             marker={"size": 12, "color": "#d62728", "symbol": "diamond"},
                             text=[lead_text(v) for v in rows["lead_time_s"]], textposition="middle right"))
    fig.update_xaxes(title_text="UTC")
    fig.update_layout(height=max(200, 40 * len(labels) + 100), margin={"t": 20})
    return fig
