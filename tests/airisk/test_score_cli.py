"""`airisk score`: the risk table from a real SQLite history, its JSON, and the --max-grade release gate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlmodel import Session

from airisk.cli import main
from monitor.quality.figures import CapacityFigure
from monitor.store import make_engine, migrate, write_results
from monitor.store.drills import write_drill
from monitor.store.models import EvalAnswerRow, EvalRunRow
from monitor.store.proxylog import write_proxy_requests
from monitor.store.quality import record_answers, record_capacity
from tests.monitor.conftest import make_result

CONFIG = """
targets:
  - {provider: anthropic, name: claude}
  - {provider: openai, name: gpt}
local_model: {}
features:
  description:
    chain: [{backend: gpt}]
  chat:
    criticality: high
    latency_budget: {first_token: 2s}
    chain: [{backend: claude}, {backend: local}]
  search:
    chain: [{backend: local}]
"""


@pytest.fixture
def home(tmp_path):
    (tmp_path / "airisk.yaml").write_text(CONFIG)
    return tmp_path


def _store(home, *, probes=(), drills=(), proxy=(), evals=(), capacities=()):
    """``probes``: (target, [(status, ttft ms)]), one a minute up to now; ``evals``: (feature, backend,
    passed, cases) an hour ago; ``capacities``: (feature, backend, requests a second)."""
    engine = make_engine(f"sqlite:///{home / 'airisk.db'}")
    migrate(engine)
    now = datetime.now(UTC)
    with Session(engine) as session:
        for target, statuses in probes:
            start = now - timedelta(minutes=len(statuses) + 1)
            write_results(session=session, region="", results=[
                (make_result(target, start + timedelta(minutes=i), status, ttft=ttft), False)
                for i, (status, ttft) in enumerate(statuses)])
        for feature, faulted, answered_by, ok in drills:
            at = (now - timedelta(hours=1)).timestamp()
            write_drill(session=session, run={"name": "drill", "started_at": at, "ended_at": at + 30, "passed": True,
                                              "phases": []},
                        features=[{"feature": feature, "expected": "survives", "requests": 50, "ok_rate": ok,
                                   "answered_rate": ok, "faulted_routes": faulted, "answered_by": answered_by}])
        write_proxy_requests(session=session, entries=[{"at": now.timestamp() - 60, "route": route, "feature": feature,
                                                        "status": 200} for feature, route in proxy])
        session.commit()
        for feature, backend, passed, cases in evals:
            run = EvalRunRow(feature=feature, started_at=now - timedelta(hours=1), cases=cases, backends=[backend])
            session.add(run)
            session.commit()
            record_answers(session, [EvalAnswerRow(run_id=run.id, feature=feature, backend=backend, case_id=str(i),
                                                   passed=i < passed) for i in range(cases)])
        for feature, backend, rps in capacities:
            record_capacity(session, CapacityFigure(feature, backend, now - timedelta(hours=1), rps))
    engine.dispose()


def _measured(home, **kw):
    # description: gpt 99 % -> 432 min (E). chat: claude 999/1000 within 2 s -> 43.2 min x 2 (high) = D.
    # search: local never failed -> A.
    _store(home, probes=[("gpt", [("up", 300.0)] * 99 + [("down", None)]),
                         ("claude", [("up", 300.0)] * 999 + [("up", 2500.0)]),
                         ("local", [("up", 80.0)] * 500)], **kw)


def _score(home, *args):
    return CliRunner().invoke(main, ["score", "--config", str(home / "airisk.yaml"), *args],
                              env={"AIRISK_HOME": str(home), "AIRISK_DATABASE_URL": "", "COLUMNS": "200"})


def _row(output: str, feature: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(f"│ {feature} "))
    return [cell.strip() for cell in line.strip("│").split("│")]


def test_the_table_is_worst_first_with_the_main_contributor(home):
    _measured(home)
    out = _score(home)
    assert out.exit_code == 0, out.output
    order = [line.split("│")[1].strip() for line in out.stdout.splitlines() if line.startswith("│ ")]
    assert order == ["description", "chat", "search"]
    assert _row(out.stdout, "description") == ["description", "medium", "E", "50", "432", "100%", "gpt (432 min)", "-"]
    chat = _row(out.stdout, "chat")
    assert chat[2:6] == ["D", "63", "43.2", "100%"] and chat[6] == "claude (43.2 min)" and chat[7] == "local"
    assert _row(out.stdout, "search")[2:5] == ["A", "100", "0.00"]
    # local has neither a drill nor an eval: both are named, and what they could give at best.
    assert ("chat: local is unverified and has no measured quality; verified by a drill, at quality 1, it would "
            "bring 43.2 to 0.00 min/month at best") in out.stdout
    assert "chat: fallback local: quality not measured: airisk eval run --feature chat --backend local" in out.stdout


def test_a_drill_that_saw_the_fallback_answer_improves_the_grade(home):
    # 100 of 100 cases passed: quality 0.963 (the interval's lower bound); 0.001 x 0.037 x 43,200 x 2 = 3.2 -> A.
    _measured(home, drills=[("chat", ["anthropic"], ["local"], 1.0)], evals=[("chat", "local", 100, 100)])
    out = _score(home)
    chat = _row(out.stdout, "chat")
    assert chat[2] == "A" and chat[7] == "-"
    assert ("chat: fallback local: quality 0.96 (100 of 100 passed, 95% interval 0.96-1.00); capacity not "
            "measured: counted as unlimited") in out.stdout


def test_a_drilled_fallback_without_an_eval_is_not_counted(home):
    _measured(home, drills=[("chat", ["anthropic"], ["local"], 1.0)])
    out = _score(home)
    chat = _row(out.stdout, "chat")
    assert chat[2] == "D" and chat[7] == "local"
    assert ("chat: local has no measured quality; at quality 1 it would bring 43.2 to 0.00 min/month at best"
            in out.stdout)


def test_quality_capacity_and_traffic_are_shown_and_counted(home):
    (home / "airisk.yaml").write_text(CONFIG.replace("latency_budget: {first_token: 2s}",
                                                     "latency_budget: {first_token: 2s}\n    rate: 3"))
    _measured(home, drills=[("chat", ["anthropic"], ["local"], 1.0)], evals=[("chat", "local", 27, 30)],
              capacities=[("chat", "local", 2.0)])
    out = _score(home)
    assert out.exit_code == 0, out.output
    # claude 0.999; local serves 2/3 of claude's failures at quality 0.7438: 0.001 x (1/3 + 2/3 x 0.2562) x 43,200
    # = 21.8 min, x 2 (high) = 43.6: just worse than C
    assert _row(out.stdout, "chat")[2:5] == ["D", "69", "21.8"]
    line = next(line for line in out.stdout.splitlines() if "fallback local" in line)
    assert "quality 0.74 (27 of 30 passed, 95% interval 0.74-0.97)" in line
    assert "capacity 2 req/s" in line and "against 3 req/s at peak (features.chat.rate): serves 67%" in line
    assert "counted at value 0.74, effectiveness 0.67" in line
    chat = next(f for f in json.loads(_score(home, "--json").stdout)["features"] if f["feature"] == "chat")
    assert chat["peak_rate"] == {"rps": 3.0, "source": "features.chat.rate"} and chat["min_quality"] is None
    local = chat["links"][1]
    assert local["counted"] and local["quality"] == pytest.approx(0.74379, abs=1e-5)
    assert local["measured_quality"]["passed"] == 27 and local["measured_quality"]["judged"] == 30
    assert local["measured_quality"]["interval"] == pytest.approx([0.74379, 0.96540], abs=1e-5)
    assert local["capacity"]["rate_rps"] == 2.0 and local["capacity_share"] == pytest.approx(2 / 3)
    assert local["effectiveness_used"] == pytest.approx(2 / 3) and local["lacks"] == []


def test_below_min_quality_says_what_reaching_it_would_give(home):
    (home / "airisk.yaml").write_text(CONFIG.replace("latency_budget: {first_token: 2s}",
                                                     "latency_budget: {first_token: 2s}\n    min_quality: 0.8"))
    _measured(home, drills=[("chat", ["anthropic"], ["local"], 1.0)], evals=[("chat", "local", 27, 30)])
    out = _score(home)
    assert _row(out.stdout, "chat")[2] == "D" and _row(out.stdout, "chat")[7] == "local"
    # at 0.8: 0.001 x 0.2 x 43,200 = 8.64
    assert "chat: local is below min_quality 0.8; at 0.8 it would bring 43.2 to 8.6 min/month" in out.stdout
    local = json.loads(_score(home, "--json").stdout)["features"][1]["links"][1]
    assert local["lacks"] == ["min_quality"] and local["minutes_at_min_quality"] == pytest.approx(8.64)
    assert "below min_quality 0.8: counted as absent" in local["status"]
    assert _score(home, "--max-grade", "C").exit_code == 1


def test_json_carries_every_term(home):
    _measured(home)
    out = _score(home, "--json")
    assert out.exit_code == 0
    data = json.loads(out.stdout)
    assert data["window_days"] == 30 and data["measured"] is True and data["month_minutes"] == 43_200
    assert [f["feature"] for f in data["features"]] == ["description", "chat", "search"]
    chat = data["features"][1]
    assert chat["grade"] == "D" and chat["minutes_per_month"] == pytest.approx(43.2)
    claude, local = chat["links"]
    assert claude["measured"]["samples"] == 1000 and claude["measured"]["within_budget"] == 999
    assert claude["measured"]["availability_any_latency"] == 1.0 and claude["availability_used"] == 0.999
    assert local["counted"] is False and local["status"].startswith("unverified")
    assert chat["unverified_fallbacks"] == ["local"]


def test_max_grade_fails_naming_each_feature_worse(home):
    _measured(home)
    out = _score(home, "--max-grade", "C")
    assert out.exit_code == 1
    assert "airisk: description grades E, worse than C: 432.0 min/month expected, mostly gpt" in out.stderr
    assert "airisk: chat grades D, worse than C" in out.stderr and "search" not in out.stderr
    assert _score(home, "--max-grade", "e").exit_code == 0


def test_what_if_recomputes_from_the_same_measurements(home):
    _measured(home)
    out = _score(home, "--what-if", "description:add=local", "--what-if", "chat:primary=local")
    assert out.exit_code == 0, out.output
    what_if = out.stdout[out.stdout.index("what if"):]
    assert _row(what_if, "description") == ["description", "local added as a verified fallback (quality not "
                                            "measured: taken as 1)", "432 -> 0.00", "E -> A", "100% -> -"]
    assert _row(what_if, "chat")[1:4] == ["primary moved to local", "43.2 -> 0.00", "D -> A"]
    data = json.loads(_score(home, "--json", "--what-if", "chat:primary=local").stdout)
    (scenario,) = data["what_if"]
    assert scenario["as_if"]["links"][0]["name"] == "local" and scenario["minutes_saved"] == pytest.approx(43.2)


def test_without_any_measurement_it_says_so_and_cannot_pass_a_gate(home):
    out = _score(home)
    assert out.exit_code == 0
    assert "no probe results in the last 30d for any backend" in out.stderr
    gate = _score(home, "--max-grade", "F")
    assert gate.exit_code == 1
    assert ("airisk: chat cannot pass --max-grade F: primary claude is unmeasured (no probe in the window)"
            in gate.stderr)


def test_an_undeclared_feature_fails_the_gate(home):
    _measured(home, proxy=[("reviews", "openai")])
    out = _score(home, "--max-grade", "F")
    assert out.exit_code == 1
    assert "reviews is not declared in" in out.stderr and "seen calling openai" in out.stderr
    assert "NOT DECLARED; seen calling openai" in out.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--window", "soon"], "--window: \"soon\" is not a duration"),
    (["--window", "0d"], "--window: must be longer than 0"),
    (["--what-if", "chat"], "--what-if 'chat': write FEATURE:add=BACKEND or FEATURE:primary=BACKEND"),
    (["--what-if", "nope:add=local"], "what-if: no feature named 'nope'"),
    (["--what-if", "chat:add=lokal"], "what-if: unknown backend 'lokal'"),
])
def test_bad_options_exit_2(home, args, message):
    out = _score(home, *args)
    assert out.exit_code == 2 and message in out.stderr


def test_a_bad_config_exits_2_with_its_problems(home):
    (home / "airisk.yaml").write_text(CONFIG.replace("{backend: local}]\n  search", "{backend: lokal}]\n  search"))
    out = _score(home)
    assert out.exit_code == 2
    assert "features.chat.chain[1].backend: unknown backend 'lokal'" in out.stderr
