"""Local vs outsourced: the local model beside each hosted provider."""

import streamlit as st

from dashboard import charts, queries, ui

ctx = ui.context()
st.title("Local vs outsourced")
rows = ui.load(queries.comparison, ctx)
if rows.empty:
    ui.empty(f"No probe in the last {ctx.window.label}", "Run `airisk monitor` (or `airisk up`) to start measuring.")
    st.stop()
if not rows["owned"].any():
    st.info("No owned (local) model among the probed targets: add `local_model:` to airisk.yaml (or run "
            "`airisk local serve` and a target for it) to compare.")
st.plotly_chart(charts.local_vs_hosted(rows))
percent, usd = st.column_config.NumberColumn(format="percent"), st.column_config.NumberColumn(format="%.4f")
ui.table(rows, owned=st.column_config.CheckboxColumn(), availability=percent, canary_pass_rate=percent,
         canary_exact=st.column_config.CheckboxColumn(), cost_usd=usd, cost_per_1k_probes_usd=usd)
st.caption("Teal: owned (runs on our machines); orange: outsourced. Cost is what the probes were billed at list "
           "prices; a local model has no per-call price (its cost is the machine). Beyond two hours, the canary "
           "pass rate comes from the rollups (answers that came whole).")
