"""Can we own it? Quality against cost per feature and backend, and one backend's capacity curve."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.charts.common import OUTSOURCED_COLOR, OWNED_COLOR, STATE_COLORS, empty_figure


def _present(value) -> bool:
    return value is not None and not pd.isna(value)


def quality_vs_cost(table: pd.DataFrame) -> go.Figure:
    """One point per feature × backend of `dashboard.queries.own_view`'s table: pass rate (with its 95%
    interval as error bars) against cost per 1,000 requests; owned in teal, outsourced in orange. A row
    without a pass rate or a cost is not drawn, and the figure says which."""
    if table.empty:
        return empty_figure("No features to draw")
    drawable = table[[_present(p) and _present(c) for p, c in zip(table["pass_rate"], table["cost_per_1000"],
                                                                    strict=True)]]
    left_out = [f"{r.feature} · {r.backend}" for r in table.itertuples(index=False)
                if (r.feature, r.backend) not in set(zip(drawable["feature"], drawable["backend"], strict=True))]
    if drawable.empty:
        return empty_figure("Nothing measured on both quality and cost yet: run `airisk eval run` "
                            "(and set local_model.cost_per_hour for owned backends)")
    fig = go.Figure()
    for owned, name, color in ((True, "owned", OWNED_COLOR), (False, "outsourced", OUTSOURCED_COLOR)):
        part = drawable[drawable["owned"] == owned]
        if part.empty:
            continue
        labels = [f"{f} · {b}" for f, b in zip(part["feature"], part["backend"], strict=True)]
        verdicts = [v or "hosted" for v in part["verdict"]]
        fig.add_trace(go.Scatter(
            x=part["cost_per_1000"], y=part["pass_rate"], mode="markers+text", name=name, text=labels,
            textposition="top center", marker={"color": color, "size": 11},
            error_y={"type": "data", "symmetric": False, "array": part["upper"] - part["pass_rate"],
                     "arrayminus": part["pass_rate"] - part["lower"], "color": color},
            customdata=list(zip(part["lower"], part["upper"], part["judged"], verdicts, strict=True)),
            hovertemplate="%{text}<br>pass rate %{y:.0%} (95%: %{customdata[0]:.0%}–%{customdata[1]:.0%}, "
                          "n=%{customdata[2]})<br>$%{x:.4f} per 1,000 requests<br>%{customdata[3]}<extra></extra>"))
    costs = [c for c in drawable["cost_per_1000"] if c > 0]
    log = len(costs) == len(drawable) and max(costs) / min(costs) > 20
    fig.update_xaxes(title="USD per 1,000 requests", type="log" if log else "linear",
                     rangemode="normal" if log else "tozero")
    fig.update_yaxes(title="pass rate (95% interval)", tickformat=".0%", range=[-0.05, 1.1])
    fig.update_layout(height=460, margin={"t": 40}, legend={"orientation": "h", "y": 1.08})
    if left_out:
        fig.add_annotation(text="not drawn (no pass rate or no cost): " + ", ".join(left_out), showarrow=False,
                           x=0, y=-0.2, xref="paper", yref="paper", xanchor="left", font={"size": 11})
        fig.update_layout(margin={"t": 40, "b": 90})
    return fig


def capacity_curve(steps: pd.DataFrame, *, budget_ms: float | None, capacity_rps: float | None,
                   traffic_rps: float | None) -> go.Figure:
    """One capacity search (``steps``: `dashboard.queries.own.STEP_COLUMNS` of one feature and backend):
    p95 total time against the request rate with the budget line above, the pass rate below; each rate
    green when it held, red when not; dotted lines at the capacity found and the feature's peak traffic."""
    if steps.empty:
        return empty_figure("No capacity search: run `airisk eval capacity --feature F --backend B`")
    steps = steps.sort_values("rate")
    colors = [STATE_COLORS["up"] if ok else STATE_COLORS["down"] for ok in steps["ok"]]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.08,
                        subplot_titles=["p95 total time (ms)", "pass rate"])
    fig.add_trace(go.Scatter(x=steps["rate"], y=steps["p95_ms"], mode="lines+markers", name="p95",
                             marker={"color": colors, "size": 9}, line={"color": "#888"},
                             hovertemplate="%{x:.3g} requests/s: p95 %{y:.0f} ms<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=steps["rate"], y=steps["pass_rate"], mode="lines+markers", name="pass rate",
                             marker={"color": colors, "size": 9}, line={"color": "#888"},
                             hovertemplate="%{x:.3g} requests/s: %{y:.0%} passed<extra></extra>"), row=2, col=1)
    if budget_ms is not None:
        fig.add_hline(y=budget_ms, line_dash="dash", line_color=STATE_COLORS["down"], row=1, col=1,
                      annotation_text=f"budget {budget_ms:.0f} ms", annotation_position="top left")
    for x, text, color in ((capacity_rps, "capacity", STATE_COLORS["up"]), (traffic_rps, "peak traffic", "#555")):
        if x is not None and math.isfinite(x):
            fig.add_vline(x=x, line_dash="dot", line_color=color, annotation_text=f"{text} {x:.3g}/s",
                          annotation_position="top right")
    fig.update_xaxes(title="requests a second", rangemode="tozero", row=2, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05], row=2, col=1)
    fig.update_layout(height=480, margin={"t": 40}, showlegend=False)
    return fig
