"""``airisk eval run`` (each feature's eval set against its backends: pass rates, latency, cost) and
``airisk eval reference`` (the primary's answers written into the eval file as references).

Exit statuses: 0 good; 1 a ``min_quality`` not met (run), or some references could not be made
(reference); 2 bad input (a bad eval file prints its ``file:line: field: problem`` lines; an unknown
feature or backend lists the known ones).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import click

_CONFIG_HELP = "airisk.yaml to read (default: ./airisk.yaml); eval paths in it are read from its folder."


def _fail(message: str, status: int = 2) -> None:
    click.echo(f"airisk: {message}", err=True)
    sys.exit(status)


_LAZY = {"capacity": "airisk.capacitycli", "export": "airisk.capturecli"}  # command -> the module defining it


class _EvalGroup(click.Group):
    """The ``eval`` commands; ``capacity`` and ``export`` (defined elsewhere, importing more) are loaded only
    when asked for, so ``airisk --help`` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in _LAZY:
            import importlib

            try:
                command = getattr(importlib.import_module(_LAZY[name]), name)
            except ImportError:  # not in this build: the command is absent, not broken
                return None
        return command


@click.group("eval", cls=_EvalGroup)
def eval_group() -> None:
    """Answer quality: does each backend do each feature's job, not merely answer with a 200?"""


@eval_group.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("airisk.yaml"),
              help=_CONFIG_HELP)
@click.option("--feature", "features", multiple=True,
              help="Only this feature (repeatable; default: every feature with an eval set).")
@click.option("--backend", "backends", multiple=True,
              help="Only this backend (repeatable; default: the chain's AI backends and the candidates).")
@click.option("--cases", "limit", type=click.IntRange(min=1),
              help="Only the first N cases (with messages) of each eval set, in the file's order.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per feature and backend, a line each.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write JUnit XML: a suite per feature, a case per backend, failed under min_quality.")
def eval_run(config_path: Path, features: tuple[str, ...], backends: tuple[str, ...], limit: int | None,
             as_json: bool, junit_path: Path | None) -> None:
    """Run each feature's eval set against its backends; store every answer; print pass rates (95% Wilson
    interval), errors by kind, TTFT and total p50/p95 against the latency budget, tokens and cost.

    An interrupted run (Ctrl-C) is resumed by running the same command again. Exit 1 when a backend's
    pass rate (its interval's lower bound) is under its feature's min_quality."""
    from airisk import runtime
    from monitor.quality import report
    from monitor.quality.runner import run_plans

    config, plans = _plans(config_path, features, backends, limit)
    for plan in plans:
        if plan.skipped:
            click.echo(f"{plan.feature}: {plan.skipped} case(s) without messages (the product's HTTP request "
                       "only) skipped: drills send those", err=True)
    plans = [p for p in plans if p.cases]
    if not plans:
        _fail("no case to run: every eval set chosen holds only HTTP cases")
    engine = _engine()
    bar = _Bar(enabled=not as_json and sys.stderr.isatty())
    try:
        with bar:
            outcomes = runtime.run(run_plans(config, plans, engine=engine, progress=bar))
    except KeyboardInterrupt:
        _fail("interrupted: the answers so far are stored; run the same command again to resume", 130)
    finally:
        engine.dispose()
    figures, failures = [], {}
    for outcome in outcomes:
        for target in outcome.plan.targets:
            if target.name in outcome.figures:
                figures.append(outcome.figures[target.name])
                failures[(outcome.plan.feature, target.name)] = outcome.failures.get(target.name, [])
    lines = report.lines(figures, config.features, failures)
    if as_json:
        click.echo(report.json_lines(lines), nl=False)
    else:
        from rich.console import Console

        Console(width=None if sys.stdout.isatty() else 200).print(report.table(lines))
    if junit_path is not None:
        report.write_junit(lines, junit_path)
    unmet = report.unmet(lines)
    for sentence in unmet:
        click.echo(f"airisk: {sentence}", err=True)
    sys.exit(1 if unmet else 0)


@eval_group.command("reference")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("airisk.yaml"),
              help=_CONFIG_HELP)
@click.option("--feature", required=True, help="The feature whose eval set gets references.")
@click.option("--backend", default=None, help="The backend whose answers become references (default: the primary).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here (default: the eval file itself, replaced atomically, the old one kept as .bak).")
@click.option("--force", is_flag=True, help="Replace references the cases already have.")
def eval_reference(config_path: Path, feature: str, backend: str | None, out_path: Path | None, force: bool) -> None:
    """Run the cases against the primary and write its answers into the eval file as each case's reference,
    changing nothing else on any line. Exit 1 when some answers failed (those cases keep no reference)."""
    from airisk import runtime

    config = _config(config_path)
    if feature in config.features and backend is None:
        backend = config.features[feature].chain[0].backend
    _, (plan,) = _plans(config_path, (feature,), (backend,) if backend else (), None, config=config)
    path = Path(plan.cases_file)
    try:
        refs = runtime.run(_collect(config, plan, force))
    except KeyboardInterrupt:
        _fail(f"interrupted: nothing written to {out_path or path}", 130)
    target = out_path or path
    said = []
    if refs.texts:
        _write_references(path, target, plan, refs.texts, backup=out_path is None)
        said.append(f"{len(refs.texts)} reference(s) from {backend} written to {target}")
        if out_path is None:
            said.append(f"the old file kept as {path.name}.bak")
    else:
        said.append(f"no reference written ({target} left as it was)")
    if refs.kept:
        said.append(f"{refs.kept} kept (already had one; --force replaces them)")
    if plan.skipped:
        said.append(f"{plan.skipped} HTTP-only case(s) skipped")
    click.echo("; ".join(said), err=True)
    from monitor.store.quality import storable

    for case_id, why in sorted(refs.failed.items()):
        click.echo(f"airisk: {storable(case_id)}: no reference ({why})", err=True)  # an id may hold a lone surrogate
    if refs.failed:
        click.echo(f"airisk: {len(refs.failed)} case(s) left without a reference", err=True)
    sys.exit(1 if refs.failed else 0)


def _write_references(path: Path, target: Path, plan, texts: dict[int, str], *, backup: bool) -> None:
    """The eval file at ``path`` with ``texts`` as references, written to ``target``; exit 2 and nothing
    written when the file changed meanwhile or would not read back as written."""
    from monitor.quality.cases import CaseError, parse_cases
    from monitor.quality.reference import LineError, with_references, write_atomically

    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != plan.cases_hash:
        _fail(f"{path}: changed while the references were made; nothing written")
    try:
        new = with_references(raw, texts)
        cases = parse_cases(new, source=str(target))
    except (LineError, CaseError, UnicodeDecodeError) as exc:  # a defect here: never write a file that breaks
        _fail(f"{path}: the references could not be written in place ({str(exc)[:200]}); nothing written")
    got = {c.source.rsplit(":", 1)[1]: c.reference for c in cases}
    if any(got.get(str(n)) != text for n, text in texts.items()):
        _fail(f"{path}: the references did not read back as written; nothing written")
    write_atomically(target, new, backup=backup)


async def _collect(config, plan, force: bool):
    from monitor.quality.reference import collect
    from probes import make_client

    async with make_client() as client:
        return await collect(plan, plan.targets[0], client=client, concurrency=config.quality.concurrency,
                             force=force)


def _config(config_path: Path):
    from airisk.cli import _config_or_exit

    return _config_or_exit(config_path)


def _plans(config_path: Path, features: tuple[str, ...], backends: tuple[str, ...], limit: int | None, *,
           config=None):
    """The config and a plan per feature, or the problems on stderr and exit 2."""
    from monitor.quality.cases import CaseError
    from monitor.quality.runner import EvalError, plan_feature

    config = config or _config(config_path)
    names = list(dict.fromkeys(features)) or [name for name, f in config.features.items() if f.eval]
    if not names:
        _fail(f"no feature in {config_path} has an eval set (features.<name>.eval: a JSONL file of cases)")
    base_dir = config_path.resolve().parent
    plans, problems = [], []
    for name in names:
        try:
            plans.append(plan_feature(config, name, base_dir=base_dir, backends=backends or None, limit=limit))
        except EvalError as exc:
            _fail(str(exc))
        except CaseError as exc:
            problems += exc.problems
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        sys.exit(2)
    return config, plans


def _engine():
    from monitor.store import make_engine, migrate

    engine = make_engine()
    migrate(engine)
    return engine


class _Bar:
    """The runner's progress (`monitor.quality.runner.Progress`) as a rich bar per feature and backend, on
    stderr (a TTY only); a resumed run is said in any case."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.tasks: dict[tuple[str, str], int] = {}
        self.progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.progress = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                         TimeRemainingColumn(), console=Console(stderr=True), transient=False)

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def start(self, feature: str, pending: dict[str, int], resumed: int) -> None:
        if resumed:
            click.echo(f"{feature}: resuming an interrupted run: {resumed} answer(s) already stored, "
                       f"{sum(pending.values())} to go", err=True)
        if self.progress is not None:
            for backend, count in pending.items():
                self.tasks[(feature, backend)] = self.progress.add_task(f"{feature} on {backend}", total=count)

    def answered(self, feature: str, row) -> None:
        if self.progress is not None:
            self.progress.advance(self.tasks[(feature, row.backend)])
