"""The figures: what each chart draws from what the page queries return (no database, no Streamlit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
import pytest

from dashboard import charts
from dashboard.charts.common import STATE_COLORS, utc_naive
from dashboard.queries import DrillDetail
from dashboard.queries.drills import PHASE_COLUMNS, TIMELINE_COLUMNS, VERDICT_COLUMNS
from dashboard.queries.overview import INCIDENT_COLUMNS
from dashboard.queries.providers import HEATMAP_COLUMNS, LATENCY_COLUMNS

T = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


def frame(rows: list[dict], columns) -> pd.DataFrame:
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=list(columns))


def at(minutes: int) -> pd.Timestamp:
    return pd.Timestamp(utc_naive(T + timedelta(minutes=minutes)))


def incident(id_: int, state: str, opened: datetime, closed: datetime | None) -> dict:
    return {"id": id_, "target": "openai", "state": state, "opened_at": opened, "closed_at": closed}


def test_latency_percentiles_over_time_with_incidents_shaded():
    latency = frame([{"start": T + timedelta(minutes=i), "count": 1, "ttft_p50": 100.0 + i, "ttft_p95": 200.0,
                      "ttft_p99": 300.0, "total_p50": 400.0, "total_p95": 500.0, "total_p99": 600.0}
                     for i in range(10)], LATENCY_COLUMNS)
    incidents = frame([incident(7, "down", T + timedelta(minutes=2), T + timedelta(minutes=4)),
                       incident(8, "degraded", T + timedelta(minutes=8), None)], INCIDENT_COLUMNS)
    fig = charts.latency_over_time(latency, incidents, until=T + timedelta(minutes=10))
    assert [t.name for t in fig.data] == [f"{m} {q}" for m in ("time to first token", "total time")
                                          for q in ("p50", "p95", "p99")]
    assert list(fig.data[0].y) == [100.0 + i for i in range(10)]
    assert pd.Timestamp(fig.data[0].x[0]) == at(0)  # UTC, as the axis says
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    # Each incident shaded in both panels; an open one runs to the end of the window.
    assert len(rects) == 4
    assert {(pd.Timestamp(s.x0), pd.Timestamp(s.x1), s.fillcolor) for s in rects} == {
        (at(2), at(4), STATE_COLORS["down"]), (at(8), at(10), STATE_COLORS["degraded"])}
    assert {a.text for a in fig.layout.annotations} >= {"incident 7", "incident 8"}


def test_latency_chart_without_data_says_so():
    fig = charts.latency_over_time(frame([], LATENCY_COLUMNS))
    assert not fig.data and fig.layout.annotations[0].text == "No latency measured in this window"


def test_availability_heatmap_is_hour_by_day():
    day1, day2 = datetime(2025, 3, 3, tzinfo=UTC), datetime(2025, 3, 4, tzinfo=UTC)
    rows = [{"start": d + timedelta(hours=h), "day": d.date().isoformat(), "hour": h, "count": 120,
             "availability": 0.5 if (d == day2 and h == 13) else 1.0} for d in (day1, day2) for h in range(24)]
    rows.append({"start": day2 + timedelta(hours=23), "day": "2025-03-05", "hour": 0, "count": 0,
                 "availability": None})  # an hour without probes: blank, not 0 %
    (heat,) = charts.availability_heatmap(frame(rows, HEATMAP_COLUMNS)).data
    assert isinstance(heat, go.Heatmap)
    assert list(heat.x) == list(range(24)) and list(heat.y) == ["2025-03-03", "2025-03-04", "2025-03-05"]
    z = pd.DataFrame(heat.z, index=heat.y, columns=heat.x)
    assert z.loc["2025-03-04", 13] == 50.0 and z.loc["2025-03-03", 13] == 100.0
    assert pd.isna(z.loc["2025-03-05", 0]) and pd.isna(z.loc["2025-03-05", 5])
    assert (heat.zmin, heat.zmax) == (90, 100)


def test_errors_by_kind_most_first():
    errors = pd.DataFrame([{"error_kind": "rate_limited", "count": 2}, {"error_kind": "overloaded", "count": 9}])
    (bar,) = charts.errors_by_kind(errors).data
    assert list(bar.y) == ["rate_limited", "overloaded"] and list(bar.x) == [2, 9]  # largest at the top
    assert charts.errors_by_kind(errors.iloc[0:0]).layout.annotations[0].text == "No errors in this window"


def test_detection_beside_the_vendor_with_lead_times():
    rows = pd.DataFrame([
        {"id": 1, "target": "openai", "opened_at": T, "vendor_first_post_at": T + timedelta(minutes=5),
         "lead_time_s": 300.0},
        {"id": 2, "target": "anthropic", "opened_at": T, "vendor_first_post_at": T - timedelta(seconds=30),
         "lead_time_s": -30.0}])
    fig = charts.detection_vs_vendor(rows)
    ours, theirs = fig.data[1], fig.data[2]
    assert (ours.name, theirs.name) == ("airisk detected", "vendor's first post")
    assert list(ours.y) == ["openai #1", "anthropic #2"]
    assert list(theirs.text) == ["we were 5m 00s ahead", "vendor was 30s ahead"]


def test_dependency_sankey_colours_each_kind_of_edge():
    edges = pd.DataFrame([
        {"feature": "chat", "backend": "anthropic", "role": "primary", "verified": None, "owned": False,
         "status": "primary"},
        {"feature": "chat", "backend": "local", "role": "fallback", "verified": True, "owned": True, "status": "ok"},
        {"feature": "tags", "backend": "degraded:heuristic", "role": "degraded", "verified": False, "owned": True,
         "status": "unverified"},
        {"feature": "chat", "backend": "gemini", "role": "undeclared", "verified": None, "owned": None,
         "status": "seen"}])
    (sankey,) = charts.dependency_sankey(edges).data
    assert list(sankey.node.label) == ["chat", "tags", "anthropic", "local", "degraded:heuristic", "gemini"]
    assert list(sankey.link.source) == [0, 0, 1, 0] and list(sankey.link.target) == [2, 3, 4, 5]
    assert list(sankey.link.color) == [charts.EDGE_COLORS[k] for k in ("primary", "verified", "unverified",
                                                                       "undeclared")]
    colors = dict(zip(sankey.node.label, sankey.node.color, strict=True))
    assert colors["local"] != colors["anthropic"] and colors["gemini"] == "#d62728"


def test_feature_minutes_and_risk_breakdown():
    features = pd.DataFrame([{"feature": "description", "grade": "E", "minutes_per_month": 423.5},
                             {"feature": "chat", "grade": "A", "minutes_per_month": 0.0}])
    (bar,) = charts.feature_minutes(features).data
    assert list(bar.text) == ["E · 423.5 min", "A · 0.0 min"]
    breakdown = pd.DataFrame([
        {"link": "openai", "minutes": 432.0, "owned": False, "status": "primary", "minutes_if_verified": None},
        {"link": "degraded:heuristic", "minutes": 0.0, "owned": True, "status": "unverified",
         "minutes_if_verified": 293.8}])
    shares, verified = charts.risk_breakdown(breakdown).data
    assert list(shares.x) == [432.0, 0.0] and verified.name == "feature's minutes were it verified"
    assert list(pd.Series(verified.x).fillna(-1)) == [-1, 293.8]


def test_drill_timeline_shades_only_the_faulted_phases():
    t0 = T.timestamp()
    phases = frame([{"name": "baseline", "start_s": 0, "end_s": 20, "faulted": False, "faults": ""},
                    {"name": "down", "start_s": 20, "end_s": 50, "faulted": True, "faults": "anthropic: overloaded"}],
                   PHASE_COLUMNS)
    timeline = frame([{"s": s, "feature": f, "n": 4, "ok": 4, "ok_rate": 1.0 if f == "chat" or s < 20 else 0.0,
                       "p50_ms": 300.0} for s in range(60) for f in ("chat", "description")], TIMELINE_COLUMNS)
    detail = DrillDetail(1, "anthropic-outage", T, datetime.fromtimestamp(t0 + 60, UTC), False, None, phases,
                         timeline, frame([], VERDICT_COLUMNS))
    fig = charts.drill_timeline(detail)
    assert [t.name for t in fig.data] == ["chat", "chat", "description", "description"]
    assert list(fig.data[2].y[18:22]) == [1.0, 1.0, 0.0, 0.0]
    rects = {(s.x0, s.x1) for s in fig.layout.shapes}
    assert rects == {(20, 50)}
    assert "down: anthropic: overloaded" in {a.text for a in fig.layout.annotations}


def test_local_beside_hosted_one_panel_per_measure():
    rows = pd.DataFrame([
        {"target": "local", "owned": True, "ttft_p50_ms": 43.0, "ttft_p95_ms": 46.0, "availability": 1.0,
         "canary_pass_rate": 1.0, "total_p50_ms": 300.0, "cost_per_1k_probes_usd": 0.0},
        {"target": "openai", "owned": False, "ttft_p50_ms": 340.0, "ttft_p95_ms": 390.0, "availability": 0.97,
         "canary_pass_rate": None, "total_p50_ms": 900.0, "cost_per_1k_probes_usd": 2.0}])
    fig = charts.local_vs_hosted(rows)
    assert len(fig.data) == 6
    assert {a.text for a in fig.layout.annotations} == {
        "TTFT p50 (ms)", "TTFT p95 (ms)", "availability", "canary pass rate", "total time p50 (ms)",
        "USD per 1000 probes"}
    canary = next(t for t in fig.data if t.name == "canary pass rate")
    assert list(canary.text) == ["100.0%", "n/a"] and canary.marker.color[0] != canary.marker.color[1]


def test_alerts_by_channel_stacked_by_delivery():
    counts = pd.DataFrame([{"channel": "oncall", "delivered": "delivered", "count": 3},
                           {"channel": "team", "delivered": "not delivered", "count": 1}])
    fig = charts.alerts_by_channel(counts)
    assert fig.layout.barmode == "stack"
    assert {(t.name, tuple(t.x), tuple(t.y)) for t in fig.data} == {("delivered", ("oncall",), (3,)),
                                                                    ("not delivered", ("team",), (1,))}


@pytest.mark.parametrize(("chart", "empty"), [
    (charts.availability_heatmap, frame([], HEATMAP_COLUMNS)),
    (charts.detection_vs_vendor, pd.DataFrame(columns=["id", "target", "opened_at", "vendor_first_post_at",
                                                       "lead_time_s"])),
    (charts.dependency_sankey, pd.DataFrame(columns=["feature", "backend", "role", "verified", "owned", "status"])),
    (charts.local_vs_hosted, pd.DataFrame(columns=["target", "owned"])),
    (charts.alerts_by_channel, pd.DataFrame(columns=["channel", "delivered", "count"])),
])
def test_every_chart_explains_an_empty_figure(chart, empty):
    fig = chart(empty)
    assert not fig.data and fig.layout.annotations[0].text.startswith("No ")
