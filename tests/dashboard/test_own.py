"""Can we own it?: the verdict (each kind, its edges, properties over figures), the page query over a seeded
store (SQLite and PostgreSQL), the charts, and the page under `AppTest`."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from dashboard import charts, queries
from dashboard.queries.own import STEP_COLUMNS, budget_text, owned_cost
from dashboard.queries.ownable import (
    MORE_CAPACITY,
    NOT_MEASURED,
    NOT_THIS_MODEL,
    OWNABLE,
    VERDICTS,
    Budget,
    needs_text,
    ownability,
)
from monitor.config import parse_config
from monitor.quality.figures import CapacityFigure, QualityFigure
from monitor.store import make_engine, migrate
from monitor.store.proxylog import write_proxy_requests
from tests.dashboard.conftest import NOW
from tests.dashboard.seed import CHAT_CAPACITY_STEPS, OWN_CONFIG, seed, seed_quality
from tests.dashboard.test_app import APP, TIMEOUT, Frozen, env, headers, open_page, texts  # noqa: F401 (env)

AT = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
BUDGET = Budget(first_token_ms=2000.0, total_ms=4000.0)


def figure(passed: int = 28, failed: int = 2, *, backend: str = "local", unjudged: int = 0,
           errors: dict[str, int] | None = None, ttft: float | None = 300.0, total: float | None = 1500.0,
           cost: float | None = None) -> QualityFigure:
    errors = errors or {}
    return QualityFigure(feature="chat", backend=backend, run_id=1, at=AT,
                         cases=passed + failed + unjudged + sum(errors.values()), passed=passed, failed=failed,
                         unjudged=unjudged, errors=errors, ttft_p95_ms=ttft, total_p95_ms=total, cost_usd=cost,
                         local=backend == "local")


def capacity(rate: float) -> CapacityFigure:
    return CapacityFigure(feature="chat", backend="local", at=AT, rate_rps=rate, budget_ms=4000.0)


def judge(quality=None, *, primary=None, cap=None, min_quality=0.7, budget=BUDGET, traffic=5.0):
    return ownability(feature="chat", backend="local", quality=quality, primary=primary, capacity=cap,
                      min_quality=min_quality, budget=budget, traffic_rps=traffic, primary_name="anthropic")


# The verdict, kind by kind.

def test_ownable_now_when_quality_latency_and_capacity_all_hold():
    v = judge(figure(), cap=capacity(6.0))
    assert v.verdict == OWNABLE and v.runs == () and v.capacity_factor is None
    assert v.text == "ownable now: holds 6 requests/s, traffic peaks at 5 requests/s"


def test_capacity_equal_to_traffic_is_enough():
    assert judge(figure(), cap=capacity(5.0), traffic=5.0).verdict == OWNABLE


def test_short_capacity_says_by_how_much():
    v = judge(figure(), cap=capacity(2.0), traffic=5.0)
    assert v.verdict == MORE_CAPACITY and v.capacity_factor == pytest.approx(2.5)
    assert v.reasons == ("needs 2.5× the capacity (holds 2 requests/s, traffic peaks at 5 requests/s)",)


def test_a_capacity_search_that_held_no_rate_needs_more_capacity_without_a_factor_to_show():
    v = judge(figure(), cap=capacity(0.0))
    assert v.verdict == MORE_CAPACITY and math.isinf(v.capacity_factor)
    assert v.reasons == ("needs more capacity: it held none of the rates tried within the budget (traffic peaks at "
                         "5 requests/s)",)


@pytest.mark.parametrize(("factor", "text"), [(2.5, "2.5×"), (2.3, "2.3×"), (2.31, "2.4×"), (1.0001, "1.1×"),
                                              (10.0, "10.0×")])
def test_the_capacity_factor_is_rounded_up_never_down(factor: float, text: str):
    assert needs_text(factor) == f"needs {text} the capacity"


def test_quality_below_min_quality_is_not_with_this_model():
    v = judge(figure(12, 16), cap=capacity(10.0), min_quality=0.8)
    assert v.verdict == NOT_THIS_MODEL
    assert v.reasons == ("quality: at least 27% pass (95% interval), below min_quality 80%",)


def test_the_lower_bound_counts_not_the_pass_rate():
    # 9 of 10 is a 90% pass rate, but its interval reaches down to 60%: not proof of 80%.
    assert judge(figure(9, 1), cap=capacity(10.0), min_quality=0.8).verdict == NOT_THIS_MODEL
    assert judge(figure(90, 10), cap=capacity(10.0), min_quality=0.8).verdict == OWNABLE


def test_a_lower_bound_exactly_at_min_quality_is_enough():
    q = figure(27, 3)
    assert judge(q, cap=capacity(10.0), min_quality=q.lower).verdict == OWNABLE


def test_without_min_quality_the_primary_is_the_bar():
    primary = figure(30, 0, backend="anthropic")
    v = judge(figure(25, 5), primary=primary, cap=capacity(10.0), min_quality=None)
    assert v.verdict == NOT_THIS_MODEL and "below the primary's 89%" in v.text
    assert judge(figure(30, 0), primary=primary, cap=capacity(10.0), min_quality=None).verdict == OWNABLE


def test_without_min_quality_or_a_primary_figure_there_is_no_bar():
    v = judge(figure(), cap=capacity(10.0), min_quality=None, primary=None)
    assert v.verdict == NOT_MEASURED and "set min_quality" in v.text
    assert v.runs == ("airisk eval run --feature chat --backend anthropic",)


@pytest.mark.parametrize(("ttft", "total", "said"), [
    (2500.0, 1500.0, "too slow: time to first token p95 2.5 s, over the 2 s budget (1.2×)"),
    (300.0, 6000.0, "too slow: total time p95 6 s, over the 4 s budget (1.5×)"),
])
def test_latency_over_the_budget_is_not_with_this_model(ttft: float, total: float, said: str):
    v = judge(figure(ttft=ttft, total=total), cap=capacity(10.0))
    assert v.verdict == NOT_THIS_MODEL and v.reasons == (said,)


def test_both_shortfalls_are_named():
    v = judge(figure(5, 25, total=9000.0), cap=capacity(10.0))
    assert v.verdict == NOT_THIS_MODEL
    assert [r.split(":")[0] for r in v.reasons] == ["quality", "too slow"]


def test_a_shortfall_decides_before_anything_missing():
    assert judge(figure(total=9000.0), cap=None, traffic=None).verdict == NOT_THIS_MODEL


def test_no_budget_bounds_no_latency():
    assert judge(figure(ttft=60_000.0, total=90_000.0), cap=capacity(10.0), budget=Budget()).verdict == OWNABLE


@pytest.mark.parametrize(("kwargs", "said", "run"), [
    ({"quality": None}, "no eval run", "airisk eval run --feature chat --backend local"),
    ({"quality": figure(0, 0, errors={"timeout": 3, "server_error": 1})},
     "it answered none of the 4 cases (server_error ×1, timeout ×3)", "airisk eval run --feature chat --backend local"),
    ({"quality": figure(0, 0, unjudged=30)}, "none of its 30 answers could be judged (30 unjudged)",
     "airisk eval run --feature chat --backend local"),
    ({"quality": figure(), "cap": None}, "capacity not measured",
     "airisk eval capacity --feature chat --backend local"),
])
def test_not_measured_says_what_to_run(kwargs: dict, said: str, run: str):
    v = judge(**kwargs)
    assert v.verdict == NOT_MEASURED and said in v.reasons and run in v.runs


def test_unknown_traffic_is_not_measured_and_says_where_to_set_it():
    v = judge(figure(), cap=capacity(10.0), traffic=None)
    assert v.verdict == NOT_MEASURED
    assert v.reasons == ("traffic unknown: set features.chat.rate (peak requests a second), or send the product's "
                         "calls through `airisk proxy --store` to log it",) and v.runs == ()


def test_a_latency_budget_without_a_measured_time_is_not_measured():
    v = judge(figure(ttft=None), cap=capacity(10.0))
    assert v.verdict == NOT_MEASURED and "no time to first token measured against the 2 s budget" in v.reasons


# Properties over figures.

RANK = {OWNABLE: 0, MORE_CAPACITY: 1, NOT_MEASURED: 2, NOT_THIS_MODEL: 3}
times = st.none() | st.floats(min_value=1, max_value=120_000)


@st.composite
def situations(draw):
    judged = draw(st.integers(0, 200))
    q = figure(passed := draw(st.integers(0, judged)), judged - passed, unjudged=draw(st.integers(0, 5)),
               errors=draw(st.dictionaries(st.sampled_from(["timeout", "server_error"]), st.integers(1, 5))),
               ttft=draw(times), total=draw(times))
    pj = draw(st.integers(0, 100))
    primary = draw(st.none() | st.just(figure(pp := draw(st.integers(0, pj)), pj - pp, backend="anthropic")))
    cap = draw(st.none() | st.builds(capacity, st.floats(min_value=0, max_value=1000)))
    budget = Budget(draw(st.none() | st.floats(100, 60_000)), draw(st.none() | st.floats(100, 60_000)))
    return {"quality": draw(st.none() | st.just(q)), "primary": primary, "cap": cap,
            "min_quality": draw(st.none() | st.floats(0, 1)), "budget": budget,
            "traffic": draw(st.none() | st.floats(min_value=0.001, max_value=1000))}


@given(situations())
@settings(max_examples=200, deadline=None)
def test_ownable_now_exactly_when_every_condition_holds(s: dict):
    v = judge(**s)
    assert v.verdict in VERDICTS
    q, cap, budget = s["quality"], s["cap"], s["budget"]
    bar = s["min_quality"] if s["min_quality"] is not None else (
        s["primary"].lower if s["primary"] is not None and s["primary"].judged else None)
    holds = (q is not None and q.judged > 0 and bar is not None and q.lower >= bar
             and all(b is None or (p is not None and p <= b)
                     for p, b in ((q.ttft_p95_ms, budget.first_token_ms), (q.total_p95_ms, budget.total_ms)))
             and cap is not None and s["traffic"] is not None and cap.rate_rps >= s["traffic"])
    assert (v.verdict == OWNABLE) == holds
    if v.verdict == MORE_CAPACITY:
        assert v.capacity_factor > 1 and v.reasons[0].startswith("needs ")
    if v.verdict == NOT_THIS_MODEL:
        assert v.reasons and all(r.startswith(("quality: ", "too slow: ")) for r in v.reasons)
    if v.verdict == NOT_MEASURED:
        assert v.reasons


@given(situations(), st.integers(1, 50))
@settings(max_examples=200, deadline=None)
def test_more_passes_never_make_the_verdict_worse(s: dict, more: int):
    q = s["quality"]
    if q is None or q.failed == 0:
        return
    moved = min(more, q.failed)
    better = figure(q.passed + moved, q.failed - moved, unjudged=q.unjudged, errors=q.errors,
                    ttft=q.ttft_p95_ms, total=q.total_p95_ms)
    assert RANK[judge(**{**s, "quality": better}).verdict] <= RANK[judge(**s).verdict]


@given(situations(), st.floats(min_value=0, max_value=1000))
@settings(max_examples=200, deadline=None)
def test_more_capacity_never_makes_the_verdict_worse(s: dict, extra: float):
    if s["cap"] is None:
        return
    bigger = capacity(s["cap"].rate_rps + extra)
    assert RANK[judge(**{**s, "cap": bigger}).verdict] <= RANK[judge(**s).verdict]


# Costs and budgets in words.

def test_owned_cost_from_capacity_else_one_at_a_time_else_unpriced():
    cost, basis = owned_cost(cost_per_hour=0.5, capacity=capacity(2.0), mean_total_ms=1000.0)
    assert cost == pytest.approx(1000 * 0.5 / 7200) and basis == "machine cost at capacity (2 requests/s)"
    cost, basis = owned_cost(cost_per_hour=0.5, capacity=capacity(0.0), mean_total_ms=1000.0)
    assert cost == pytest.approx(1000 * 0.5 / 3600) and basis == "machine cost one at a time (mean 1000 ms)"
    assert owned_cost(cost_per_hour=None, capacity=capacity(2.0), mean_total_ms=1000.0) == (
        None, "no price: set local_model.cost_per_hour")
    assert owned_cost(cost_per_hour=0.5, capacity=None, mean_total_ms=None) == (None, "not measured")


def test_budget_in_words():
    assert budget_text(BUDGET) == "first token 2 s, total 4 s"
    assert budget_text(Budget(total_ms=3500.0)) == "total 3.5 s"
    assert budget_text(Budget()) == "none"


# The page query over a real store.

@pytest.fixture
def own_config():
    return parse_config(OWN_CONFIG, environ={})


@pytest.fixture
def quality_seeded(session: Session, seeded):
    seed_quality(session, NOW)


def test_own_view_weighs_each_owned_backend_beside_the_primary(session: Session, quality_seeded, own_config):
    view = queries.own_view(session=session, config=own_config, now=NOW)
    rows = view.table.set_index(["feature", "backend"])
    assert list(view.table["feature"] + "·" + view.table["backend"]) == [
        "chat·anthropic", "chat·local", "description·openai", "description·local", "tags·openai", "tags·local",
        "search·openai", "search·local", "summary·openai"]
    assert dict(rows["verdict"][rows["owned"]]) == {
        ("chat", "local"): MORE_CAPACITY, ("description", "local"): NOT_THIS_MODEL,
        ("tags", "local"): NOT_MEASURED, ("search", "local"): OWNABLE}
    assert set(rows["verdict"][~rows["owned"]]) == {""}  # the hosted primaries are the yardstick, not judged
    chat = rows.loc[("chat", "local")]
    # 27 passed, 1 failed, 2 timeouts: the timeouts are not quality failures.
    assert (chat.judged, chat.errors, chat.interval) == (28, "timeout ×2", "82%–99%")
    assert chat.pass_rate == pytest.approx(27 / 28) and chat.lower == pytest.approx(0.8235, abs=1e-3)
    assert chat.why.startswith("needs 2.5× the capacity") and chat.role == "owned fallback"
    assert (chat.capacity_rps, chat.traffic_rps, chat.traffic_from) == (2.0, 5.0, "features.chat.rate")
    assert chat.cost_per_1000 == pytest.approx(1000 * 0.5 / (2.0 * 3600))
    assert chat.cost_from == "machine cost at capacity (2 requests/s)"
    # Hosted: catalog prices x measured tokens, as stored per answer (0.0004 USD each).
    assert rows.loc[("chat", "anthropic"), "cost_per_1000"] == pytest.approx(0.4)
    assert rows.loc[("chat", "anthropic"), "cost_from"] == "catalog prices × measured tokens"
    description = rows.loc[("description", "local")]
    assert description.role == "owned candidate" and description.unjudged == 2
    assert description.why == "quality: at least 27% pass (95% interval), below min_quality 80%"
    # No capacity search: one request at a time, at the eval's mean total time (900 + 20 * (i % 5) ms).
    assert description.cost_from == "machine cost one at a time (mean 940 ms)"
    assert description.cost_per_1000 == pytest.approx(1000 * 0.5 / (3600 * 1000 / 940))
    tags = rows.loc[("tags", "local")]
    assert tags.traffic_from == "traffic unknown" and "traffic unknown" in tags.why
    assert tags.to_run == "airisk eval capacity --feature tags --backend local"
    assert rows.loc[("summary", "openai"), "to_run"] == "set features.summary.eval to a JSONL file of cases"
    assert view.no_owned == ("summary",) and view.no_eval == ("summary",) and view.measured
    assert set(view.capacities) == {("chat", "local"), ("search", "local")}
    chat_steps = view.steps[view.steps["feature"] == "chat"]
    assert list(chat_steps.columns) == list(STEP_COLUMNS) and list(chat_steps["rate"]) == [
        s["rate"] for s in CHAT_CAPACITY_STEPS]
    assert view.budgets["search"] == Budget(None, 3000.0)


def test_without_a_rate_the_proxy_logs_busiest_minute_is_the_traffic(session: Session, quality_seeded, own_config):
    minute = NOW.replace(second=0) - timedelta(hours=2)
    write_proxy_requests(session=session, entries=[
        *({"at": (minute + timedelta(seconds=i % 60)).timestamp(), "route": "anthropic", "feature": "chat",
           "status": 200} for i in range(150)),
        # A drill's own load is made up, not the product's traffic: left out.
        *({"at": (minute + timedelta(minutes=5)).timestamp(), "route": "anthropic", "feature": "chat",
           "status": 200} for _ in range(600))], source="")
    write_proxy_requests(session=session, entries=[
        {"at": (minute + timedelta(minutes=10)).timestamp(), "route": "anthropic", "feature": "chat", "status": 200}
        for _ in range(900)], source="drill:load")
    features = {**own_config.features, "chat": own_config.features["chat"].model_copy(update={"rate": None})}
    rows = queries.own_view(session=session, config=own_config.model_copy(update={"features": features}),
                            now=NOW).table.set_index(["feature", "backend"])
    chat = rows.loc[("chat", "local")]
    assert chat.traffic_rps == pytest.approx(10.0)  # 600 requests in the busiest minute / 60
    busiest = minute + timedelta(minutes=5)
    assert chat.traffic_from == f"proxy log: busiest minute {busiest:%Y-%m-%d %H:%M} UTC, 600 requests"
    assert chat.why.startswith("needs 5.0× the capacity")


def test_own_view_before_any_eval_says_what_to_run(session: Session, own_config):
    view = queries.own_view(session=session, config=own_config, now=NOW)
    assert not view.measured and view.steps.empty and not view.capacities
    owned = view.table[view.table["owned"]]
    assert set(owned["verdict"]) == {NOT_MEASURED} and set(owned["why"]) == {"no eval run in the last 90 days"}
    assert "airisk eval run --feature chat --backend local" in set(owned["to_run"])
    assert queries.own_view(session=session, config=None, now=NOW) is None


def test_runs_older_than_the_risk_model_counts_are_not_shown(session: Session, quality_seeded, own_config):
    later = queries.own_view(session=session, config=own_config, now=NOW + timedelta(days=91))
    assert not later.measured and not later.capacities
    assert set(later.table.query("owned")["why"]) == {"no eval run in the last 90 days"}


def test_owned_cost_needs_the_machine_price(session: Session, quality_seeded, own_config):
    config = own_config.model_copy(update={"local_model": own_config.local_model.model_copy(
        update={"cost_per_hour": None})})
    owned = queries.own_view(session=session, config=config, now=NOW).table.query("owned")
    assert owned["cost_per_1000"].isna().all()
    assert set(owned["cost_from"]) == {"no price: set local_model.cost_per_hour"}


# The charts.

def test_quality_against_cost_draws_each_measured_point_with_its_interval(session: Session, quality_seeded,
                                                                          own_config):
    table = queries.own_view(session=session, config=own_config, now=NOW).table
    fig = charts.quality_vs_cost(table)
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"owned", "outsourced"}
    owned = by_name["owned"]
    assert list(owned.text) == ["chat · local", "description · local", "tags · local", "search · local"]
    i = list(owned.text).index("chat · local")
    assert owned.y[i] == pytest.approx(27 / 28)
    assert owned.y[i] - owned.error_y.arrayminus[i] == pytest.approx(0.8235, abs=1e-3)  # down to the lower bound
    assert owned.marker.color == charts.common.OWNED_COLOR
    assert by_name["outsourced"].marker.color == charts.common.OUTSOURCED_COLOR
    assert "not drawn (no pass rate or no cost): summary · openai" in fig.layout.annotations[0].text


def test_quality_against_cost_with_nothing_measured_says_what_to_run():
    table = pd.DataFrame([{"feature": "chat", "backend": "local", "owned": True, "pass_rate": None,
                           "cost_per_1000": None, "lower": None, "upper": None, "judged": None, "verdict": ""}])
    fig = charts.quality_vs_cost(table)
    assert not fig.data and "airisk eval run" in fig.layout.annotations[0].text


def test_capacity_curve_marks_held_rates_budget_capacity_and_traffic():
    steps = pd.DataFrame([{"feature": "chat", "backend": "local", **s} for s in reversed(CHAT_CAPACITY_STEPS)])
    fig = charts.capacity_curve(steps, budget_ms=4000.0, capacity_rps=2.0, traffic_rps=5.0)
    p95, passed = fig.data
    assert list(p95.x) == [0.5, 1.0, 2.0, 3.0, 4.0] and list(p95.y) == [900.0, 1100.0, 1900.0, 4800.0, 9000.0]
    assert list(passed.y) == [0.93, 0.93, 0.9, 0.9, 0.7]
    assert list(p95.marker.color) == ["#2ca02c"] * 3 + ["#d62728"] * 2
    lines = [(s.type, s.x0, s.y0) for s in fig.layout.shapes]
    assert ("line", 2.0, 0) in lines and ("line", 5.0, 0) in lines
    assert any(s.y0 == 4000.0 and s.y1 == 4000.0 for s in fig.layout.shapes)
    assert {a.text for a in fig.layout.annotations} >= {"budget 4000 ms", "capacity 2/s", "peak traffic 5/s"}


def test_capacity_curve_without_a_search_says_what_to_run():
    fig = charts.capacity_curve(pd.DataFrame(columns=STEP_COLUMNS), budget_ms=None, capacity_rps=None,
                                traffic_rps=None)
    assert not fig.data and "airisk eval capacity" in fig.layout.annotations[0].text


stored_steps = st.lists(st.fixed_dictionaries({
    "rate": st.floats(0, 1e4), "p95_ms": st.none() | st.floats(0, 1e6), "pass_rate": st.none() | st.floats(0, 1),
    "ok": st.none() | st.booleans(), "requests": st.none() | st.integers(0, 10**6),
    "errors": st.none() | st.integers(0, 10**6)}), max_size=12)


@given(stored_steps,
       st.none() | st.floats(1, 1e5), st.none() | st.floats(0, 1e4), st.none() | st.floats(0, 1e4))
@settings(max_examples=40, deadline=None)
def test_capacity_curve_draws_any_stored_search(steps: list[dict], budget, cap, traffic):
    # Steps come back from a JSON column as `airisk eval capacity` wrote them: any value may be missing.
    frame = pd.DataFrame([{"feature": "f", "backend": "b", **s} for s in steps], columns=STEP_COLUMNS)
    fig = charts.capacity_curve(frame, budget_ms=budget, capacity_rps=cap, traffic_rps=traffic)
    assert len(fig.data) == (2 if steps else 0)


# The page.

@pytest.fixture(scope="module")
def own_history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airisk-own")
    url = f"sqlite:///{home / 'airisk.db'}"
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as session:
        seed(session, Frozen.at)
        seed_quality(session, Frozen.at)
    engine.dispose()
    (home / "airisk.yaml").write_text(OWN_CONFIG)
    return {"AIRISK_HOME": str(home), "AIRISK_DATABASE_URL": url, "AIRISK_CONFIG": str(home / "airisk.yaml")}


@pytest.fixture
def own_app(env: pytest.MonkeyPatch, own_history: dict[str, str]) -> AppTest:  # noqa: F811
    for name, value in own_history.items():
        env.setenv(name, value)
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def test_page_gives_each_verdict_with_its_interval(own_app: AppTest):
    at = open_page(own_app, "views/own.py")
    assert at.title[0].value == "Can we own it?"
    lines = [m.value for m in at.markdown]
    assert ("**chat** on **local**: :orange[**ownable with more capacity**], pass rate 96% (95% interval 82%–99%, "
            "n=28). Needs 2.5× the capacity (holds 2 requests/s, traffic peaks at 5 requests/s).") in lines
    assert any(m.startswith("**search** on **local**: :green[**ownable now**]") for m in lines)
    assert any(m.startswith("**description** on **local**: :red[**not with this model**]") and "min_quality 80%" in m
               for m in lines)
    (tags,) = [m for m in lines if m.startswith("**tags** on **local**")]
    assert ":gray[**not measured**]" in tags and "Run `airisk eval capacity --feature tags --backend local`." in tags
    assert any(m.startswith("**summary** has no owned backend") for m in lines)
    table = at.dataframe[0].value.set_index(["feature", "backend"])
    assert table.loc[("chat", "local"), "interval"] == "82%–99%"
    assert len(at.get("plotly_chart")) == 2  # quality against cost, and a capacity curve
    assert at.selectbox(key="own_capacity").value == ("chat", "local")
    at.selectbox(key="own_capacity").set_value(("search", "local")).run()
    assert not at.exception and "hunter2" not in texts(at)


def test_page_tables_are_headed_in_words(own_app: AppTest):
    at = open_page(own_app, "views/own.py")
    (shown,) = [headers(t) for t in at.dataframe]
    assert not [h for h in shown if "_" in h], shown
    assert {"pass rate", "95% interval", "cost per 1,000 requests (USD)", "peak traffic (requests/s)",
            "capacity (requests/s)", "latency budget", "verdict"} <= set(shown)
    assert "lower" not in shown and "upper" not in shown


def test_page_before_any_eval_says_what_to_run(env: pytest.MonkeyPatch, tmp_path: Path):  # noqa: F811
    env.setenv("AIRISK_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    (tmp_path / "airisk.yaml").write_text(OWN_CONFIG)
    env.setenv("AIRISK_CONFIG", str(tmp_path / "airisk.yaml"))
    at = open_page(AppTest.from_file(APP, default_timeout=TIMEOUT), "views/own.py")
    said = texts(at)
    assert "No eval run yet. Run `airisk eval run`" in said
    assert "No capacity search yet. Run `airisk eval capacity --feature F --backend B`" in said
    assert "Run `airisk eval run --feature chat --backend local`." in said


def test_page_without_a_config_says_so(env: pytest.MonkeyPatch, tmp_path: Path):  # noqa: F811
    env.setenv("AIRISK_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    env.chdir(tmp_path)
    at = open_page(AppTest.from_file(APP, default_timeout=TIMEOUT), "views/own.py")
    assert "No features: no config found" in texts(at)
