"""deploy/prometheus/airisk-rules.yml: valid for Prometheus, correct under `promtool test rules`, and
reading only metrics `/metrics` exposes. The promtool tests skip without promtool, but not under
CI=true (the `promtool` fixture in conftest.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.deploy.conftest import SCRAPE_LABELS
from tests.deploy.promql_names import metric_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "airisk-rules.yml"
RULE_TESTS = Path(__file__).resolve().parent / "airisk-rules.test.yml"
# Series Prometheus makes itself, not the monitor: `up` is the scrape's own result.
PROMETHEUS_SERIES = frozenset({"up"})


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for rule in _rules() if "alert" in rule}


def _run(promtool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_promtool_accepts_the_rules(promtool):
    run = _run(promtool, "check", "rules", str(RULES))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in run.stdout


def test_promtool_unit_tests_pass(promtool):
    run = _run(promtool, "test", "rules", str(RULE_TESTS))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_promtool_unit_tests_fail_when_a_budget_moves(promtool, tmp_path):
    """The unit tests can fail: with the TTFT budget moved from 3 s to 5 s, the series that must fire
    no longer do, and promtool says so."""
    moved = tmp_path / "airisk-rules.yml"
    text = RULES.read_text()
    assert "airisk:ttft_seconds:p95_5m > 3\n" in text
    moved.write_text(text.replace("airisk:ttft_seconds:p95_5m > 3\n", "airisk:ttft_seconds:p95_5m > 5\n"))
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tests["rule_files"] = [str(moved)]
    (tmp_path / "t.yml").write_text(yaml.safe_dump(tests))
    run = _run(promtool, "test", "rules", str(tmp_path / "t.yml"))
    assert run.returncode != 0
    assert "AiriskTtftP95OverBudget" in run.stdout + run.stderr


def test_the_issue_s_rules_are_there():
    records = {rule["record"] for rule in _rules() if "record" in rule}
    assert {"airisk:probe_errors:ratio_rate5m", "airisk:ttft_seconds:p95_5m",
            "airisk:probe_cost_usd:per_hour"} <= records
    assert {"AiriskTargetDown", "AiriskErrorRatioHigh", "AiriskTtftP95OverBudget", "AiriskProbeCostHigh",
            "AiriskMonitorDown"} <= set(_alerts())


def test_every_alert_has_a_severity_and_says_what_happened():
    for name, rule in _alerts().items():
        assert rule.get("labels", {}).get("severity") in {"critical", "warning", "info"}, name
        assert rule.get("annotations", {}).get("summary") and rule["annotations"].get("description"), name


def test_rules_read_only_exposed_metrics_or_recorded_ones(exposed):
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    for rule in _rules():
        unknown = metric_names(rule["expr"]) - set(exposed) - recorded - PROMETHEUS_SERIES
        assert not unknown, f"{RULES.name}: {rule.get('alert') or rule.get('record')} reads {sorted(unknown)}, " \
                            f"which /metrics does not expose"


def test_every_alert_has_a_case_that_fires_and_one_that_must_not():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for name in _alerts():
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in mine), f"{name}: no case where it must fire"
        assert any(not case.get("exp_alerts") for case in mine), f"{name}: no case where it must stay quiet"


def test_unit_test_series_are_named_and_labelled_as_exposed(exposed):
    """The input series are what a scrape of the monitor would store, so the unit tests prove the
    rules against real names and labels, not invented ones."""
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for series in test["input_series"]:
            name, _, labels = series["series"].partition("{")
            label_names = {pair.split("=", 1)[0].strip() for pair in labels.rstrip("}").split(",") if pair.strip()}
            if name in PROMETHEUS_SERIES:
                assert label_names <= SCRAPE_LABELS, series["series"]
                continue
            assert name in exposed, f"{RULE_TESTS.name}: {name} is not exposed by /metrics"
            assert label_names <= exposed[name] | SCRAPE_LABELS, \
                f"{RULE_TESTS.name}: {series['series']} has labels {sorted(label_names - exposed[name])} /metrics lacks"
