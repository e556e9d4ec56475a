"""Alerts: what was sent, when, to which channel, delivered or not."""

import streamlit as st

from dashboard import charts, queries, ui

ctx = ui.context()
st.title("Alerts")
alerts = ui.load(queries.alert_table, ctx)
if alerts.empty:
    ui.empty(f"No alert raised in the last {ctx.window.label}",
             "Alerts come from `airisk monitor` with an `alerts:` section (channels and rules) in airisk.yaml.")
    st.stop()

counts = queries.delivery_counts(alerts)
cols = st.columns(4)
cols[0].metric("alerts", len(alerts))
for col, state in zip(cols[1:], ("delivered", "pending (retrying)", "not delivered"), strict=True):
    col.metric(state, int((alerts["delivered"] == state).sum()))
st.plotly_chart(charts.alerts_by_channel(counts))
ui.table(alerts, delay_s=st.column_config.NumberColumn(format="%.1f"))
