"""Alerts per channel, by whether they were delivered."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.common import DELIVERY_COLORS, empty_figure


def alerts_by_channel(counts: pd.DataFrame) -> go.Figure:
    """Stacked bars: per channel, alerts delivered, still retrying and given up on."""
    if counts.empty:
        return empty_figure("No alert raised in this window")
    fig = go.Figure()
    for state, rows in counts.groupby("delivered", sort=True):
        fig.add_trace(go.Bar(x=rows["channel"], y=rows["count"], name=state,
                             marker_color=DELIVERY_COLORS.get(state, "#999")))
    fig.update_layout(barmode="stack", height=300, yaxis_title="alerts", margin={"t": 20})
    return fig
