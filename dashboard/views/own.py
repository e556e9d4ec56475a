"""Can we own it? Each feature's owned backends beside its hosted primary: quality, latency, capacity, cost,
and a verdict, from the latest eval runs and capacity searches."""

import streamlit as st

from dashboard import charts, queries, ui
from dashboard.queries.ownable import MORE_CAPACITY, NOT_MEASURED, NOT_THIS_MODEL, OWNABLE

COLORS = {OWNABLE: "green", MORE_CAPACITY: "orange", NOT_THIS_MODEL: "red", NOT_MEASURED: "gray"}

ctx = ui.context()
st.title("Can we own it?")
view = ui.load(queries.own_view, ctx)
if view is None:
    ui.no_features(ctx)
    st.stop()
if not view.measured:
    ui.empty("No eval run yet",
             "Run `airisk eval run` to measure every feature's backends (and its `candidates:`) on its eval set "
             "(`features.<name>.eval`), then `airisk eval capacity --feature F --backend B` for each owned one.")

table = view.table
for row in table[table["verdict"] != ""].itertuples(index=False):
    line = f"**{row.feature}** on **{row.backend}**: :{COLORS[row.verdict]}[**{row.verdict}**]"
    if row.interval:
        line += f", pass rate {row.pass_rate:.0%} (95% interval {row.interval}, n={row.judged:.0f})"
    if row.why:
        line += f". {row.why[0].upper()}{row.why[1:]}."
    if row.to_run:
        line += " Run " + ", then ".join(f"`{cmd}`" for cmd in row.to_run.split("; ")) + "."
    st.markdown(line)
for name in view.no_owned:
    st.markdown(f"**{name}** has no owned backend to weigh: list one under `features.{name}.candidates` "
                "(e.g. `[local]`) and run `airisk eval run`.")

percent, ms = st.column_config.NumberColumn(format="percent"), st.column_config.NumberColumn(format="%.0f")
ui.table(
    table, owned=st.column_config.CheckboxColumn(), pass_rate=percent, lower=None, upper=None,
    interval={"label": "95% interval"}, judged=st.column_config.NumberColumn("judged (n)", format="%d"),
    unjudged=st.column_config.NumberColumn(format="%d"), errors={"label": "not answered"},
    ttft_p95_ms=ms, total_p95_ms=ms, budget={"label": "latency budget"},
    capacity_rps=st.column_config.NumberColumn("capacity (requests/s)", format="%.3g"),
    traffic_rps=st.column_config.NumberColumn("peak traffic (requests/s)", format="%.3g"),
    traffic_from={"label": "traffic from"},
    cost_per_1000=st.column_config.NumberColumn("cost per 1,000 requests (USD)", format="%.4f"),
    cost_from={"label": "cost from"}, to_run={"label": "to measure"},
)
st.caption("Quality counts by the lower end of the pass rate's 95% interval, as the risk model does; an owned "
           "backend needs it at the feature's `min_quality` (else at the primary's). Hosted cost is catalog prices "
           "times the tokens the eval measured; owned cost is `local_model.cost_per_hour` over the requests an hour "
           "the machine serves at its measured capacity (else one at a time, at the eval's mean total time). "
           "Unanswered cases (errors) are counted apart from quality failures; unjudged ones are neither.")

st.subheader("Quality against cost")
st.plotly_chart(charts.quality_vs_cost(table))
st.caption("Teal: owned (runs on our machines); orange: outsourced. Bars: the pass rate's 95% interval.")

st.subheader("Capacity")
if not view.capacities:
    ui.empty("No capacity search yet",
             "Run `airisk eval capacity --feature F --backend B` on an owned backend to find the highest rate it "
             "holds within the feature's latency budget.")
    st.stop()
pairs = sorted(view.capacities)
feature, backend = st.selectbox("Feature and backend", pairs, format_func=" · ".join, key="own_capacity")
cap = view.capacities[(feature, backend)]
steps = view.steps[(view.steps["feature"] == feature) & (view.steps["backend"] == backend)]
traffic = table[(table["feature"] == feature) & (table["backend"] == backend)]["traffic_rps"].iloc[0]
st.plotly_chart(charts.capacity_curve(steps, budget_ms=cap.budget_ms or view.budgets[feature].total_ms,
                                      capacity_rps=cap.rate_rps, traffic_rps=traffic))
st.caption(f"Searched {cap.at:%Y-%m-%d %H:%M} UTC. Green: a rate it held (p95 within budget and the pass rate "
           "kept); red: one it did not.")
