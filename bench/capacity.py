"""The capacity search against its baseline, a brute-force sweep of fixed rates, on the real local model.

In one run, against the bundled Gemma 3 270M on llama.cpp (`monitor.localmodel.LocalModelServer`):

1. an eval run of the feature's cases (`monitor.quality.runner`), so the steps judge quality against it
   (the latest pass rate less 10 points), as `airisk eval capacity` does after `airisk eval run`;
2. the search (`chaos.capacity.find_capacity`): the rate it finds, its steps, how long it took;
3. the baseline: every rate of a geometric grid (10% apart, from ``--sweep-from``), each measured the same
   way (same step length, requests, sample, criteria); the sweep's highest passing rate, and how long it took.
   The sweep goes up until three rates in a row have failed (a brute force that would also see a backend
   that fails one rate and holds the next), or to ``--max-rate``.

The feature: short answers (``--max-tokens``, one-word questions) with a total latency budget (``--budget``
seconds), which makes the model's capacity a few requests a second: llama-cpp-python's server answers one
request at a time, so a rate above its service rate queues without bound, and p95 crosses the budget.

Goal: the search's rate within 10% of the sweep's, in a fraction of its time.

``--control-ms MS``: the same comparison against a stable backend instead of the model: a loopback
OpenAI-compatible server that answers one request at a time, each in MS ms (asleep, so a busy machine
hardly moves it). A model on a shared machine changes speed over the minutes a sweep takes; the control
tells the search's own error from that drift.

Usage: .venv/bin/python bench/capacity.py [--threads N] [--step S] [--min-requests N] [--budget S] [--control-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaos.capacity import Meter, Step, find_capacity, prepare  # noqa: E402
from chaos.capacity.load import MAX_IN_FLIGHT  # noqa: E402
from chaos.capacity.run import latest_quality  # noqa: E402
from monitor.config import parse_config  # noqa: E402
from monitor.localmodel import LocalModelServer  # noqa: E402
from monitor.quality.runner import plan_feature, run_plan  # noqa: E402
from monitor.store import make_engine, migrate  # noqa: E402
from probes import make_client  # noqa: E402

# One-word questions the 270M model answers right more often than not, so the pass rate means something.
QUESTIONS = [
    ("What is the capital of France? Answer in one word.", "Paris"),
    ("What is the capital of Japan? Answer in one word.", "Tokyo"),
    ("What is 2 plus 2? Answer with a number.", "4"),
    ("What is the opposite of hot? Answer in one word.", "cold"),
    ("Which animal says moo? Answer in one word.", "cow"),
    ("What is frozen water called? Answer in one word.", "ice"),
    ("What do bees make? Answer in one word.", "honey"),
    ("What is the capital of Italy? Answer in one word.", "Rome"),
    ("What color is the sky on a clear day? Answer in one word.", "blue"),
    ("How many legs does a spider have? Answer with a number.", "8"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serial_server(service_ms: float):
    """A loopback OpenAI-compatible chat server answering one request at a time, each in ``service_ms``; its
    answer names every expected answer, so every check passes (the control measures latency alone)."""
    from aiohttp import web

    lock = asyncio.Lock()
    words = [a for _, a in QUESTIONS]

    def chunk(delta: dict, finish: str | None) -> bytes:
        body = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "serial",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        async with lock:
            await asyncio.sleep(service_ms / 1000)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        try:  # a request the search abandoned was still served (as many servers do): its client is gone
            await response.prepare(request)
            await response.write(chunk({"role": "assistant", "content": ""}, None))
            for word in words:
                await response.write(chunk({"content": word + " "}, None))
            await response.write(chunk({}, "stop") + b"data: [DONE]\n\n")
        except ConnectionResetError:
            pass
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


def write_feature(folder: Path, port: int, *, budget: float, max_tokens: int, control: bool = False) -> Path:
    cases = [{"id": f"q{i}", "messages": [{"role": "user", "content": q}],
              "params": {"max_tokens": max_tokens, "temperature": 0},
              "checks": [{"type": "contains", "value": a}]}
             for i, (q, a) in enumerate(QUESTIONS)]
    (folder / "answers.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    (folder / "airisk.yaml").write_text(f"""
defaults:
  deadlines: {{connect: 5s, first_token: 30s, total: 60s, stall: 15s}}
local_model: {{port: {port}}}
targets: [{{name: serial, provider: openai, base_url: "http://127.0.0.1:{port}/v1", key_env: NONE_SET}}]
features:
  answers:
    chain: [{{backend: {"serial" if control else "local"}}}]
    latency_budget: {{total: {budget}s}}
    eval: answers.jsonl
""")
    return folder / "airisk.yaml"


SHOWN: list[Step] = []


def show(step: Step) -> None:
    SHOWN.append(step)
    print(f"   {step.rate:7.3f} rps  {'held  ' if step.ok else 'failed'}  {step.requests:>4} req  "
          f"{step.seconds:6.1f} s  {step.why}", flush=True)


def grid(start: float, top: float, factor: float = 1.1) -> list[float]:
    rates, rate = [], start
    while rate <= top * (1 + 1e-9):
        rates.append(round(rate, 4))
        rate *= factor
    return rates


async def run(args: argparse.Namespace, folder: Path, port: int) -> None:
    control = args.control_ms is not None
    backend = "serial" if control else "local"
    if control:
        server, port = await serial_server(args.control_ms)
    try:
        await compare(args, folder, port, backend, control)
    finally:
        if control:
            await server.cleanup()


async def compare(args: argparse.Namespace, folder: Path, port: int, backend: str, control: bool) -> None:
    path = write_feature(folder, port, budget=args.budget, max_tokens=args.max_tokens, control=control)
    config = parse_config(path.read_text(), source=str(path))
    engine = make_engine(f"sqlite:///{folder / 'airisk.db'}")
    migrate(engine)
    settings = {"step_s": args.step, "min_requests": args.min_requests, "sample": args.sample}
    async with make_client(max_connections=MAX_IN_FLIGHT) as client:
        outcome = await run_plan(plan_feature(config, "answers", base_dir=folder, backends=[backend]), engine=engine,
                                 client=client)
        figure = outcome.figures[backend]
        print(f"eval run: {figure.passed} of {figure.judged} passed; total p50 {figure.total_p50_ms:.0f} ms, "
              f"p95 {figure.total_p95_ms:.0f} ms ({config.quality.concurrency} at a time, closed loop)")
        setup = prepare(config, "answers", backend, base_dir=folder, latest=lambda f, b: latest_quality(engine, f, b))
        print(f"criteria: {setup.criteria.describe()}\n")

        async def searched(label: str) -> tuple[float, float]:
            print(f"search, {label} (start {args.start:g} rps, max {args.max_rate:g} rps; "
                  f"load average {os.getloadavg()[0]:.1f}):")
            began = time.perf_counter()
            found = await find_capacity(setup, client=client, max_rate=args.max_rate, start=args.start,
                                        min_rate=0.05, on_step=show, **settings)
            took = time.perf_counter() - began
            print(f"   -> {found.rate:.3f} rps ({found.why}); {len(found.steps)} steps in {took:.0f} s\n")
            return found.rate, took

        searches = [await searched("before the sweep")]
        rates = grid(args.sweep_from, args.max_rate)
        print(f"sweep ({len(rates)} rates at most, {rates[0]:g} to {rates[-1]:g} rps, 10% apart; "
              f"stops after three failures in a row; load average {os.getloadavg()[0]:.1f}):")
        meter = Meter(feature="answers", target=setup.target, cases=setup.plan.cases,
                      conversations=setup.plan.conversations, criteria=setup.criteria, client=client, **settings)
        began = time.perf_counter()
        await meter.warm_up()
        swept, failures = [], 0
        for rate in rates:
            step = await meter.measure(rate)
            show(step)
            swept.append(step)
            failures = 0 if step.ok else failures + 1
            if failures == 3:
                break
        sweep_s = time.perf_counter() - began
        held = [s.rate for s in swept if s.ok]
        best = max(held) if held else 0.0
        print(f"   -> highest passing rate {best:.3f} rps; {len(swept)} steps in {sweep_s:.0f} s\n")
        # A second search after the sweep: a shared machine's load drifts over the minutes a sweep takes, and
        # the two searches bracket it in time.
        searches.append(await searched("after the sweep"))
    engine.dispose()
    for (rate, took), when in zip(searches, ("before", "after"), strict=True):
        if best:
            gap = rate / best - 1
            verdict = "met" if abs(gap) <= 0.10 else "NOT met"
            print(f"search {when} the sweep {rate:.3f} rps against sweep {best:.3f} rps: {gap:+.1%} "
                  f"(goal within 10%: {verdict}); time {took:.0f} s against {sweep_s:.0f} s ({took / sweep_s:.2f}x)")
        else:
            print(f"the sweep held no rate; the search {when} it found {rate:.3f} rps")
    lags = [s.lag_ms for s in SHOWN if s.lag_ms is not None]
    if lags:
        print(f"our open-loop generator: p95 lag behind its schedule at most {max(lags):.1f} ms over "
              f"{len(SHOWN)} steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: every core)")
    parser.add_argument("--budget", type=float, default=3.0, help="the feature's total latency budget, seconds")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--step", type=float, default=20.0)
    parser.add_argument("--min-requests", type=int, default=30)
    parser.add_argument("--sample", type=int, default=30)
    parser.add_argument("--start", type=float, default=1.0)
    parser.add_argument("--max-rate", type=float, default=4.0)
    parser.add_argument("--sweep-from", type=float, default=0.4)
    parser.add_argument("--control-ms", type=float, default=None,
                        help="measure a loopback server answering one request at a time in this many ms instead")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"{os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
          f"{datetime.now():%Y-%m-%d %H:%M}; budget total {args.budget:g} s, max_tokens {args.max_tokens}, "
          f"steps of {args.step:g} s / {args.min_requests} requests, {args.sample} checked")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.control_ms is not None:
            print(f"control: a loopback server answering one request at a time in {args.control_ms:g} ms")
            asyncio.run(run(args, folder, 0))
        else:
            port = free_port()
            server = LocalModelServer(port=port, threads=args.threads, log_path=folder / "llama.log")
            with server:
                print(f"local model ready in {server.wait_ready():.1f} s ({server.threads} threads)")
                asyncio.run(run(args, folder, port))
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
