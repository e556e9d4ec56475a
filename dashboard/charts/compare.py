"""Local vs outsourced: every target side by side on latency, availability, canary pass rate and cost."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.charts.common import OUTSOURCED_COLOR, OWNED_COLOR, empty_figure

PANELS = (("ttft_p50_ms", "TTFT p50 (ms)", "{:.0f}"), ("ttft_p95_ms", "TTFT p95 (ms)", "{:.0f}"),
          ("availability", "availability", "{:.2%}"), ("canary_pass_rate", "canary pass rate", "{:.1%}"),
          ("total_p50_ms", "total time p50 (ms)", "{:.0f}"), ("cost_per_1k_probes_usd", "USD per 1000 probes",
                                                               "${:.4f}"))


def local_vs_hosted(rows: pd.DataFrame) -> go.Figure:
    """One panel per measure, one bar per target: owned (local) in teal, outsourced in orange."""
    if rows.empty:
        return empty_figure("No probes in this window")
    fig = make_subplots(rows=2, cols=3, subplot_titles=[title for _, title, _ in PANELS], vertical_spacing=0.2)
    colors = [OWNED_COLOR if owned else OUTSOURCED_COLOR for owned in rows["owned"]]
    for i, (column, title, fmt) in enumerate(PANELS):
        values = rows[column]
        text = [fmt.format(v) if v is not None and not pd.isna(v) else "n/a" for v in values]
        fig.add_trace(go.Bar(x=rows["target"], y=values, marker_color=colors, text=text, textposition="auto",
                             name=title, showlegend=False, hovertemplate=f"%{{x}}: %{{text}}<extra>{title}</extra>"),
                      row=i // 3 + 1, col=i % 3 + 1)
    for col in (1, 2):
        fig.update_yaxes(rangemode="tozero", row=1, col=col)
    fig.update_yaxes(tickformat=".0%", row=1, col=3)
    fig.update_yaxes(tickformat=".0%", row=2, col=1)
    fig.update_layout(height=560, margin={"t": 40})
    return fig
