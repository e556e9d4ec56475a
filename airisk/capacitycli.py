"""``airisk eval capacity``: the highest request rate a backend holds for a feature, stored beside its quality.

A ramp of the feature's eval cases at fixed, open-loop rates (`chaos.capacity`): the rate grows until a
step fails (p95 over the latency budget, or the pass rate falls), then is bisected to 10%. Each step is
printed as it finishes, then the result, which is stored (`monitor.store.quality.record_capacity`) for the
risk model and the dashboard.

Exit statuses: 0 measured; 1 measured, but under the feature's peak traffic (``features.<name>.rate``);
2 bad input (an unknown feature or backend, no eval set, a bad eval file, no latency budget), one line
each; 130 interrupted (nothing stored).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

# chaos.capacity.step's STEP_S, MIN_REQUESTS and SAMPLE, written out so `airisk --help` does not import the
# search (probes, the store) to show them; a test holds them equal.
STEP_S, MIN_REQUESTS, SAMPLE = 20.0, 30, 30
_POSITIVE = click.FloatRange(min=0, min_open=True, max=1e6)


def _fail(message: str, status: int = 2) -> None:
    click.echo(f"airisk: {message}", err=True)
    sys.exit(status)


@click.command("capacity")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("airisk.yaml"),
              help="airisk.yaml to read (default: ./airisk.yaml); eval paths in it are read from its folder.")
@click.option("--feature", required=True, help="The feature whose eval cases make the traffic.")
@click.option("--backend", required=True, help="The backend to load (a target name, a catalog provider, or local).")
@click.option("--max-rate", type=_POSITIVE, default=None,
              help="Never offer more than this many requests a second (default: twice features.<name>.rate, else 16).")
@click.option("--start", "start_rate", type=_POSITIVE, default=1.0, show_default=True,
              help="The first rate tried, requests a second.")
@click.option("--min-rate", type=_POSITIVE, default=0.1, show_default=True,
              help="Below this rate, give up: the capacity is 0.")
@click.option("--step", "step_s", type=_POSITIVE, default=STEP_S, show_default=True,
              help="Seconds each rate is held (at least --min-requests requests, whichever is longer).")
@click.option("--min-requests", type=click.IntRange(min=1, max=100_000), default=MIN_REQUESTS, show_default=True,
              help="Requests each rate is held for at least.")
@click.option("--sample", type=click.IntRange(min=0, max=10_000), default=SAMPLE, show_default=True,
              help="Answers per step whose checks are run (spread over the step).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per step, then the result, a line each.")
def capacity(config_path: Path, feature: str, backend: str, max_rate: float | None, start_rate: float,
             min_rate: float, step_s: float, min_requests: int, sample: int, as_json: bool) -> None:
    """Find the highest request rate BACKEND holds for FEATURE: p95 within the feature's latency budget
    (total, else first token) and the pass rate of its eval checks held (min_quality, else the latest eval
    run's less 10 points; with neither, latency only, said so). Requests arrive at a fixed rate whether or
    not earlier ones have answered, as real users do. The result is stored for the risk model."""
    from airisk import runtime
    from airisk.cli import _config_or_exit
    from chaos.capacity.run import CapacityError, default_max_rate, figure_of, latest_quality, prepare, store
    from monitor.quality.cases import CaseError
    from monitor.quality.runner import EvalError
    from monitor.store.models import utcnow

    config = _config_or_exit(config_path)
    spec = config.features.get(feature)
    max_rate = max_rate or (default_max_rate(spec) if spec is not None else None)
    if max_rate is not None and min_rate > max_rate:
        _fail(f"--min-rate {min_rate:g} is above --max-rate {max_rate:g}")
    engine = None

    def latest(name: str, backend_name: str):
        nonlocal engine
        engine = _engine()
        return latest_quality(engine, name, backend_name)

    try:
        try:
            setup = prepare(config, feature, backend, base_dir=config_path.resolve().parent, latest=latest)
        except (EvalError, CapacityError) as exc:
            _fail(str(exc))
        except CaseError as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            sys.exit(2)
        _announce(setup, max_rate=max_rate, step_s=step_s, min_requests=min_requests, as_json=as_json)
        began, at = time.perf_counter(), utcnow()
        try:
            found = runtime.run(_search(config, setup, max_rate=max_rate, start=start_rate, min_rate=min_rate,
                                        step_s=step_s, min_requests=min_requests, sample=sample,
                                        on_step=lambda step: _print_step(step, as_json)))
        except KeyboardInterrupt:
            _fail("interrupted: nothing stored", 130)
        seconds = time.perf_counter() - began
        figure = figure_of(setup, found, at)
        row_id = store(engine, figure, duration_s=seconds)
    finally:
        if engine is not None:
            engine.dispose()
    short = spec.rate is not None and found.rate < spec.rate
    _print_result(setup, found, seconds=seconds, row_id=row_id, traffic=spec.rate, as_json=as_json)
    sys.exit(1 if short else 0)


async def _search(config, setup, *, on_step, **settings):
    from chaos.capacity.load import MAX_IN_FLIGHT
    from chaos.capacity.run import find_capacity
    from monitor.quality.runner import make_judge
    from probes import make_client

    # Enough connections for every request the open loop may have in flight: with fewer, requests would
    # queue inside our own pool, out of sight of the backend and of `probes`' timing alike.
    async with make_client(max_connections=MAX_IN_FLIGHT) as client:
        return await find_capacity(setup, client=client, judge=make_judge(config, client), on_step=on_step,
                                   **settings)


def _engine():
    from monitor.store import make_engine, migrate

    engine = make_engine()
    migrate(engine)
    return engine


def _announce(setup, *, max_rate: float, step_s: float, min_requests: int, as_json: bool) -> None:
    target = setup.target
    lines = [f"capacity of {setup.feature} on {target.name}: {setup.criteria.describe()}",
             f"open-loop steps of at least {step_s:g} s and {min_requests} requests, up to {max_rate:g} rps, "
             f"over {len(setup.plan.cases)} cases"]
    if not target.local:
        lines.append(f"note: {target.name} is a hosted backend: every request of the search is billed")
    if setup.plan.skipped:
        lines.append(f"{setup.plan.skipped} HTTP-only case(s) skipped (the product's request: drills send those)")
    for line in lines:
        click.echo(line, err=True)


def _print_step(step, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"step": step.as_dict()}))
        return
    click.echo(f"{step.rate:8.3g} rps  {'held  ' if step.ok else 'failed'}  {step.requests:>4} requests  "
               f"{step.seconds:5.1f} s  {step.why}")


def _print_result(setup, found, *, seconds: float, row_id: int, traffic: float | None, as_json: bool) -> None:
    best = found.best
    if as_json:
        criteria = setup.criteria
        click.echo(json.dumps({"result": {
            "feature": setup.feature, "backend": setup.target.name, "rate_rps": round(found.rate, 4),
            "capped": found.capped, "p95_ms": best.p95_ms if best else None,
            "pass_rate": best.pass_rate if best else None, "budget_ms": criteria.budget_ms, "on": criteria.on,
            "min_pass_rate": criteria.min_pass_rate, "quality_from": criteria.quality_from, "why": found.why,
            "steps": len(found.steps), "seconds": round(seconds, 1), "traffic_rps": traffic, "id": row_id}}))
    else:
        _say_result(setup, found, seconds=seconds, row_id=row_id)
    if traffic is not None and found.rate < traffic:
        click.echo(f"airisk: {found.rate:.3g} rps is under the feature's peak traffic, {traffic:g} rps "
                   f"(features.{setup.feature}.rate): traffic above it goes unserved", err=True)
    elif traffic is not None and not as_json:
        click.echo(f"the feature's peak traffic, {traffic:g} rps, is held")


def _say_result(setup, found, *, seconds: float, row_id: int) -> None:
    best = found.best
    name = f"{setup.feature} on {setup.target.name}"
    if best is None:
        said = f"{name}: no rate held ({found.why})"
    else:
        quality = f", pass rate {best.pass_rate:.0%}" if best.pass_rate is not None else ""
        at_least = "at least " if found.capped else ""
        said = (f"{name}: {at_least}{found.rate:.3g} rps (p95 {best.p95_ms:.0f} ms within the "
                f"{setup.criteria.budget_ms:.0f} ms budget{quality}); {found.why}")
    click.echo(f"{said}; {len(found.steps)} steps in {_duration(seconds)}; stored as capacity #{row_id}")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"
