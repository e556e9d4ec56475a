"""``airisk drill run FILE`` (a chaos drill under load, a release gate) and ``airisk deps``."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _fail(message: str, status: int = 2) -> None:
    click.echo(f"airisk: {message}", err=True)
    sys.exit(status)


@click.group()
def drill() -> None:
    """Rehearse a provider outage against the product's features."""


@drill.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the result as JSON.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write JUnit XML: one test case per feature, failed when it did worse than expected.")
@click.option("--workers", type=int, default=None,
              help="Locust worker processes (0: one process; default: from the file).")
@click.option("--dry-run", is_flag=True, help="Print the plan and stop.")
@click.option("--no-store", is_flag=True, help="Do not keep the result in the monitor's database.")
@click.option("--quiet", is_flag=True, help="No live progress view.")
def drill_run(file: Path, json_path: Path | None, junit_path: Path | None, workers: int | None, dry_run: bool,
              no_store: bool, quiet: bool) -> None:
    """Run the drill in FILE. Exit 0: every feature did as expected; 1: one did worse (or a guard
    aborted); 2: the file or the setup is wrong."""
    from airisk import extras

    if (message := extras.missing_message("airisk drill run", "drills")) is not None:
        _fail(message)
    from rich.console import Console

    from chaos.drill import output
    from chaos.drill.runner import DrillError, Options, check_targets, run_drill
    from chaos.drill.spec import ConfigError, load_drill

    try:
        spec = load_drill(file)
        check_targets(spec)
    except ConfigError as exc:
        _fail(str(exc))
    except DrillError as exc:
        _fail(f"{file}: {exc}")
    console = Console(stderr=True)
    if dry_run:
        _print_plan(spec, console, workers)
        return
    if workers is not None and workers < 0:
        _fail("--workers: must be 0 or more")
    try:
        if quiet:
            result, entries = run_drill(spec, Options(workers=workers, base_dir=file.resolve().parent))
        else:
            with output.LiveView(console, list(spec.features)) as view:
                result, entries = run_drill(spec, Options(workers=workers, live=view.update,
                                                             base_dir=file.resolve().parent))
    except DrillError as exc:
        _fail(f"{file}: {exc}")
    out = Console(width=None if sys.stdout.isatty() else 160)
    out.print(output.summary_table(result))
    out.print(output.phase_table(result))
    if (quality := output.quality_table(result)) is not None:
        out.print(quality)
    if json_path:
        output.write_json(result, json_path)
    if junit_path:
        output.write_junit(result, junit_path)
    if not no_store:
        from monitor.store import make_engine

        engine = make_engine()
        try:
            output.store(result, entries, engine)
        finally:
            engine.dispose()
    for line in output.failures(result):
        click.echo(f"airisk: {line}", err=True)
    sys.exit(0 if result.passed else 1)


def _print_plan(spec, console, workers: int | None) -> None:
    console.print(f"drill [bold]{spec.name}[/]: product {spec.product.base_url}, proxy {spec.proxy.url}"
                  + (" (started, routes to a started emulator)" if spec.proxy.emulator else ""))
    load = spec.load
    console.print(f"load: {load.users} users, spawn {load.spawn_rate:g}/s, wait {load.wait:g}s, "
                  f"workers {load.workers if workers is None else workers}")
    start = 0.0
    for phase in spec.phases:
        faults = "; ".join(f"{f.type} on {f.route or 'every route'}" + (f" p={f.probability:g}" if f.probability < 1
                                                                         else "") for f in phase.faults) or "no faults"
        console.print(f"  {start:6.0f}s  {phase.name:<16} {phase.duration:5.0f}s  {faults}")
        start += phase.duration
    eval_sets = spec.eval_sets()
    for name, f in spec.features.items():
        sends = [f"{f.request.method} {f.request.path}"] if f.request is not None else []
        if (cases := eval_sets.get(name)) is not None:
            sends.append(f"{len(cases.cases)} cases of {f.cases}")
        console.print(f"  feature {name}: {' and '.join(sends)}, expected: {f.outcome.replace('_', ' ')}")
        if (judging := f.judging) is not None:
            skipped = f"; {cases.skipped} cases without http skipped" if cases.skipped else ""
            console.print(f"    answers checked: up to {judging.sample} a phase, min_pass {judging.min_pass:.0%}"
                          + skipped)
    guards = spec.guards
    console.print(f"guards: abort under {guards.min_success_rate:.0%} success for {guards.for_:g}s, "
                  f"or after {guards.max_duration:g}s; fault lease {spec.lease:g}s")


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("airisk.yaml"),
              show_default=True)
@click.option("--since", default="30d", show_default=True, help="How far back the proxy log is read.")
def deps(config_path: Path, since: str) -> None:
    """Features -> providers as the fault proxy saw them, against the features declared in the config.

    Exit 1 when a feature uses an undeclared provider or a declared fallback was never seen answering."""
    from datetime import UTC, datetime, timedelta

    from sqlmodel import Session

    from airisk.cli import _config_or_exit
    from monitor.dependencies import compare
    from monitor.durations import parse_duration
    from monitor.store import make_engine, migrate
    from monitor.store.proxylog import observed_dependencies

    config = _config_or_exit(config_path)
    try:
        window = parse_duration(since)
    except ValueError as exc:
        _fail(f"--since: {exc}")
    engine = make_engine()
    try:
        migrate(engine)
        with Session(engine) as session:
            edges = observed_dependencies(session=session, since=datetime.now(UTC) - timedelta(seconds=window))
    finally:
        engine.dispose()
    report = compare(config.features, config.backend_provider, edges)
    trouble = False
    for d in report:
        seen = ", ".join(f"{r} ({a}/{n} answered)" for r, (n, a) in sorted(d.observed.items())) or "never seen"
        head = d.feature if d.declared_feature else f"{d.feature} (NOT DECLARED in {config_path})"
        click.echo(f"{head}: declared {' -> '.join(d.declared) or '-'}; seen {seen}")
        for route in d.undeclared:
            click.echo(f"  undeclared dependency: {d.feature} calls {route}")
        for route in d.unseen_fallbacks:
            click.echo(f"  fallback never seen answering: {route}")
        trouble |= bool(d.undeclared or d.unseen_fallbacks or not d.declared_feature)
    if not report:
        click.echo("no features declared and none seen in the proxy log")
    sys.exit(1 if trouble else 0)
