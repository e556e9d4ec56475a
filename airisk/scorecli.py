"""``airisk score``: each feature's expected AI-caused downtime, worst first; a release gate with ``--max-grade``."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import click

_GRADE_STYLE = {"A": "green", "B": "green", "C": "yellow", "D": "yellow", "E": "red", "F": "bold red"}


def _fail(message: str) -> None:
    click.echo(f"airisk: {message}", err=True)
    sys.exit(2)


def _window(option: str, text: str) -> timedelta:
    from monitor.durations import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        _fail(f"{option}: {exc}")
    if seconds <= 0:
        _fail(f"{option}: must be longer than 0")
    return timedelta(seconds=seconds)


def _what_if(text: str):
    from monitor.risk import WhatIf

    feature, sep, change = text.partition(":")
    key, eq, backend = change.partition("=")
    if not (sep and eq and feature and backend) or key not in ("add", "primary"):
        _fail(f"--what-if {text!r}: write FEATURE:add=BACKEND or FEATURE:primary=BACKEND (e.g. chat:primary=local)")
    if key == "add":
        return WhatIf(feature, add_fallback=backend)
    return WhatIf(feature, primary=backend)


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("airisk.yaml"),
              show_default=True)
@click.option("--window", default="30d", show_default=True,
              help="History to measure over; a shorter history is used as it is, and the table says so.")
@click.option("--json", "as_json", is_flag=True, help="The full breakdown as JSON: every term of every feature.")
@click.option("--max-grade", type=click.Choice(list("ABCDEF"), case_sensitive=False),
              help="Release gate: exit 1 naming each feature graded worse, each whose primary is unmeasured and "
                   "each seen in the proxy log but not declared.")
@click.option("--what-if", "what_ifs", multiple=True, metavar="FEATURE:add=BACKEND|FEATURE:primary=BACKEND",
              help="Recompute FEATURE from the same measurements as if BACKEND were a verified fallback (add=), "
                   "or its primary (primary=local: moved to the local model). Repeatable.")
@click.option("--verified-within", default="90d", show_default=True,
              help="Drills, eval runs and capacity searches older than this no longer count.")
@click.option("--retire-horizon", metavar="DURATION",
              help="Release gate: exit 1 naming each feature whose primary model retires within this (e.g. 30d), "
                   "or has left its provider's listing; dates from the targets' retires:, the monitor's lifecycle "
                   "notices and the dates airisk ships.")
def score(config_path: Path, window: str, as_json: bool, max_grade: str | None, what_ifs: tuple[str, ...],
          verified_within: str, retire_horizon: str | None) -> None:
    """Each feature's expected AI-caused downtime minutes a month, its grade (A-F) and where the minutes come from.

    Measured from the probes' history (availability within each feature's latency budget), with
    fallbacks counted only where a drill saw them answer, and an AI fallback only as far as its measured
    quality (airisk eval run) and capacity (airisk eval capacity) go. Exit 0; with --max-grade or
    --retire-horizon, 1 when a feature fails the gate; 2 for a bad config or option. docs/RISK_MODEL.md explains
    every term.
    """
    from sqlmodel import Session

    from airisk.cli import _config_or_exit
    from monitor.risk import RiskError, score_features
    from monitor.store import make_engine, migrate

    config = _config_or_exit(config_path)
    span = _window("--window", window)
    verify = _window("--verified-within", verified_within)
    scenarios = [_what_if(w) for w in what_ifs]
    horizon = _window("--retire-horizon", retire_horizon) if retire_horizon is not None else None
    engine = make_engine()
    retiring: list[str] = []
    try:
        migrate(engine)
        with Session(engine) as session:
            report = score_features(config=config, session=session, window=span, verified_within=verify,
                                    what_ifs=scenarios)
            if horizon is not None:
                retiring = _retire_gate(config, session, horizon, retire_horizon)
    except RiskError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    failures = _gate(report, max_grade.upper(), config_path) if max_grade else []
    if as_json:
        data = report.to_dict()
        if max_grade:
            data["gate"] = {"max_grade": max_grade.upper(), "failures": failures}
        if horizon is not None:
            data["retire_gate"] = {"horizon": retire_horizon, "failures": retiring}
        click.echo(json.dumps(data, indent=2))
    else:
        _print(report, config_path, window)
    if not config.features:
        click.echo(f"airisk: no features declared in {config_path}: add a features: section to have them scored",
                   err=True)
    elif not report.measured:
        click.echo(f"airisk: no probe results in the last {window} for any backend: every primary is unmeasured "
                   f"and assumed 99.5% (run `airisk monitor` to measure them)", err=True)
    for line in failures + retiring:
        click.echo(f"airisk: {line}", err=True)
    sys.exit(1 if failures or retiring else 0)


def _retire_gate(config, session, horizon: timedelta, text: str) -> list[str]:
    """One line per feature whose primary model retires within ``horizon`` (or has left its listing)."""
    from datetime import UTC, datetime

    from monitor.lifecycle import retiring_primaries

    today = datetime.now(UTC).date()
    found = retiring_primaries(config, session=session, today=today, within_days=horizon.total_seconds() / 86400)
    return [f"{r.line(today)}: within --retire-horizon {text}" for r in found]


def _gate(report, max_grade: str, config_path: Path) -> list[str]:
    out = []
    for f in report.features:
        if f.worse_than(max_grade):
            out.append(f"{f.feature} grades {f.grade}, worse than {max_grade}: {f.minutes:.1f} min/month expected"
                       + (f", mostly {f.main_contributor}" if f.main_contributor else ""))
        out += [f"{f.feature} cannot pass --max-grade {max_grade}: {why}" for why in f.gate_blockers]
    out += [f"{name} is not declared in {config_path} but was seen calling {', '.join(routes)}: declare it to have "
            f"it scored" for name, routes in sorted(report.undeclared_features.items())]
    return out


def _print(report, config_path: Path, window: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze into 80 columns
        console = Console(width=200)
    table = Table(title=f"feature risk over the last {window} ({config_path}), worst first", title_justify="left")
    for col in ("feature", "criticality", "grade", "score", "min/month", "outsourced", "main contributor",
                "unverified fallbacks"):
        table.add_column(col, justify="right" if col in ("score", "min/month", "outsourced") else "left")
    for f in report.features:
        table.add_row(f.feature, f.criticality, f"[{_GRADE_STYLE[f.grade]}]{f.grade}[/]", f"{f.score:.0f}",
                      _minutes(f.minutes), _share(f),
                      _contributor(f), ", ".join(f.unverified) or "-")
    for name, routes in sorted(report.undeclared_features.items()):
        table.add_row(name, "-", "[bold red]?[/]", "-", "-", "-", f"NOT DECLARED; seen calling {', '.join(routes)}",
                      "-")
    console.print(table)
    for f in report.features:
        for note in f.notes:
            console.print(f"  {f.feature}: {note}", highlight=False)
        for line in _proof_lines(f):  # one line each, unwrapped: read by people and by grep
            console.print(f"  {f.feature}: {line}", highlight=False, soft_wrap=True)
    if report.what_ifs:
        what = Table(title="what if", title_justify="left")
        for col in ("feature", "change", "min/month", "grade", "outsourced"):
            what.add_column(col)
        for before, after in report.what_ifs:
            what.add_row(before.feature, after.scenario, f"{_minutes(before.minutes)} -> {_minutes(after.minutes)}",
                         f"{before.grade} -> {after.grade}",
                         f"{_share(before)} -> {_share(after)}")
        console.print(what)
    console.print("Minutes a 30-day month; a fallback counts only once a drill saw it answer, an AI fallback only as "
                  "far as its measured quality and capacity go; --json shows every term (docs/RISK_MODEL.md).",
                  style="dim", highlight=False)


def _proof_lines(f) -> list[str]:
    """Per AI backend: its measured quality and capacity against the feature's peak traffic, what it counts
    as; per fallback that does not count: what fixing it would give."""
    from monitor.risk.proven import describe_quality

    out = []
    for lr in f.links:
        link = lr.link
        if link.kind == "backend" and (lr.role == "fallback" or link.measured_quality is not None):
            terms = [] if lr.role == "primary" else [_quality_term(f.feature, link, describe_quality)]
            terms += [*lr.notes]
            if lr.role == "fallback" and lr.counted:
                terms.append(f"counted at value {lr.value:.2f}, effectiveness {lr.effectiveness:.2f}")
            out.append(f"{lr.role} {link.label}: " + "; ".join(terms))
        if lr.minutes_if_verified is not None:
            what, fix = {("drill",): ("is unverified", "verified by a drill"),
                         ("quality",): ("has no measured quality", "at quality 1")}.get(
                lr.lacks, ("is unverified and has no measured quality", "verified by a drill, at quality 1,"))
            best = "" if lr.lacks == ("drill",) else " at best"
            out.append(f"{link.label} {what}; {fix} it would bring {_minutes(f.minutes)} to "
                       f"{_minutes(lr.minutes_if_verified)} min/month{best}")
        if lr.minutes_at_min_quality is not None:
            drill = " and verified by a drill" if "drill" in lr.lacks else ""
            out.append(f"{link.label} is below min_quality {f.min_quality:g}; at {f.min_quality:g}{drill} it would "
                       f"bring {_minutes(f.minutes)} to {_minutes(lr.minutes_at_min_quality)} min/month")
    return out


def _quality_term(feature: str, link, describe) -> str:
    q = link.measured_quality
    if link.assumed_quality is not None:
        return f"quality {link.assumed_quality:.2f} assumed" + (f" (measured: {describe(q)})" if q else "")
    if q is None or q.judged == 0:
        return f"quality not measured: airisk eval run --feature {feature} --backend {link.name}"
    return describe(q)


def _contributor(f) -> str:
    main = f.main_link
    return "-" if main is None else f"{main.link.label} ({_minutes(main.minutes)} min)"


def _share(f) -> str:
    return f"{f.outsourced_share:.0%}" if f.minutes > 0 else "-"


def _minutes(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 0.1 else f"{value:.2f}"
