"""A drill's timeline: per feature, success rate and p50 latency second by second, fault phases shaded."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from dashboard.charts.common import empty_figure
from dashboard.queries.drills import DrillDetail


def drill_timeline(detail: DrillDetail) -> go.Figure:
    """Success rate (full answers, top) and p50 latency (bottom) per feature against seconds from the
    drill's start; each phase with faults is shaded and named."""
    if detail.timeline.empty:
        return empty_figure("This drill stored no timeline")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("Full answers (share of requests)", "p50 latency (ms)"))
    palette = qualitative.Plotly
    for i, (feature, rows) in enumerate(detail.timeline.groupby("feature", sort=True)):
        color = palette[i % len(palette)]
        fig.add_trace(go.Scatter(x=rows["s"], y=rows["ok_rate"], name=feature, legendgroup=feature, mode="lines",
                                 line={"color": color},
                                 hovertemplate=f"{feature} %{{x}} s: %{{y:.0%}} full answers<extra></extra>"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=rows["s"], y=rows["p50_ms"], name=feature, legendgroup=feature, mode="lines",
                                 line={"color": color, "dash": "dot"}, showlegend=False,
                                 hovertemplate=f"{feature} %{{x}} s: p50 %{{y:.0f}} ms<extra></extra>"),
                      row=2, col=1)
    for phase in detail.phases.itertuples(index=False):
        if phase.faulted:
            fig.add_vrect(x0=phase.start_s, x1=phase.end_s, fillcolor="#d62728", opacity=0.12, line_width=0,
                          layer="below", row="all", col=1, annotation_text=f"{phase.name}: {phase.faults}",
                          annotation_position="top left")
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", row=1, col=1)
    fig.update_xaxes(title_text="seconds from the drill's start", row=2, col=1)
    fig.update_layout(height=520, hovermode="x unified", margin={"t": 40})
    return fig
