"""Drills: every run; per run, the timeline with fault windows shaded, and verdicts against expectations."""

import streamlit as st

from dashboard import charts, queries, ui

ctx = ui.context()
st.title("Drills")
runs = ui.load(queries.drill_list, ctx)
if runs.empty:
    ui.empty("No drill has been run yet",
             "Run `airisk drill run DRILL.yaml` (examples/storefront/drills/) to rehearse an outage.")
    st.stop()

ui.table(runs, passed=st.column_config.CheckboxColumn())
labels = {r.id: f"#{r.id} {r.name}, {r.started_at:%Y-%m-%d %H:%M} UTC: {r.result}" for r in runs.itertuples()}
run_id = st.selectbox("Drill run", list(labels), format_func=labels.get, key="drill_run")
detail = ui.load(queries.drill_detail, ctx, run_id=run_id)
if detail is None:
    st.warning(f"Drill run #{run_id} is gone.")
    st.stop()

st.subheader(f"{detail.name}: {detail.result}")
for v in detail.verdicts.itertuples(index=False):
    mark = ":green[met]" if v.meets else ":red[NOT met]"
    st.markdown(f"**{v.feature}**: {v.verdict or 'no request during the faults'} (expected {v.expected}), {mark}")
st.plotly_chart(charts.drill_timeline(detail))
ui.table(detail.verdicts, ok_rate=st.column_config.NumberColumn(format="percent"),
         answered_rate=st.column_config.NumberColumn(format="percent"), meets=st.column_config.CheckboxColumn())
st.caption("Rates and latencies are over the phases with faults; recovery is from the faults' end to three full "
           "answers in a row.")
ui.table(detail.phases, start_s=None, end_s=None)
