"""The storefront table: pass rate (95% interval), p95 total time and cost per 1,000 requests, per
feature and backend, on the storefront's four eval sets.

Backends: the emulated OpenAI and Anthropic (``airisk emulate``; their answers come from
`chaos.answers`, their timing from the emulator's default profile: TTFT 150 ms, 15 ms a token; cost:
catalog prices x the tokens measured) and the real bundled Gemma 3 270M on llama.cpp (cost: the
machine's ``--cost-per-hour`` over the requests it serves an hour one at a time at its mean total
time, as the "Can we own it?" page reckons an owned backend without a capacity figure). Every
feature runs against all three, through `monitor.quality.runner` as ``airisk eval run`` does, with the
demo's features (`airisk.up.DEMO_FEATURES`: chains, ``min_quality``), one case at a time per backend
(``quality.concurrency: 1``: the local server answers one request at a time, and more in flight would
put queueing into its p95). No judge backend is configured: each ``judge`` check reports unjudged,
and a case passes on its other checks.

Prints a Markdown table, each backend's failed checks by type, and how long the run took.

Usage: .venv/bin/python bench/storefront_evals.py [--cases N] [--threads 2] [--cost-per-hour USD]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlmodel import Session  # noqa: E402

from airisk.up import DEMO_FEATURES  # noqa: E402
from bench.evalstack import SETS, emulated_target, emulator, load, local_model, wait_alone, write_config  # noqa: E402
from monitor.config import parse_config  # noqa: E402
from monitor.quality.runner import plan_feature, run_plan  # noqa: E402
from monitor.store import make_engine, migrate  # noqa: E402
from monitor.store.quality import run_answers  # noqa: E402
from probes import make_client  # noqa: E402

BACKENDS = ("openai", "anthropic", "local")
# A two-vCPU on-demand cloud VM (AWS c7i.large, us-east-1, Linux: $0.08925 an hour, late 2025) runs this
# model as it runs here; a figure for "what would the owned path cost", not a measured price.
COST_PER_HOUR = 0.089


def cost_per_1000(figure, rows, cost_per_hour: float) -> tuple[float | None, str]:
    """USD per 1,000 requests: hosted, catalog prices x measured tokens (the figure's); owned, the
    machine's hourly cost over the requests it serves an hour, one at a time at the mean total time."""
    if not figure.local:
        return figure.cost_per_1000, "catalog prices x tokens"
    times = [r.total_ms for r in rows if r.error_kind is None and r.total_ms]
    if not times:
        return None, "no answer timed"
    mean_s = sum(times) / len(times) / 1000
    return 1000 * cost_per_hour * mean_s / 3600, f"${cost_per_hour:g}/h, one at a time, mean {mean_s:.2f} s"


def judge_summary(rows) -> Counter:
    """The judge checks' outcomes over the answers: 'unjudged', 'passed', 'failed'."""
    out: Counter = Counter()
    for row in rows:
        for check in row.checks or ():
            if check.get("type") == "judge":
                out[{None: "unjudged", True: "passed", False: "failed"}[check.get("passed")]] += 1
    return out


def failed_checks(rows) -> Counter:
    return Counter(c["type"] for r in rows for c in (r.checks or ()) if c.get("passed") is False)


async def run(args: argparse.Namespace, folder: Path, url: str, port: int) -> None:
    features = {name: copy.deepcopy(DEMO_FEATURES[name]) for name in args.features}
    targets = [emulated_target(name, url) for name in ("openai", "anthropic")]
    path = write_config(folder, features=features, targets=targets, local_port=port, quality={"concurrency": 1})
    config = parse_config(path.read_text(), source=str(path))
    engine = make_engine(f"sqlite:///{folder / 'airisk.db'}")
    migrate(engine)
    table, notes = [], []
    began = time.perf_counter()
    async with make_client() as client:
        for name in args.features:
            plan = plan_feature(config, name, base_dir=folder, backends=list(BACKENDS), limit=args.cases)
            started = time.perf_counter()
            outcome = await run_plan(plan, engine=engine, client=client, concurrency=1)
            seconds = time.perf_counter() - started
            with Session(engine) as session:
                rows = run_answers(session, outcome.run_id)
            print(f"{name}: {len(plan.cases)} cases x {len(BACKENDS)} backends in {seconds:.0f} s", flush=True)
            for backend in BACKENDS:
                figure = outcome.figures[backend]
                mine = [r for r in rows if r.backend == backend]
                table.append((name, backend, figure, *cost_per_1000(figure, mine, args.cost_per_hour),
                              judge_summary(mine), failed_checks(mine)))
    engine.dispose()
    total = time.perf_counter() - began
    min_quality = {name: features[name].get("min_quality") for name in features}
    print("\n| feature | backend | pass rate (95% interval) | unjudged | errors | total p50 / p95 | "
          "output tokens (mean) | cost per 1,000 requests |")
    print("|---|---|---|---|---|---|---|---|")
    for name, backend, f, cost, how, _judged, _failed in table:
        lo, hi = f.interval
        rate = f"{f.pass_rate:.0%} ({f.passed}/{f.judged}; {lo:.0%}-{hi:.0%})" if f.judged else "none judged"
        errors = ", ".join(f"{k} {v}" for k, v in f.errors.items()) or "0"
        timing = (f"{f.total_p50_ms / 1000:.2f} s / {f.total_p95_ms / 1000:.2f} s"
                  if f.total_p95_ms is not None else "-")
        answered = f.cases - f.error_count
        tokens = f"{f.output_tokens / answered:.0f}" if answered else "-"
        price = "-" if cost is None else f"${cost:.4f}"
        print(f"| {name} | {backend}{' (owned)' if f.local else ' (emulated)'} | {rate} | {f.unjudged} | {errors} | "
              f"{timing} | {tokens} | {price} ({how}) |")
    print()
    for name, backend, _f, _cost, _how, judged, failed in table:
        said = ", ".join(f"{k} {v}" for k, v in failed.most_common()) or "none"
        notes.append(f"{name} on {backend}: failed checks: {said}; judge checks: "
                     + ", ".join(f"{k} {v}" for k, v in judged.most_common()))
    for name in args.features:
        if min_quality.get(name) is not None:
            notes.append(f"{name}: min_quality {min_quality[name]:g} (against the interval's lower bound)")
    print("\n".join(notes))
    print(f"\nwhole run: {total / 60:.1f} min (cases: {'every case' if args.cases is None else f'first {args.cases}'} "
          "of each set)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=None, help="only the first N cases of each set (default: all)")
    parser.add_argument("--features", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--cost-per-hour", type=float, default=COST_PER_HOUR,
                        help="the owned machine's cost, USD an hour (default: a 2-vCPU cloud VM)")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="minutes to wait for other local-model servers to end before starting")
    args = parser.parse_args()
    alone = wait_alone(args.wait)
    print(f"{datetime.now():%Y-%m-%d %H:%M}, {load()}; {alone}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with emulator(folder) as url, local_model(folder, threads=args.threads) as server:
            print(f"local model ready ({server.threads} threads); emulator at {url}")
            asyncio.run(run(args, folder, url, server.port))
            print(f"at the end: {load()}; {wait_alone(0, {server.pid})}")


if __name__ == "__main__":
    main()
