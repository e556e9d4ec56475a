"""Providers: one target's latency and availability over time, errors, incidents, and the vendor's status page."""

import streamlit as st

from dashboard import charts, queries, ui

ctx = ui.context()
st.title("Providers")
names = ui.load(queries.target_names, ctx)
if not names:
    ui.empty("No target has been probed yet", "Run `airisk monitor` (or `airisk up`) to start measuring.")
    st.stop()

# A page's link (monitor/alerts/impact.py) opens this view on its target and incident:
# /providers?target=NAME&incident=ID. A name that is not a probed target is ignored, never echoed.
linked = st.query_params.get("target")
if linked in names and "provider_target" not in st.session_state:
    st.session_state["provider_target"] = linked
target = st.selectbox("Target", names, key="provider_target")
view = ui.load(queries.provider_view, ctx, target=target)
if view.about:
    st.caption(view.about)
s = view.summary
if s is None:
    ui.empty(f"No probe of {target} in the last {ctx.window.label}", "Pick a longer window, or run `airisk monitor`.")
else:
    cols = st.columns(5)
    cols[0].metric("available", f"{s.availability:.2%}" if s.availability is not None else "n/a")
    cols[1].metric("TTFT p50", f"{s.ttft_p50:.0f} ms" if s.ttft_p50 is not None else "n/a")
    cols[2].metric("TTFT p95", f"{s.ttft_p95:.0f} ms" if s.ttft_p95 is not None else "n/a")
    cols[3].metric("total p95", f"{s.total_p95:.0f} ms" if s.total_p95 is not None else "n/a")
    cols[4].metric("probes", f"{s.count:,}")
    st.caption(f"Last {ctx.window.label}, from the {'raw results' if s.source == 'raw' else s.source + ' rollups'}"
               + ("" if s.source == "raw" else " (percentiles within one histogram bucket, < 15 %)"))

st.subheader("Latency over time")
st.plotly_chart(charts.latency_over_time(view.latency, view.incidents, until=view.until))
st.subheader("Availability, hour by day")
st.plotly_chart(charts.availability_heatmap(view.availability))
st.subheader("Errors by kind")
st.plotly_chart(charts.errors_by_kind(view.errors))

st.subheader(f"Incidents of {target}")
wanted = st.query_params.get("incident", "")
if wanted.isdigit() and linked == target:
    picked = view.incidents[view.incidents["id"] == int(wanted)]
    if picked.empty:
        st.info(f"Incident {wanted} of the page is not in the last {ctx.window.label}: pick a longer window.")
    else:
        one = picked.iloc[0]
        st.info(f"The incident of the page: {target} {one['state'].upper()} since {one['opened_at']:%Y-%m-%d %H:%M}Z, "
                f"{one['duration']}; cause: {one['cause']}; seen from {one['regions']}.")
if view.incidents.empty:
    st.success(f"No incident of {target} in the last {ctx.window.label}.")
else:
    ui.table(view.incidents, duration_s=None, lead_time_s=st.column_config.NumberColumn(format="%.0f"))

st.subheader("Our detection beside the vendor's status page")
vendor = ui.load(queries.detection_vs_vendor, ctx)
st.plotly_chart(charts.detection_vs_vendor(vendor))
if not vendor.empty:
    ahead = vendor["lead_time_s"].dropna()
    st.caption(f"Ahead of the vendor in {int((ahead > 0).sum())} of {len(ahead)} incidents; median lead "
               f"{queries.duration_text(float(ahead.median())) if len(ahead) else 'n/a'}.")
status = ui.load(queries.vendor_status, ctx)
if status.empty:
    st.caption("No status page polled yet: `airisk monitor` polls each provider's status page.")
else:
    ui.table(status)
