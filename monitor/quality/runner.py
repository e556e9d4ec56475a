"""`airisk eval run`: a feature's eval set against its backends, every answer checked and stored.

The backends of a feature are the AI backends of its chain (degraded modes have no model to ask) and
its ``candidates``, or the ones named. Each resolves to a `probes.Target` as the monitor resolves it.
Every case is one `probes.generate` call on one shared client; its answer goes through each check of
the case, and the row (answer, verdicts, timing, tokens, cost) goes to the store in small batches as
answers come, so an interrupted run loses at most the answers in flight: the next identical run
(`monitor.store.quality.start_or_resume`) skips what was answered and says how many it resumed.

A case passes when every check that could judge it passed; it is unjudged when none could (a judge
backend down, no reference); an answer that did not come (``not generation.ok``) is an error of its
kind, never a quality failure, and is not checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.quality.cases import Case, CaseError, read_cases
from monitor.quality.checks import Context
from monitor.store.models import EvalAnswerRow
from monitor.store.quality import (
    finish_run,
    quality_figures,
    record_answers,
    run_answers,
    start_or_resume,
    storable,
)
from probes import Conversation, Generation, Target, generate, make_client
from probes.target import Deadlines

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.engine import Engine

    from monitor.config import AiriskConfig
    from monitor.quality.figures import QualityFigure

log = logging.getLogger(__name__)

BATCH = 16  # answers written at once: small, so an interruption loses little
FLUSH_S = 2.0  # ... or after this long, so a slow backend's answers do not wait for a full batch


class EvalError(ValueError):
    """Bad input that is not an eval file's: an unknown feature or backend, a feature without an eval set."""


@dataclass(frozen=True, slots=True)
class Plan:
    """One feature's run, before it starts: which cases, against which backends."""

    feature: str
    cases: tuple[Case, ...]
    """The cases to send (those with ``messages``), after ``--cases``, in the file's order."""
    conversations: tuple[Conversation, ...]
    targets: tuple[Target, ...]
    cases_file: str
    cases_hash: str
    """sha256 of the eval file's bytes: a resumed run must be a run of the same cases."""
    skipped: int = 0
    """Cases with no ``messages`` (the product's HTTP request only): drills send those, not `airisk eval`."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one feature's run did."""

    plan: Plan
    run_id: int
    resumed: int
    """Answers an interrupted earlier run had already stored (not asked again)."""
    answered: int
    """Answers this run stored."""
    figures: dict[str, QualityFigure]
    """Per backend, from every answer of the run (resumed ones too)."""
    failures: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """Per backend: (case id, what its failing checks said) of each quality failure, in case order."""


class Progress:
    """What the runner tells whoever watches (the CLI's progress bar); every method may be left alone."""

    def start(self, feature: str, pending: dict[str, int], resumed: int) -> None:
        """A feature's run starts: answers still to get per backend, and how many an interrupted run left."""

    def answered(self, feature: str, row: EvalAnswerRow) -> None:
        """One answer came and was checked (not yet stored)."""


# -- backends ----------------------------------------------------------------------------------------

def feature_backends(config: AiriskConfig, feature: str) -> list[str]:
    """The chain's AI backends in order, then the candidates, each once."""
    spec = config.features[feature]
    names = [link.backend for link in spec.chain if link.backend is not None] + list(spec.candidates)
    return list(dict.fromkeys(names))


def known_backends(config: AiriskConfig) -> list[str]:
    return sorted(config.backend_names() | {"local"})


def resolve_backend(config: AiriskConfig, name: str) -> Target:
    """The `Target` a backend name means, as the monitor resolves it: an enabled target of that name,
    the ``local_model`` for "local", else the catalog provider with the config's defaults."""
    for target, _ in config.resolve_schedule():
        if target.name == name:
            return target
    if any(t.target_name == name for t in config.targets):
        raise EvalError(f"backend {name!r} is a disabled target: enable it to measure it")
    from probes.catalog import CATALOG

    d = config.defaults
    common: dict[str, Any] = {"region": d.region, "max_tokens": d.max_tokens,
                              "deadlines": d.deadlines.over(Deadlines())}
    if name == "local" and config.local_model is not None:
        local = config.local_model
        return Target.from_provider("local", base_url=f"http://127.0.0.1:{local.port}/v1", model=local.alias,
                                    **common)
    if name in CATALOG:
        return Target.from_provider(name, **common)
    raise EvalError(f"unknown backend {name!r} (known: {', '.join(known_backends(config))})")


# -- the plan -----------------------------------------------------------------------------------------

def eval_path(config: AiriskConfig, feature: str, base_dir: Path) -> Path:
    """The feature's eval file: ``features.<name>.eval``, a relative path read from the config's folder."""
    spec = config.features.get(feature)
    if spec is None:
        raise EvalError(f"unknown feature {feature!r} (known: {', '.join(sorted(config.features)) or 'none'})")
    if not spec.eval:
        raise EvalError(f"feature {feature!r} has no eval set: give features.{feature}.eval (a JSONL file of cases)")
    path = Path(spec.eval).expanduser()
    return path if path.is_absolute() else base_dir / path


def read_eval(path: Path) -> tuple[bytes, list[Case]]:
    """The eval file's bytes and its cases; `CaseError` (``file:line: field: problem`` lines) if bad."""
    return read_cases(path)


def plan_feature(config: AiriskConfig, feature: str, *, base_dir: Path, backends: Sequence[str] | None = None,
                 limit: int | None = None) -> Plan:
    """The run of ``feature``: its eval set read and checked, its backends resolved.

    Raises `EvalError` (unknown names, no eval set) or `CaseError` (a bad eval file, every line)."""
    path = eval_path(config, feature, base_dir)
    names = list(dict.fromkeys(backends)) if backends else feature_backends(config, feature)
    targets = tuple(resolve_backend(config, name) for name in names)
    raw, cases = read_eval(path)
    runnable = [c for c in cases if c.messages]
    if limit is not None:
        runnable = runnable[:limit]
    conversations, problems = [], []
    for case in runnable:
        try:
            conversations.append(Conversation.from_case(case))
        except ValueError as exc:  # what the case file allows but no provider can be sent
            problems.append(f"{case.source}: messages: {exc}")
    if problems:
        raise CaseError(problems)
    return Plan(feature=feature, cases=tuple(runnable), conversations=tuple(conversations), targets=targets,
                cases_file=str(path), cases_hash=hashlib.sha256(raw).hexdigest(),
                skipped=sum(1 for c in cases if not c.messages))


# -- running ------------------------------------------------------------------------------------------

def make_judge(config: AiriskConfig, client: httpx.AsyncClient) -> Any:
    """The judge backend of ``quality.judge``, or None when none is configured (judge checks: unjudged)."""
    settings = config.quality.judge
    if settings is None:
        return None
    from monitor.quality.judge import Judge

    return Judge(target=resolve_backend(config, settings.backend), client=client, max_tokens=settings.max_tokens)


async def run_plans(config: AiriskConfig, plans: Sequence[Plan], *, engine: Engine,
                    progress: Progress | None = None, client: httpx.AsyncClient | None = None) -> list[Outcome]:
    """Runs each plan in turn on one shared client (made here unless given); see `run_plan`."""
    own = client is None
    client = client or make_client()
    try:
        judge = make_judge(config, client)
        return [await run_plan(plan, engine=engine, client=client, concurrency=config.quality.concurrency,
                               judge=judge, progress=progress) for plan in plans]
    finally:
        if own:
            await client.aclose()


async def run_plan(plan: Plan, *, engine: Engine, client: httpx.AsyncClient, concurrency: int = 4,
                   judge: Any = None, progress: Progress | None = None) -> Outcome:
    """Every case of ``plan`` against each of its backends, stored as answered; resumes an unfinished
    identical run. Cancelling it (Ctrl-C) stores the answers already checked and leaves the run to resume."""
    progress = progress or Progress()
    backends = [t.name for t in plan.targets]
    run_id, done = await asyncio.to_thread(_start, engine, plan, backends)
    wanted = {(b, storable(c.id)) for b in backends for c in plan.cases}
    resumed = len(done & wanted)
    todo = {t.name: [i for i, c in enumerate(plan.cases) if (t.name, storable(c.id)) not in done]
            for t in plan.targets}
    progress.start(plan.feature, {name: len(indices) for name, indices in todo.items()}, resumed)
    writer = _Writer(engine)
    try:
        # A task group: a defect in one backend's task cancels the others rather than leaving them running.
        async with asyncio.TaskGroup() as group:
            for target in plan.targets:
                group.create_task(_ask_backend(plan, target, todo[target.name], run_id=run_id, client=client,
                                               concurrency=concurrency, judge=_judge_for(judge, target),
                                               writer=writer, progress=progress))
        await writer.flush()
    finally:
        # Cancelled or not, what was answered is kept: the next identical run resumes after it.
        writer.flush_now()
    await asyncio.to_thread(_finish, engine, run_id)
    figures, failures = await asyncio.to_thread(_read_back, engine, plan, run_id)
    return Outcome(plan=plan, run_id=run_id, resumed=resumed, answered=writer.stored, figures=figures,
                   failures=failures)


def _judge_for(judge: Any, target: Target) -> Any:
    """The judge for ``target``'s answers: none when it is the judge's own backend (a model grading its own
    answers agrees with itself; its judge checks are then unjudged, and the log says why, once)."""
    if judge is not None and getattr(getattr(judge, "target", None), "name", None) == target.name:
        log.warning("judge checks of %s's answers left unjudged: %s is also the judge backend (quality.judge)",
                    target.name, target.name)
        return None
    return judge


async def _ask_backend(plan: Plan, target: Target, indices: list[int], *, run_id: int, client: httpx.AsyncClient,
                       concurrency: int, judge: Any, writer: _Writer, progress: Progress) -> None:
    # At most `concurrency` requests in flight per backend (as Gatus caps its checks): with more, the
    # backend's own queue and our event loop add to every TTFT and total time, and the figures would
    # measure our load, not the backend. A few workers sharing one iterator give that bound without a
    # task per case (an eval set may hold 100,000 cases).
    pending = iter(indices)

    async def worker() -> None:
        for index in pending:
            case = plan.cases[index]
            generation = await generate(target, plan.conversations[index], client=client)
            row = await answer_row(plan.feature, target, case, generation, run_id=run_id, judge=judge)
            progress.answered(plan.feature, row)
            await writer.add(row)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(indices))):
            group.create_task(worker())


async def answer_row(feature: str, target: Target, case: Case, generation: Generation, *, run_id: int,
                     judge: Any = None) -> EvalAnswerRow:
    """The stored form of one answer: its checks' verdicts and the case's, its timing, tokens and cost.

    An answer that did not come is its error kind, unchecked (``passed`` None)."""
    result = generation.result
    row = EvalAnswerRow(
        run_id=run_id, feature=feature, backend=target.name, case_id=case.id, at=result.at,
        http_status=result.http_status, answer=generation.text, ttft_ms=result.ttft_ms, total_ms=result.total_ms,
        input_tokens=result.input_tokens, output_tokens=result.output_tokens, cost_usd=result.cost_usd,
        local=target.local,
    )
    if not generation.ok:
        row.error_kind = str(result.error_kind)
        return row
    ctx = Context(case=case, reference=case.reference, judge=judge)
    checks = [await _verdict(check, generation.text, ctx) for check in case.checks]
    row.checks = checks
    row.passed = case_passed([c["passed"] for c in checks])
    return row


def case_passed(verdicts: Sequence[bool | None]) -> bool | None:
    """A case passes when every check that judged it passed; None when no check could judge it."""
    judged = [v for v in verdicts if v is not None]
    return None if not judged else all(judged)


async def _verdict(check: Any, text: str, ctx: Context) -> dict[str, Any]:
    try:
        verdict = await check.evaluate(text, ctx)
        passed, score, reason = verdict.passed, float(verdict.score), str(verdict.reason)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a defect in one check leaves the case unjudged by it, never failed, never a crash
        log.exception("check %s raised", check.name)
        passed, score, reason = None, 0.0, f"{check.name}: could not run: {type(exc).__name__}: {str(exc)[:120]}"
    return {"type": check.name, "passed": passed, "score": score if score == score else 0.0, "reason": reason}


# -- storage (worker threads: a commit must not stall the event loop, or the answers in flight pay) -------

class _Writer:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pending: list[EvalAnswerRow] = []
        self.lock = asyncio.Lock()
        self.last = time.monotonic()
        self.stored = 0

    async def add(self, row: EvalAnswerRow) -> None:
        self.pending.append(row)
        if len(self.pending) >= BATCH or time.monotonic() - self.last >= FLUSH_S:
            await self.flush()

    async def flush(self) -> None:
        async with self.lock:
            rows, self.pending = self.pending, []
            self.last = time.monotonic()
            if rows:
                self.stored += await asyncio.to_thread(_record, self.engine, rows)

    def flush_now(self) -> None:
        rows, self.pending = self.pending, []
        if rows:
            self.stored += _record(self.engine, rows)


def _record(engine: Engine, rows: list[EvalAnswerRow]) -> int:
    from sqlmodel import Session

    with Session(engine) as session:
        return record_answers(session, rows)


def _start(engine: Engine, plan: Plan, backends: list[str]) -> tuple[int, set[tuple[str, str]]]:
    from sqlmodel import Session

    with Session(engine) as session:
        return start_or_resume(session, feature=plan.feature, cases_file=plan.cases_file, cases_hash=plan.cases_hash,
                               backends=backends, cases=len(plan.cases))


def _finish(engine: Engine, run_id: int) -> None:
    from sqlmodel import Session

    with Session(engine) as session:
        finish_run(session, run_id)


def _read_back(engine: Engine, plan: Plan, run_id: int) -> tuple[dict[str, QualityFigure],
                                                                 dict[str, list[tuple[str, str]]]]:
    from sqlmodel import Session

    order = {storable(c.id): i for i, c in enumerate(plan.cases)}
    with Session(engine) as session:
        figures = {backend: figure for (_, backend), figure in quality_figures(session, run_id=run_id).items()}
        failures: dict[str, list[tuple[str, str]]] = {}
        for row in sorted(run_answers(session, run_id), key=lambda r: (r.backend, order.get(r.case_id, len(order)))):
            if row.passed is False:
                said = "; ".join(c["reason"] for c in row.checks if c.get("passed") is False)
                failures.setdefault(row.backend, []).append((row.case_id, said))
    return figures, failures
