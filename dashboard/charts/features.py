"""Charts of features: grades and minutes, the dependency map (a Sankey), a feature's risk breakdown."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.common import GRADE_COLORS, OUTSOURCED_COLOR, OWNED_COLOR, empty_figure

EDGE_COLORS = {
    "primary": "rgba(31, 119, 180, 0.55)",
    "verified": "rgba(44, 160, 44, 0.55)",  # a fallback a drill saw answering
    "unverified": "rgba(150, 150, 150, 0.45)",  # declared, never seen answering: counted as absent
    "undeclared": "rgba(214, 39, 40, 0.75)",  # seen called, but in no chain
}


def edge_kind(role: str, verified: bool | None) -> str:
    if role in ("primary", "undeclared"):
        return role
    return "verified" if verified else "unverified"


def feature_minutes(features: pd.DataFrame) -> go.Figure:
    """Expected downtime minutes a month per feature, worst first, coloured by grade."""
    if features.empty:
        return empty_figure("No features declared")
    fig = go.Figure(go.Bar(
        x=features["minutes_per_month"], y=features["feature"], orientation="h",
        marker_color=[GRADE_COLORS.get(g, "#999") for g in features["grade"]],
        text=[f"{g} · {m:.1f} min" for g, m in zip(features["grade"], features["minutes_per_month"], strict=True)],
        textposition="auto", hovertemplate="%{y}: %{x:.2f} min/month<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(200, 36 * len(features) + 80), xaxis_title="expected downtime, minutes a month",
                      margin={"t": 20})
    return fig


def dependency_sankey(edges: pd.DataFrame) -> go.Figure:
    """Features (left) to the backends they depend on (right). Blue: primary; green: a fallback a drill
    verified; grey: a fallback never verified (counted as absent); red: called but declared nowhere."""
    if edges.empty:
        return empty_figure("No features declared and none seen in the proxy log")
    features = list(dict.fromkeys(edges["feature"]))
    backends = list(dict.fromkeys(edges["backend"]))
    owned = {}
    for e in edges.itertuples(index=False):
        if e.owned is not None and not pd.isna(e.owned):
            owned[e.backend] = bool(e.owned)
    labels = features + backends
    colors = ["#34495e"] * len(features) + [
        OWNED_COLOR if owned.get(b) else OUTSOURCED_COLOR if b in owned else "#d62728" for b in backends]
    kinds = [edge_kind(e.role, e.verified) for e in edges.itertuples(index=False)]
    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node={"label": labels, "color": colors, "pad": 18, "thickness": 16},
        link={
            "source": [features.index(f) for f in edges["feature"]],
            "target": [len(features) + backends.index(b) for b in edges["backend"]],
            "value": [1] * len(edges),
            "color": [EDGE_COLORS[k] for k in kinds],
            "customdata": [f"{e.role}: {e.status}" for e in edges.itertuples(index=False)],
            "hovertemplate": "%{source.label} → %{target.label}<br>%{customdata}<extra></extra>",
        }))
    fig.update_layout(height=max(260, 40 * max(len(features), len(backends)) + 80), margin={"t": 20, "b": 20})
    return fig


def risk_breakdown(breakdown: pd.DataFrame) -> go.Figure:
    """Minutes a month each link of one feature's chain shares; an unverified fallback shows what the
    feature's minutes would be were it verified."""
    if breakdown.empty:
        return empty_figure("This feature has no chain")
    fig = go.Figure()
    fig.add_trace(go.Bar(
        x=breakdown["minutes"], y=breakdown["link"], orientation="h", name="minutes it shares",
        marker_color=[OWNED_COLOR if o else OUTSOURCED_COLOR for o in breakdown["owned"]],
        customdata=breakdown["status"], hovertemplate="%{y}: %{x:.2f} min/month<br>%{customdata}<extra></extra>"))
    if breakdown["minutes_if_verified"].notna().any():
        fig.add_trace(go.Bar(
            x=breakdown["minutes_if_verified"], y=breakdown["link"], orientation="h",
            name="feature's minutes were it verified", marker_color="rgba(44, 160, 44, 0.5)",
            hovertemplate="verified, the feature would be at %{x:.2f} min/month<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(barmode="group", height=max(200, 50 * len(breakdown) + 100),
                      xaxis_title="minutes a month", margin={"t": 20})
    return fig
