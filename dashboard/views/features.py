"""Features: the dependency map, each feature's risk breakdown, and what-ifs from the risk model."""

import streamlit as st

from dashboard import charts, queries, ui

ctx = ui.context()
st.title("Features")
view = ui.risk(ctx)
if view is None:
    ui.no_features(ctx)
    st.stop()

st.subheader("Dependency map")
st.plotly_chart(charts.dependency_sankey(view.edges))
st.caption("Blue: primary. Green: a fallback a drill saw answering. Grey: a fallback never verified, counted as "
           "absent (an AI fallback also needs an eval of its answers: `airisk eval run`; it then counts with the "
           "lower bound of its pass rate, up to its measured capacity). Red: a provider the proxy log or a drill saw "
           "the feature call, that no chain declares. Teal nodes are owned (local), orange outsourced.")
for e in view.edges[view.edges["role"] == "undeclared"].itertuples(index=False):
    st.error(f"**{e.feature}** calls **{e.backend}**: {e.status}")

st.subheader("Risk breakdown")
feature = st.selectbox("Feature", [f.feature for f in view.report.features], key="breakdown_feature")
risk = next(f for f in view.report.features if f.feature == feature)
cols = st.columns(4)
cols[0].metric("grade", risk.grade)
cols[1].metric("min/month", f"{risk.minutes:,.1f}")
cols[2].metric("outsourced", f"{risk.outsourced_share:.0%}" if risk.minutes > 0 else "-")
cols[3].metric("criticality", risk.criticality)
table = queries.breakdown(risk)
st.plotly_chart(charts.risk_breakdown(table))
percent = st.column_config.NumberColumn(format="percent")
minutes = st.column_config.NumberColumn(format="%.2f")
ui.table(table, availability_used=percent, within_budget=percent, any_latency=percent, traffic=percent,
         minutes=minutes, value=percent, pass_rate=percent, pass_rate_low=percent, pass_rate_high=percent,
         capacity_share=percent, effectiveness=percent, minutes_if_verified=minutes, minutes_at_min_quality=minutes)
for note in [*risk.notes, *risk.gate_blockers]:
    st.caption(note)

st.subheader("What if")
choices = queries.what_if_choices(ctx.config)
with st.form("what_if"):
    cols = st.columns(3)
    wf = cols[0].selectbox("Feature", [f.feature for f in view.report.features], key="what_if_feature")
    change = cols[1].selectbox("Change", ["add", "primary"], key="what_if_change",
                               format_func={"add": "add a verified fallback", "primary": "move the primary to"}.get)
    backend = cols[2].selectbox("Backend", choices, index=choices.index("local") if "local" in choices else 0,
                                key="what_if_backend")
    if st.form_submit_button("Compute"):
        st.session_state["what_if_asked"] = (wf, change, backend)
if asked := st.session_state.get("what_if_asked"):
    wf, change, backend = asked
    result = ui.load(queries.what_if, ctx, slow=True, feature=wf, change=change, backend=backend)
    if result.error:
        st.error(result.error)
    for row in result.table.itertuples(index=False):
        st.markdown(f"**{row.feature}**, {row.change}: {row.minutes_before:,.1f} → **{row.minutes_after:,.1f}** "
                    f"min/month, grade {row.grade_before} → **{row.grade_after}**, outsourced "
                    f"{row.outsourced_before:.0%} → {row.outsourced_after:.0%}")
st.caption("From the same 30 days of measurements as the scores; `airisk score --what-if FEATURE:add=BACKEND` "
           "gives the same.")
