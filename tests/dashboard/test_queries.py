"""The page queries over a seeded store (SQLite and PostgreSQL): what each page would show."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from dashboard import queries
from dashboard.windows import WINDOWS
from monitor.risk import WhatIf
from tests.dashboard.conftest import NOW
from tests.dashboard.seed import ANTHROPIC_DOWN_FOR, VENDOR_LEAD_S

DAY, WEEK, HOUR = WINDOWS["24 h"], WINDOWS["7 d"], WINDOWS["1 h"]


def test_features_worst_first_with_grades_and_fallback_status(session: Session, seeded, config):
    data = queries.risk_view(session=session, config=config, now=NOW)
    features = data.features.set_index("feature")
    assert list(data.features["feature"])[-1] == "chat"  # the only one with a working fallback is the least at risk
    assert list(data.features["minutes_per_month"]) == sorted(data.features["minutes_per_month"], reverse=True)
    # openai was down 1 probe in 30 over the last 3 hours (1 in ~102 over the 3 days): no fallback for description.
    assert features.loc["description", "grade"] == "E" and features.loc["description", "fallbacks"] == "no fallback"
    assert features.loc["description", "outsourced_share"] == pytest.approx(1.0)
    assert features.loc["tags", "fallbacks"] == "unverified: degraded:heuristic (no drill saw it answer)"
    assert not features.loc["tags", "fallbacks_verified"]
    assert features.loc["chat", "fallbacks"] == "verified: local" and features.loc["chat", "fallbacks_verified"]
    # Drill-verified, and 200 of 200 eval answers passed: it counts with the lower bound, 98.1%, so chat is
    # no longer the grade A a "full replacement" gave it (docs/RISK_MODEL.md, 3a).
    assert features.loc["chat", "grade"] == "D"
    chat = next(f for f in data.report.features if f.feature == "chat")
    local = queries.breakdown(chat).set_index("link").loc["local"]
    assert local["counted"] and local["value"] == pytest.approx(0.981, abs=5e-4) and local["judged"] == 200
    assert "calls undeclared gemini" in features.loc["chat", "notes"]
    assert data.measured


def test_overview_providers_worst_state_first_with_availability_and_p95(session: Session, seeded):
    data = queries.overview(session=session, now=NOW)
    p = data.providers
    assert list(p["target"]) == ["anthropic", "openai", "local"]
    anthropic = p.iloc[0]
    assert anthropic.state == "down" and anthropic.open_incident and anthropic.last_probe == "down (overloaded)"
    # Over 24 h: 180 one-a-minute probes of which the last 20 failed, and 126 ten-minute ones, all up.
    assert anthropic.availability_24h == pytest.approx((306 - 20) / 306, abs=0.01)
    assert anthropic.availability_24h < anthropic.availability_7d < 1
    local = p.set_index("target").loc["local"]
    assert local.owned and local.availability_30d == 1.0 and local.ttft_p95_ms == pytest.approx(46, rel=0.15)
    (inc,) = data.open_incidents.itertuples()
    assert (inc.target, inc.state, inc.closed_at) == ("anthropic", "down", None)
    assert inc.duration_s == pytest.approx(ANTHROPIC_DOWN_FOR.total_seconds())
    assert "overloaded ×4" in inc.cause and inc.duration.endswith("(open)")


def test_no_features_without_config(session: Session, seeded, config):
    assert queries.risk_view(session=session, config=None, now=NOW) is None
    assert queries.risk_view(session=session, config=config.model_copy(update={"features": {}}), now=NOW) is None


def test_provider_view_bins_latency_and_availability_and_lists_incidents(session: Session, seeded):
    view = queries.provider_view(session=session, now=NOW, window=HOUR, target="openai")
    assert view.source == "raw" and view.summary.count == 60
    assert len(view.latency) == 60 and view.latency["count"].sum() == 60  # one-minute bins, one probe each
    up = view.latency.dropna(subset=["ttft_p50"])
    assert set(up["ttft_p50"]) <= {300.0 + 10 * k for k in range(10)}  # raw rows: exact values
    assert list(view.errors.itertuples(index=False)) == [("rate_limited", 2)]
    assert view.incidents.empty
    assert view.about == "openai · gpt-4o-mini · https://api.openai.com/v1 · outsourced"
    local = queries.provider_view(session=session, now=NOW, window=HOUR, target="local")
    assert local.about == "local · gemma-3-270m · http://127.0.0.1:8011/v1 · owned (local)"  # no user:password
    week = queries.provider_view(session=session, now=NOW, window=WEEK, target="openai")
    assert week.source == "hour"
    assert week.availability["count"].sum() == week.summary.count and set(week.availability["hour"]) == set(range(24))
    (inc,) = week.incidents.itertuples()
    assert inc.lead_time_s == VENDOR_LEAD_S and inc.closed_at is not None and inc.duration == "30m 00s"


def test_detection_beside_the_vendor(session: Session, seeded):
    assert queries.detection_vs_vendor(session=session, now=NOW, window=DAY).empty
    (row,) = queries.detection_vs_vendor(session=session, now=NOW, window=WEEK).itertuples()
    assert (row.target, row.lead_time_s) == ("openai", VENDOR_LEAD_S)
    assert row.vendor_first_post_at - row.opened_at == timedelta(seconds=VENDOR_LEAD_S)
    (status,) = queries.vendor_status(session=session).itertuples()
    assert (status.provider, status.indicator) == ("anthropic", "major")


def test_target_names_include_configured_and_probed(session: Session, seeded):
    assert queries.target_names(session=session) == ["anthropic", "local", "openai"]


def test_dependency_edges_say_primary_verified_unverified_and_undeclared(session: Session, seeded, config):
    view = queries.risk_view(session=session, config=config, now=NOW)
    edges = {(e.feature, e.backend): e for e in view.edges.itertuples(index=False)}
    assert edges[("chat", "anthropic")].role == "primary"
    assert edges[("chat", "local")].role == "fallback" and edges[("chat", "local")].verified
    assert edges[("tags", "degraded:heuristic")].role == "degraded"
    assert not edges[("tags", "degraded:heuristic")].verified
    assert edges[("chat", "gemini")].role == "undeclared" and not edges[("chat", "gemini")].declared
    assert list(view.undeclared.itertuples(index=False)) == []  # gemini is called by a declared feature


def test_what_if_from_the_risk_model(session: Session, seeded, config):
    result = queries.what_if(session=session, config=config, now=NOW, feature="description", change="add",
                             backend="local")
    (row,) = result.table.itertuples(index=False)
    assert row.feature == "description" and "local added as a verified fallback" in row.change
    assert row.grade_before == "E" and row.minutes_after < row.minutes_before and row.outsourced_after < 1
    # The same figures as the whole report's what-if (only the one feature is measured again).
    whole = queries.risk_report(session=session, config=config, now=NOW, what_ifs=[
        WhatIf("description", add_fallback="local")])
    assert row.minutes_after == pytest.approx(whole.what_ifs[0][1].minutes)
    moved = queries.what_if(session=session, config=config, now=NOW, feature="tags", change="primary",
                            backend="local")
    assert moved.table.iloc[0]["outsourced_after"] == 0 and not moved.error
    bad = queries.what_if(session=session, config=config, now=NOW, feature="nope", change="add", backend="local")
    assert "no feature named 'nope'" in bad.error and bad.table.empty
    unknown = queries.what_if(session=session, config=config, now=NOW, feature="chat", change="add", backend="acme")
    assert "unknown backend 'acme'" in unknown.error


def test_risk_breakdown_of_a_feature(session: Session, seeded, config):
    report = queries.risk_report(session=session, config=config, now=NOW)
    tags = next(f for f in report.features if f.feature == "tags")
    table = queries.breakdown(tags)
    assert list(table["link"]) == ["openai", "degraded:heuristic"]
    assert list(table["counted"]) == [True, False]
    assert table.iloc[1]["minutes_if_verified"] < table.iloc[0]["minutes"]
    assert table.iloc[0]["minutes"] == pytest.approx(tags.minutes)


def test_drills_list_and_detail(session: Session, seeded):
    runs = queries.drill_list(session=session)
    (run,) = runs.itertuples(index=False)
    assert (run.name, run.result, run.features, run.failing, run.duration) == (
        "anthropic-outage", "failed", 2, "description", "1m 00s")
    detail = queries.drill_detail(session=session, run_id=seeded["drill"])
    verdicts = detail.verdicts.set_index("feature")
    assert verdicts.loc["chat", "verdict"] == "resilient" and verdicts.loc["chat", "meets"]
    assert verdicts.loc["description", "verdict"] == "broken" and not verdicts.loc["description", "meets"]
    assert verdicts.loc["chat", "answered_by"] == "local"
    faulted = detail.phases[detail.phases["faulted"]]
    assert list(faulted["name"]) == ["anthropic-down"] and faulted.iloc[0]["faults"] == "anthropic: overloaded"
    assert (faulted.iloc[0]["start_s"], faulted.iloc[0]["end_s"]) == (20, 50)
    during = detail.timeline[(detail.timeline["s"] == 30)].set_index("feature")
    assert during.loc["chat", "ok_rate"] == 1.0 and during.loc["description", "ok_rate"] == 0.0
    assert queries.drill_detail(session=session, run_id=999) is None


def test_local_beside_hosted(session: Session, seeded):
    rows = queries.comparison(session=session, now=NOW, window=HOUR)
    assert list(rows["target"]) == ["local", "anthropic", "openai"]  # owned first
    by = rows.set_index("target")
    assert by.loc["local", "owned"] and not by.loc["openai", "owned"]
    assert by.loc["local", "cost_usd"] == 0 and by.loc["openai", "cost_usd"] > 0
    assert by.loc["local", "ttft_p50_ms"] < by.loc["openai", "ttft_p50_ms"]
    assert by.loc["anthropic", "availability"] == pytest.approx(40 / 60)
    assert by.loc["openai", "canary_pass_rate"] == 1.0 and by.loc["openai", "canary_exact"]
    week = queries.comparison(session=session, now=NOW, window=WEEK).set_index("target")
    assert set(week["source"]) == {"hour"} and not week.loc["openai", "canary_exact"]


def test_alerts_say_where_when_and_whether_delivered(session: Session, seeded):
    alerts = queries.alert_table(session=session, now=NOW, window=DAY)
    by = alerts.set_index("channel")
    assert by.loc["oncall", "delivered"] == "delivered" and by.loc["oncall", "delay_s"] == pytest.approx(1.0)
    assert by.loc["team-slack", "delivered"] == "not delivered"
    assert by.loc["team-slack", "last_error"] == "HTTP 404 from Slack: no_service"
    assert by.loc["oncall", "title"] == "anthropic: anthropic is DOWN"
    counts = queries.delivery_counts(alerts)
    assert list(counts.itertuples(index=False)) == [("oncall", "delivered", 1), ("team-slack", "not delivered", 1)]
    assert queries.alert_table(session=session, now=NOW - timedelta(days=2), window=HOUR).empty


def test_empty_store_gives_empty_tables(session: Session, config):
    data = queries.overview(session=session, now=NOW)
    assert data.providers.empty and data.open_incidents.empty
    risk = queries.risk_view(session=session, config=config, now=NOW)
    assert not risk.measured and len(risk.features) == 3  # still scored (primaries assumed), and it says so
    assert queries.drill_list(session=session).empty
    assert queries.comparison(session=session, now=NOW, window=DAY).empty
    assert queries.alert_table(session=session, now=NOW, window=DAY).empty
    view = queries.provider_view(session=session, now=NOW, window=DAY, target="openai")
    assert view.summary is None and view.latency["ttft_p50"].isna().all()


def test_helpers():
    assert queries.safe_url("http://user:hunter2@127.0.0.1:8011/v1?key=abc#x") == "http://127.0.0.1:8011/v1"
    assert queries.safe_url("") == "" and queries.safe_url("https://api.openai.com/v1") == "https://api.openai.com/v1"
    assert queries.describe_cause({"rule": "latency", "ttft_ms_p50": 5000.0, "limit": 4000}) == (
        "latency; ttft_ms_p50=5000.0; limit=4000")
    assert queries.describe_cause({"rule": "failures", "kinds": {"overloaded": 3, "server_error": 1}}) == (
        "failures; overloaded ×3, server_error ×1")
    assert [queries.duration_text(s) for s in (None, 12, 75, 3 * 3600 + 120, 2 * 86400 + 3600, -30)] == [
        "", "12s", "1m 15s", "3h 02m", "2d 01h", "-30s"]
    assert queries.fault_text([{"route": "openai", "type": "slow_tokens", "probability": 0.5,
                                "params": {"gap_ms": 400}}, {"type": "reset"}]) == (
        "openai: slow_tokens (p=0.5, gap_ms=400); *: reset")


def test_package_faces_are_sorted():
    import dashboard.charts
    import dashboard.queries

    for module in (dashboard.queries, dashboard.charts):
        assert module.__all__ == sorted(module.__all__)
        assert all(hasattr(module, name) for name in module.__all__)


def test_every_column_the_pages_show_has_a_label_in_words():
    """Each column of the tables the pages show is headed by `dashboard.ui.LABELS` (or is one word),
    so no header falls back to a name with its underscores turned into spaces."""
    from dashboard import ui
    from dashboard.queries import alerts, compare, drills, providers, risk
    from dashboard.queries.overview import INCIDENT_COLUMNS, PROVIDER_COLUMNS

    shown = {*alerts.ALERT_COLUMNS, *compare.COMPARE_COLUMNS, *drills.RUN_COLUMNS, *drills.PHASE_COLUMNS,
             *drills.VERDICT_COLUMNS, *PROVIDER_COLUMNS, *INCIDENT_COLUMNS,
             *providers.VENDOR_COLUMNS, *risk.FEATURE_COLUMNS, *risk.BREAKDOWN_COLUMNS, "seen_calling", "open_posts",
             "fetched_at"}
    hidden = {"start_s", "end_s", "duration_s"}  # the pages hide these
    assert sorted(c for c in shown - hidden if "_" in c and c not in ui.LABELS) == []
    assert all("_" not in ui.label(c) for c in shown)


def test_models_gone_first_then_the_latest_warning_of_each_model(session: Session, seeded):
    from monitor.store.lifecycle import ModelNoticeRow, add_notice

    def notice(key, kind, model, *, days_ago, step=None, **kw):
        add_notice(session=session, row=ModelNoticeRow(
            key=key, kind=kind, provider="anthropic", model=model, at=NOW - timedelta(days=days_ago), step_days=step,
            features=["chat (primary)"], message=f"{model} {kind}", **kw))

    day = (NOW + timedelta(days=10)).date()
    notice("retiring:a:claude-x:30", "retiring", "claude-x", days_ago=20, step=30, retires=day)
    notice("retiring:a:claude-x:7", "retiring", "claude-x", days_ago=3, step=7, retires=day)
    notice("retiring:a:claude-old:30", "retiring", "claude-old", days_ago=45, step=30)  # history: not shown
    notice("vanished:e:claude-y:d", "vanished", "claude-y", days_ago=40, opened_at=NOW - timedelta(days=40))
    notice("vanished:e:claude-z:d", "vanished", "claude-z", days_ago=1, opened_at=NOW - timedelta(days=1),
           closed_at=NOW - timedelta(hours=2))  # back in the listing: no longer shown as gone
    session.commit()
    table = queries.overview(session=session, now=NOW).models
    assert list(table["model"]) == ["claude-y", "claude-x"]
    gone, retiring = table.to_dict("records")
    assert (gone["notice"], gone["features"]) == ("gone from the listing", "chat (primary)")
    assert (retiring["notice"], retiring["what"]) == ("retiring", "claude-x retiring")  # the 7-day step, the latest
    assert retiring["retires"] == day.isoformat()
