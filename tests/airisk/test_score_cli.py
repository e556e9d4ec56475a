"""`airisk score`: the risk table from a real SQLite history, its JSON, and the --max-grade release gate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlmodel import Session

from airisk.cli import main
from monitor.store import make_engine, migrate, write_results
from monitor.store.drills import write_drill
from monitor.store.proxylog import write_proxy_requests
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


def _store(home, *, probes=(), drills=(), proxy=()):
    """``probes``: (target, [(status, ttft ms)]), one a minute up to now."""
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
    assert "chat: local is unverified; verified by a drill it would bring 43.2 to 0.00 min/month" in out.stdout


def test_a_drill_that_saw_the_fallback_answer_improves_the_grade(home):
    _measured(home, drills=[("chat", ["anthropic"], ["local"], 1.0)])
    chat = _row(_score(home).stdout, "chat")
    assert chat[2] == "A" and chat[7] == "-"


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
    assert _row(what_if, "description") == ["description", "local added as a verified fallback", "432 -> 0.00",
                                            "E -> A", "100% -> -"]
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
