"""A drill's result, as people and machines read it: a table, JSON, JUnit XML, and the store."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from chaos.drill.judging import QualityStats
from chaos.drill.report import DrillResult, FeatureResult, Stats

_STYLE = {"resilient": "green", "degraded": "yellow", "broken": "red", None: "dim"}


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def summary_table(result: DrillResult) -> Table:
    table = Table(title=f"drill {result.name}: " + ("passed" if result.passed else "FAILED")
                  + (f" (aborted: {result.aborted})" if result.aborted else ""), title_justify="left")
    judged = any(f.during_faults.quality is not None for f in result.features)
    for col in ("feature", "expected", "verdict", "ok", "answered", *(("quality",) if judged else ()), "p50 ms",
                "p95 ms", "answered by", "errors", "recovery"):
        table.add_column(col, justify="right" if col in ("ok", "answered", "quality", "p50 ms", "p95 ms", "recovery")
                         else "left")
    for f in result.features:
        d = f.during_faults
        errors = ", ".join(f"{k} {v}" for k, v in sorted(d.errors.items(), key=lambda kv: -kv[1])[:3]) or "-"
        mark = "" if f.meets else " ✗"
        table.add_row(f.feature, f.expected, f"[{_STYLE[f.verdict]}]{f.verdict or 'no traffic'}[/]{mark}",
                      _rate(d.ok_rate), _rate(d.answered_rate), *((quality_cell(d.quality),) if judged else ()),
                      _ms(d.p50_ms), _ms(d.p95_ms), ", ".join(f.answered_by) or "-", errors,
                      "-" if f.recovery_s is None else f"{f.recovery_s:.1f}s")
    reasons = [f"{f.feature}: {f.reason}" for f in result.features if f.reason]
    if reasons or result.notes:  # sampled or cut to keep the runner's memory bounded: the reader must know
        table.caption = "\n".join([*reasons, *(f"note: {note}" for note in result.notes)])
        table.caption_justify = "left"
    return table


def phase_table(result: DrillResult) -> Table:
    table = Table(title="per phase (ok / degraded / failed, p50 ms)", title_justify="left")
    table.add_column("feature")
    for phase in result.phases:
        table.add_column(phase.name + (" ⚡" if phase.faulted else ""), justify="right")
    for f in result.features:
        table.add_row(f.feature, *(_cell(f.phases[p.name]) for p in result.phases))
    return table


def _cell(s: Stats) -> str:
    return f"{s.ok}/{s.degraded}/{s.failed} {_ms(s.p50_ms)}" if s.requests else "-"


def quality_cell(q: QualityStats | None) -> str:
    """``90% of 20`` (the checked sample's pass rate, and how many were judged), ``unjudged 20``, or ``-``."""
    if q is None or not q.sampled:
        return "-"
    if q.pass_rate is None:
        return f"unjudged {q.unjudged}"
    style = "red" if q.below else "green"
    return f"[{style}]{q.pass_rate:.0%}[/] of {q.judged}" + (f" (+{q.unjudged} unjudged)" if q.unjudged else "")


def quality_table(result: DrillResult) -> Table | None:
    """Per feature with an eval set and phase: the checked sample's pass rate, n, and a failing example."""
    judged = [f for f in result.features if f.during_faults.quality is not None]
    if not judged:
        return None
    table = Table(title="answer quality per phase (checked sample: pass rate of n; a failing example)",
                  title_justify="left")
    table.add_column("feature")
    for phase in result.phases:
        table.add_column(phase.name + (" ⚡" if phase.faulted else ""), max_width=48)
    for f in judged:
        cells = []
        for p in result.phases:
            q = f.phases[p.name].quality
            example = f"\n[dim]{escape(q.failing)[:120]}[/]" if q is not None and q.failing else ""
            cells.append(quality_cell(q) + example)
        table.add_row(f.feature, *cells)
    return table


class LiveView:
    """A progress view refreshed while the drill runs (rich Live on stderr)."""

    def __init__(self, console: Console, features: list[str]) -> None:
        self.console = console
        self.features = features
        self.live = Live(console=console, refresh_per_second=4, transient=True)

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def update(self, progress: dict[str, Any]) -> None:
        table = Table(title=f"phase {progress['index'] + 1}/{progress['phases']} {progress['phase']} · "
                            f"{progress['elapsed']:.0f}s of {progress['total']:.0f}s", title_justify="left")
        for col in ("feature", "requests", "ok", "degraded", "failed"):
            table.add_column(col, justify="left" if col == "feature" else "right")
        counts = progress["counts"]
        for name in self.features:
            n, ok, deg, failed = counts.get(name, (0, 0, 0, 0))
            table.add_row(name, str(n), _rate(ok / n if n else None), _rate(deg / n if n else None),
                          _rate(failed / n if n else None))
        self.live.update(table)


def write_json(result: DrillResult, path: Path) -> None:
    path.write_text(json.dumps(result.to_dict(), indent=2, default=str))


def write_junit(result: DrillResult, path: Path) -> None:
    """One test case per feature: it fails when the feature did worse than expected."""
    failures = sum(not f.meets for f in result.features) if result.aborted is None else len(result.features)
    suite = ET.Element("testsuite", name=f"airisk drill {result.name}", tests=str(len(result.features)),
                       failures=str(failures), time=f"{result.ended_at - result.started_at:.3f}")
    for f in result.features:
        case = ET.SubElement(suite, "testcase", classname=f"airisk.drill.{result.name}", name=f.feature,
                             time=f"{result.ended_at - result.started_at:.3f}")
        if result.aborted is not None:
            ET.SubElement(case, "failure", message=f"drill aborted: {result.aborted}", type="aborted")
        elif not f.meets:
            ET.SubElement(case, "failure", message=_failure(f), type="worse_than_expected").text = _failure(f)
        ET.SubElement(case, "system-out").text = json.dumps(
            {"verdict": f.verdict, "expected": f.expected, "ok_rate": f.during_faults.ok_rate,
             "answered_rate": f.during_faults.answered_rate, "answered_by": f.answered_by,
             "errors": f.during_faults.errors, "recovery_s": f.recovery_s, "reason": f.reason,
             "quality": {name: _quality_json(s.quality) for name, s in f.phases.items() if s.quality is not None}
             | ({"during_faults": _quality_json(f.during_faults.quality)} if f.during_faults.quality else {})})
    if result.notes:
        ET.SubElement(suite, "system-out").text = "\n".join(f"note: {note}" for note in result.notes)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def _quality_json(q: QualityStats) -> dict[str, Any]:
    return {"pass_rate": q.pass_rate, "n": q.judged, "unjudged": q.unjudged, "min_pass": q.min_pass,
            "failing": q.failing}


def _failure(f: FeatureResult) -> str:
    d = f.during_faults
    return (f"{f.feature}: expected to {f.expected.replace('_', ' ')}, was {f.verdict or 'not exercised'} "
            f"(full answers {_rate(d.ok_rate)}, any answer {_rate(d.answered_rate)} while the faults were in force"
            + (f"; {f.reason}" if f.reason else "") + ")")


def failures(result: DrillResult) -> list[str]:
    out = [f"drill aborted: {result.aborted}"] if result.aborted else []
    return out + [_failure(f) for f in result.features if not f.meets]


def store(result: DrillResult, entries: list[dict[str, Any]], engine) -> int:
    """Keeps the drill (and its proxy log, for dependency discovery) in the monitor's database."""
    from sqlmodel import Session

    from monitor.store import migrate
    from monitor.store.drills import write_drill
    from monitor.store.proxylog import write_proxy_requests

    migrate(engine)
    faulted = sorted({fault.get("route") or "*" for p in result.phases for fault in p.faults})
    data = result.to_dict()
    features = []
    for f, raw in zip(result.features, data["features"], strict=True):
        d = f.during_faults
        features.append({
            "feature": f.feature, "expected": f.expected, "verdict": f.verdict, "meets": f.meets,
            "requests": d.requests, "ok_rate": d.ok_rate, "answered_rate": d.answered_rate, "p50_ms": d.p50_ms,
            "p95_ms": d.p95_ms, "recovery_s": f.recovery_s, "faulted_routes": faulted, "answered_by": f.answered_by,
            "backends": d.backends, "phases": raw["phases"]})
    with Session(engine) as session:
        run_id = write_drill(session=session, run={**data, "phases": data["phases"]}, features=features)
        write_proxy_requests(session=session, entries=entries, source=f"drill:{result.name}:{run_id}")
        session.commit()
    return run_id
