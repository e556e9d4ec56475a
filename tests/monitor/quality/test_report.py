"""The eval report: pass rates with their intervals, errors apart, latency against the budget, and the
three views (table, JSON lines, JUnit) agreeing; JUnit stays valid XML whatever an answer holds."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from monitor.config import parse_config
from monitor.quality import report
from monitor.quality.figures import QualityFigure

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CONFIG = parse_config("""
targets: [{provider: openai, name: gpt}]
features:
  chat:
    chain: [{backend: gpt}, {backend: local}]
    latency_budget: {first_token: 1s, total: 3s}
    min_quality: 0.8
  tags:
    chain: [{backend: gpt}]
""")


def _figure(backend="gpt", feature="chat", *, passed=25, failed=5, **kw) -> QualityFigure:
    kw.setdefault("cases", passed + failed + kw.get("unjudged", 0) + sum(kw.get("errors", {}).values()))
    return QualityFigure(feature=feature, backend=backend, run_id=3, at=AT, passed=passed, failed=failed, **kw)


def test_pass_rate_reads_as_rate_interval_and_judged_count():
    assert report.pass_rate(_figure(passed=25, failed=5)) == "83% [66-93%] of 30"
    assert report.pass_rate(_figure(passed=0, failed=0, unjudged=4)) == "nothing judged"


def test_lines_carry_the_features_budget_and_min_quality():
    good = _figure(passed=30, failed=0, ttft_p95_ms=800.0, total_p95_ms=3500.0)
    (line,) = report.lines([good], CONFIG.features)
    assert (line.first_token_budget_ms, line.total_budget_ms, line.min_quality) == (1000.0, 3000.0, 0.8)
    assert (line.ttft_over, line.total_over) == (False, True)
    assert line.meets is True  # 30/30: lower bound 0.886
    (bad,) = report.lines([_figure(passed=25, failed=5)], CONFIG.features)
    assert bad.meets is False  # 25/30 is 83%, but the lower bound, 66%, is what counts
    (unset,) = report.lines([_figure(feature="tags")], CONFIG.features)
    assert (unset.meets, unset.ttft_over, unset.first_token_budget_ms) == (None, None, None)
    assert report.unmet([line, bad, unset]) == [
        "chat on gpt: pass rate 83% [66-93%] of 30, lower bound 66% under min_quality 80%"]


def test_json_lines_hold_every_field():
    fig = _figure(unjudged=2, errors={"overloaded": 3, "auth": 1}, ttft_p50_ms=200.0, ttft_p95_ms=1200.0,
                  total_p50_ms=900.0, total_p95_ms=2000.0, input_tokens=300, output_tokens=900, cost_usd=0.02,
                  local=True)
    lines = report.lines([fig], CONFIG.features, {("chat", "gpt"): [("c7", "missing 'refund'")]})
    (obj,) = [json.loads(text) for text in report.json_lines(lines).splitlines()]
    lo, hi = fig.interval
    assert obj == {
        "feature": "chat", "backend": "gpt", "run_id": 3, "at": AT.isoformat(), "local": True, "cases": 36,
        "judged": 30, "passed": 25, "failed": 5, "unjudged": 2, "errors": {"auth": 1, "overloaded": 3},
        "error_count": 4, "pass_rate": 25 / 30, "interval": [lo, hi], "lower": lo, "min_quality": 0.8,
        "meets_min_quality": False, "ttft_p50_ms": 200.0, "ttft_p95_ms": 1200.0, "total_p50_ms": 900.0,
        "total_p95_ms": 2000.0, "first_token_budget_ms": 1000.0, "total_budget_ms": 3000.0,
        "ttft_over_budget": True, "total_over_budget": False, "input_tokens": 300, "output_tokens": 900,
        "cost_usd": 0.02, "cost_per_1000_usd": pytest.approx(1000 * 0.02 / 32),
        "failures": [{"case": "c7", "reason": "missing 'refund'"}],
    }


def test_the_table_shows_interval_errors_budget_and_cost():
    figs = [_figure(errors={"overloaded": 3}, ttft_p50_ms=300.0, ttft_p95_ms=1500.0, total_p50_ms=900.0,
                    total_p95_ms=2000.0, input_tokens=1200, output_tokens=3400, cost_usd=0.0123),
            _figure("local", passed=30, failed=0, local=True, cost_usd=None),
            _figure("cheap", cost_usd=0.00002), _figure("owned", cost_usd=0.0)]
    console = Console(width=250, record=True)
    console.print(report.table(report.lines(figs, CONFIG.features)))
    text = console.export_text()
    gpt = next(line for line in text.splitlines() if "│ gpt " in line)
    assert "83% [66-93%] of 30 (min 80%)" in gpt and "3 overloaded" in gpt
    assert "300ms / 1.50s (budget 1.00s, OVER)" in gpt and "900ms / 2.00s (budget 3.00s)" in gpt
    assert "1,200 / 3,400" in gpt and "$0.0123" in gpt and "$0.4100" in gpt  # 0.0123 / 30 answered x 1000
    local = next(line for line in text.splitlines() if "local (owned)" in line)
    assert "100% [89-100%] of 30 (min 80%)" in local and "unpriced" in local
    cheap = next(line for line in text.splitlines() if "│ cheap " in line)
    assert "<$0.0001" in cheap  # never shown as free
    owned = next(line for line in text.splitlines() if "│ owned " in line)
    assert "$0 " in owned


def test_junit_is_a_suite_per_feature_failing_backends_under_min_quality(tmp_path):
    failures = {("chat", "gpt"): [(f"c{i}", f"missing 'x{i}'") for i in range(25)]}
    lines = report.lines([_figure(passed=5, failed=25, errors={"overloaded": 2}),
                          _figure("local", passed=30, failed=0), _figure(feature="tags", passed=1, failed=9)],
                         CONFIG.features, failures)
    path = tmp_path / "eval.xml"
    report.write_junit(lines, path)
    root = ET.parse(path).getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"airisk eval chat", "airisk eval tags"}
    chat = suites["airisk eval chat"]
    assert (chat.get("tests"), chat.get("failures")) == ("2", "1")
    gpt, local = chat.findall("testcase")
    assert (gpt.get("name"), local.get("name")) == ("gpt", "local")
    assert local.find("failure") is None
    failure = gpt.find("failure")
    assert failure.get("message").startswith("chat on gpt: pass rate 17% [7-34%] of 30")
    text = failure.text
    assert "c0: missing 'x0'" in text and "c19: missing 'x19'" in text and "c20:" not in text
    assert "... and 5 more" in text and "2 overloaded" in text
    props = {p.get("name"): p.get("value") for p in gpt.iter("property")}
    assert json.loads(props["passed"]) == 5 and json.loads(props["errors"]) == {"overloaded": 2}
    assert json.loads(props["min_quality"]) == 0.8 and props["backend"] == "gpt"
    tags = suites["airisk eval tags"]  # no min_quality: measured, never failed
    assert tags.get("failures") == "0" and tags.find("testcase/failure") is None


@given(case=st.text(max_size=40), reason=st.text(max_size=200), backend=st.text(min_size=1, max_size=20))
def test_junit_is_valid_xml_whatever_the_answers_hold(tmp_path_factory, case, reason, backend):
    path = tmp_path_factory.mktemp("junit") / "eval.xml"
    lines = report.lines([_figure(backend, passed=1, failed=9)], CONFIG.features, {("chat", backend): [(case, reason)]})
    report.write_junit(lines, path)
    root = ET.parse(path).getroot()  # raises on anything XML 1.0 cannot hold
    assert root.find("testsuite/testcase/failure") is not None
    assert json.loads(report.json_lines(lines))["failures"][0]["reason"] == reason
