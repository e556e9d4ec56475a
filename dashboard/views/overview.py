"""Overview: features worst first, every provider's state and availability, open incidents."""

import streamlit as st

from dashboard import charts, queries, ui

ctx = ui.context()
data = ui.load(queries.overview, ctx)
risk = ui.risk(ctx)

st.title("Overview")
st.subheader("Features, worst first")
if risk is None:
    ui.no_features(ctx)
else:
    worst = risk.features.iloc[0]
    st.markdown(f"Worst: **{worst.feature}**, grade **{worst.grade}**, {worst.minutes_per_month:,.1f} minutes a "
                f"month expected down" + (f", mostly {worst.main_contributor}" if worst.main_contributor else ""))
    if not risk.measured:
        st.warning("No probe results for any feature's backends in the last 30 days: every primary is assumed "
                   "99.5 % available. Run `airisk monitor` to measure them.")
    ui.table(risk.features, minutes_per_month=st.column_config.NumberColumn(format="%.1f"),
             outsourced_share=st.column_config.NumberColumn(format="percent"),
             fallbacks_verified=st.column_config.CheckboxColumn(), score=st.column_config.NumberColumn(format="%.0f"))
    st.plotly_chart(charts.feature_minutes(risk.features))
    st.caption("Expected AI-caused downtime over a 30-day month, from the last 30 days of probes; a fallback "
               "counts only once a drill saw it answer (docs/RISK_MODEL.md, `airisk score`).")
    if not risk.undeclared.empty:
        st.error("Seen calling AI providers but not declared in the config:")
        ui.table(risk.undeclared)

st.subheader("Providers")
if data.providers.empty:
    ui.empty("No target has been probed yet", "Run `airisk monitor` (or `airisk up`) to start measuring.")
else:
    percent = st.column_config.NumberColumn(format="percent")
    ui.table(data.providers, availability_24h=percent, availability_7d=percent, availability_30d=percent,
             ttft_p95_ms=st.column_config.NumberColumn("TTFT p95 (24 h)", format="%.0f ms"),
             owned=st.column_config.CheckboxColumn(), open_incident=st.column_config.CheckboxColumn())

st.subheader("Open incidents")
if data.open_incidents.empty:
    st.success("No open incident.")
else:
    # Global incidents (the regions' quorum agrees; these page) first, then the regional ones of targets
    # with no global incident (the others are already in their global incident's regions).
    incidents = data.open_incidents
    paging = set(incidents[incidents.scope == "global"].target)
    shown = incidents[(incidents.scope == "global") | ~incidents.target.isin(paging)]
    for inc in shown.sort_values("scope", kind="stable").itertuples(index=False):
        if inc.scope == "global":
            st.markdown(f":red[**{inc.target}** is **{inc.state.upper()}**] since {inc.opened_at:%Y-%m-%d %H:%M:%S} "
                        f"UTC ({inc.duration}), seen from {inc.regions}{f': {inc.cause}' if inc.cause else ''}")
        else:
            st.markdown(f":orange[**{inc.target}** is **{inc.state.upper()}** from {inc.regions} only] since "
                        f"{inc.opened_at:%Y-%m-%d %H:%M:%S} UTC ({inc.duration}), a regional incident"
                        f"{f': {inc.cause}' if inc.cause else ''}")

st.subheader("Vantage points")
if data.vantage.empty:
    st.caption("No monitor has written a heartbeat yet (`airisk monitor --region NAME`).")
else:
    ui.table(data.vantage)
    lost = data.vantage[data.vantage.status == "lost"]
    if not lost.empty:
        st.warning(f"Lost: {', '.join(lost.region)}. Their regions no longer count towards the quorum.")

st.subheader("Models retiring or gone")
if data.models.empty:
    st.caption("No model a target uses is retiring within 30 days or missing from its provider's listing "
               "(`lifecycle:` in airisk.yaml; `airisk score --retire-horizon 30d` gates a release on it).")
else:
    ui.table(data.models)
