"""What every chart shares: colours, UTC times as plotly wants them, shaded windows, an empty figure."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go

STATE_COLORS = {"up": "#2ca02c", "degraded": "#ff9f1c", "down": "#d62728"}
OWNED_COLOR = "#17becf"  # local / owned
OUTSOURCED_COLOR = "#ff7f0e"
GRADE_COLORS = {"A": "#1a9850", "B": "#91cf60", "C": "#fee08b", "D": "#fdae61", "E": "#f46d43", "F": "#d73027"}
DELIVERY_COLORS = {"delivered": "#2ca02c", "pending (retrying)": "#ff9f1c", "not delivered": "#d62728"}
PERCENTILE_DASH = {"p50": "solid", "p95": "dash", "p99": "dot"}


def utc_naive(value: datetime | pd.Series) -> datetime | pd.Series:
    """Times as naive UTC: plotly draws an aware timestamp at its wall-clock value but labels axes without
    a zone, so everything is put in UTC first (axes say "UTC")."""
    if isinstance(value, pd.Series):
        return pd.to_datetime(value, utc=True).dt.tz_convert(None)
    return value.astimezone(UTC).replace(tzinfo=None)


def empty_figure(message: str) -> go.Figure:
    """A blank figure saying why there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=200, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def shade_incidents(fig: go.Figure, incidents: pd.DataFrame, until: datetime, *, row: int | str | None = None) -> None:
    """A shaded band per incident (red while down, orange while degraded), labelled with its id;
    an open incident runs to ``until``."""
    for inc in incidents.itertuples(index=False):
        end = inc.closed_at if inc.closed_at is not None and not pd.isna(inc.closed_at) else until
        kwargs = {"row": row, "col": 1} if row is not None else {}
        fig.add_vrect(x0=utc_naive(inc.opened_at), x1=utc_naive(end), fillcolor=STATE_COLORS.get(inc.state, "#999"),
                      opacity=0.15, line_width=0, layer="below", annotation_text=f"incident {inc.id}",
                      annotation_position="top left", **kwargs)
