"""deploy/grafana/airisk.json: has the fields Grafana's dashboard schema requires, asks its data
source from a variable (so it imports into any Grafana with any Prometheus data source name), and
every query names only metrics `/metrics` exposes: the dashboard reads raw metrics, so it works
without the recording rules loaded."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from tests.deploy.promql_names import label_values_metric, metric_names

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "airisk.json"
GRID_WIDTH = 24  # Grafana's grid is 24 columns wide
PANEL_TYPES = {"stat", "timeseries", "state-timeline", "table", "gauge", "bargauge", "text", "row"}


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    found = [(f"panel {panel['title']!r} target {target['refId']}", target["expr"])
             for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            found.append((f"variable {var['name']!r}", label_values_metric(query)))
    return found


def test_top_level_fields_grafana_requires():
    dashboard = _dashboard()
    assert isinstance(dashboard["title"], str) and dashboard["title"]
    assert isinstance(dashboard["uid"], str) and 0 < len(dashboard["uid"]) <= 40
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert {"from", "to"} <= set(dashboard["time"])
    assert isinstance(dashboard["panels"], list) and dashboard["panels"]
    assert "id" not in dashboard or dashboard["id"] is None, "an exported id would clash on import"


def test_data_source_is_a_variable_every_panel_and_query_uses():
    dashboard = _dashboard()
    sources = [var for var in dashboard["templating"]["list"] if var["type"] == "datasource"]
    assert len(sources) == 1 and sources[0]["query"] == "prometheus"
    ref = {"type": "prometheus", "uid": "${" + sources[0]["name"] + "}"}
    for panel in dashboard["panels"]:
        assert panel["datasource"] == ref, panel["title"]
        assert all(target["datasource"] == ref for target in panel["targets"]), panel["title"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == ref, var["name"]


def test_panels_have_type_targets_and_a_place_on_the_grid():
    panels = _dashboard()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels), "panel ids repeat"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        assert panel["type"] in PANEL_TYPES, f"{panel['title']}: unknown panel type {panel['type']!r}"
        assert panel["targets"] and all(t["refId"] and t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "hwxy"), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0, panel["title"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_every_query_names_only_metrics_metrics_exposes(exposed):
    queries = _queries(_dashboard())
    assert len(queries) >= len(_dashboard()["panels"])
    used = set()
    for where, expr in queries:
        names = metric_names(expr)
        assert names, f"{DASHBOARD.name}: {where} names no metric: {expr!r}"
        unknown = names - set(exposed)
        assert not unknown, f"{DASHBOARD.name}: {where} reads {sorted(unknown)}, which /metrics does not expose"
        used |= names
    # Every family the monitor exposes is on the dashboard somewhere.
    families = {"airisk_target_state", "airisk_probes_total", "airisk_probe_errors_total",
                "airisk_probe_cost_usd_total", "airisk_ttft_seconds_bucket", "airisk_total_seconds_bucket"}
    assert families <= used


def test_every_query_parses_under_promtool(promtool, tmp_path):
    """Prometheus's own parser reads each query: with Grafana's variables given values as Grafana
    would, the queries are written as recording rules and `promtool check rules` checks them."""
    def filled(expr: str) -> str:
        expr = re.sub(r"\$__(rate_)?interval\b", "5m", expr)
        return re.sub(r"\$\{\w+\}|\$\w+", ".*", expr)

    queries = _queries(_dashboard())
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": filled(expr)} for i, (_, expr) in enumerate(queries)]}]}
    (tmp_path / "dashboard-queries.yml").write_text(yaml.safe_dump(rules))
    run = subprocess.run([promtool, "check", "rules", str(tmp_path / "dashboard-queries.yml")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(queries)} rules found" in run.stdout


def test_variables_filter_every_panel_query():
    """A chosen target or region narrows every panel, not only some."""
    for where, expr in _queries(_dashboard()):
        if where.startswith("panel"):
            assert 'target=~"$target"' in expr and 'region=~"$region"' in expr, where
