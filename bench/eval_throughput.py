"""Eval throughput on the real local model: `airisk eval`'s runner against the model's raw generation rate.

In one run, against the bundled Gemma 3 270M on llama.cpp, the storefront's eval sets (the first
``--cases`` of each, at temperature 0 so both sides generate the very same tokens):

- A, airisk: `monitor.quality.runner.run_plan`, concurrency 1, every check applied (the ``judge``
  checks report unjudged: no judge backend), every answer stored in SQLite (one file for the whole
  bench, as a user's store gathers runs);
- B, raw: the same requests (the bodies the local dialect builds, made before the clock starts), one
  after another, sent by a bare ``httpx.AsyncClient`` whose stream is read to its end and nothing else.

A round is one eval set on both sides, back to back; which side goes first alternates from pass to pass
over the sets, so drift in the machine's load weighs on both alike, and short rounds keep the two
sides of a pair close in time (the machine is shared: a burst of other work can double one round).
Printed: each round's times and ratio; both rates in cases/s over every round, their ratio and
airisk's overhead (its extra time over the raw time), with the median and middle half of the
rounds' ratios; and two measures the model's speed does not blur: within airisk's own side, the time
outside the model's answers (the wall time less each stored answer's total time), and this process's
CPU time on each side (what airisk's reading, checks and storage cost beyond a bare client). Goal: at
most 5%. The token counts of both sides are compared: equal, or it was not the same work.

Usage: .venv/bin/python bench/eval_throughput.py [--threads 2] [--cases 4] [--rounds 8] [--sets ...] [--wait MIN]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bench.evalstack import EVALS, SETS, load, local_model, wait_alone, write_config, zero_temperature  # noqa: E402
from monitor.config import parse_config  # noqa: E402
from monitor.quality.runner import Plan, plan_feature, run_plan  # noqa: E402
from monitor.store import make_engine, migrate  # noqa: E402
from monitor.store.quality import run_answers  # noqa: E402
from probes import make_client  # noqa: E402
from probes.dialects import get_dialect  # noqa: E402


def raw_requests(plan: Plan) -> list[tuple[str, dict, dict]]:
    """(url, headers, JSON body) of each case, as the local dialect builds them for `probes.generate`."""
    target = plan.targets[0]
    dialect = get_dialect(target.dialect)
    out = []
    for conversation in plan.conversations:
        spec = dialect.build_request(target, conversation.prompt, api_key=target.api_key(), conversation=conversation)
        out.append((spec.url, dict(spec.headers), spec.json))
    return out


async def raw_round(client: httpx.AsyncClient, requests: list[tuple[str, dict, dict]]) -> tuple[float, float, int]:
    """Each request in turn, its stream read to the end: the wall time, the time inside the requests (from
    sending each to its stream's end), and the tokens the server gave (read from the kept bytes afterwards)."""
    kept: list[list[bytes]] = []
    inside = 0.0
    began = time.perf_counter()
    for url, headers, body in requests:
        chunks: list[bytes] = []
        sent = time.perf_counter()
        async with client.stream("POST", url, headers=headers, json=body) as response:
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
        inside += time.perf_counter() - sent
        kept.append(chunks)
    wall = time.perf_counter() - began
    return wall, inside, sum(_usage(b"".join(chunks)) for chunks in kept)


def _usage(stream: bytes) -> int:
    """Output tokens as the probe counts them: the server's usage, else its chunks that carried text."""
    reported, chunks = None, 0
    for line in stream.splitlines():
        if line.startswith(b"data: {"):
            data = json.loads(line[6:])
            reported = (data.get("usage") or {}).get("completion_tokens") or reported
            chunks += any(choice.get("text") for choice in data.get("choices") or ())
    return reported if reported is not None else chunks


async def airisk_round(plan: Plan, engine, client: httpx.AsyncClient) -> tuple[float, float, dict]:
    """The plan through the runner (a new run: its answers stored in SQLite): the wall time, the time inside
    the requests (the stored answers' total times, each from its first byte sent to its stream's end), and
    the stored answers' totals."""
    began = time.perf_counter()
    outcome = await run_plan(plan, engine=engine, client=client, concurrency=1)
    wall = time.perf_counter() - began
    with Session(engine) as session:
        rows = run_answers(session, outcome.run_id)
    figure = outcome.figures["local"]
    totals = {"stored": outcome.answered, "tokens": figure.output_tokens, "passed": figure.passed,
              "failed": figure.failed, "errors": figure.error_count}
    return wall, sum(r.total_ms or 0.0 for r in rows) / 1000, totals


async def run(args: argparse.Namespace, folder: Path, port: int) -> None:
    features = {}
    for name in args.sets:
        path = zero_temperature(EVALS / f"{name}.jsonl", folder / f"{name}.jsonl")
        features[name] = {"chain": [{"backend": "local"}], "eval": path.name}
    config_path = write_config(folder, features=features, targets=[], local_port=port)
    config = parse_config(config_path.read_text(), source=str(config_path))
    engine = make_engine(f"sqlite:///{folder / 'airisk.db'}")
    migrate(engine)
    per_round = {}
    for name in args.sets:
        plan = plan_feature(config, name, base_dir=folder, backends=["local"], limit=args.cases)
        per_round[name] = (plan, raw_requests(plan))
    print(f"rounds of one eval set each ({', '.join(f'{n} {len(p.cases)} cases' for n, (p, _) in per_round.items())}), "
          f"{args.rounds} times over; airisk first in even passes, raw first in odd ones\n")
    a_wall = b_wall = a_inside = b_inside = 0.0
    cpu = {"airisk": 0.0, "raw": 0.0}  # this process's CPU seconds (every thread: SQLite writes run in threads)
    cases, ratios, mismatched = 0, [], 0
    async with make_client() as probes_client, httpx.AsyncClient(timeout=None) as bare:
        await raw_round(bare, per_round[args.sets[0]][1][:1])  # warm-up: what the server loads lazily
        for number in range(args.rounds):
            order = ("airisk", "raw") if number % 2 == 0 else ("raw", "airisk")
            for name, (plan, requests) in per_round.items():
                for side in order:
                    cpu_began = time.process_time()
                    if side == "airisk":
                        a, a_in, totals = await airisk_round(plan, engine, probes_client)
                    else:
                        b, b_in, raw_tokens = await raw_round(bare, requests)
                    cpu[side] += time.process_time() - cpu_began
                a_wall, b_wall, a_inside, b_inside = a_wall + a, b_wall + b, a_inside + a_in, b_inside + b_in
                cases += len(requests)
                ratios.append(a / b)
                mismatched += totals["tokens"] != raw_tokens
                print(f"pass {number + 1} {name:<11} ({' then '.join(order)}): airisk {a:6.1f} s "
                      f"({totals['stored']} stored, {totals['tokens']} tokens, {totals['passed']} passed, "
                      f"{totals['failed']} failed, {totals['errors']} errors)  raw {b:6.1f} s ({raw_tokens} tokens)"
                      f"  airisk/raw {a / b:.3f}", flush=True)
    engine.dispose()
    overhead, low, high = a_wall / b_wall - 1, _quartile(ratios, 1) - 1, _quartile(ratios, 3) - 1
    if high - low > 0.10:
        verdict = "not resolved by the wall clock: the rounds' spread is wider than the goal (see below)"
    else:
        verdict = "met" if overhead <= 0.05 else "NOT met"
    print(f"\nairisk eval runner {cases / a_wall:.3f} cases/s, raw generation {cases / b_wall:.3f} cases/s "
          f"({cases} cases each): ratio {b_wall / a_wall:.3f}; airisk's overhead {overhead:+.1%} of the raw time "
          f"(median round {statistics.median(ratios) - 1:+.1%}, middle half {low:+.1%} to {high:+.1%}); "
          f"goal at most +5%: {verdict}")
    print(f"time outside the model's answers (wall time less each request's time from sending to the stream's "
          f"end): airisk {a_wall - a_inside:.2f} s of {a_wall:.1f} s ({(a_wall - a_inside) / a_wall:.2%}), "
          f"raw {b_wall - b_inside:.2f} s of {b_wall:.1f} s ({(b_wall - b_inside) / b_wall:.2%})")
    extra = (cpu["airisk"] - cpu["raw"]) / cases
    print(f"this process's CPU time: airisk {cpu['airisk']:.2f} s, raw {cpu['raw']:.2f} s: "
          f"{1000 * extra:+.1f} ms a case, "
          f"{extra * cases / b_wall:+.2%} of the raw wall time (an upper bound on what it adds at concurrency 1, "
          "where part of it overlaps the model's generation)")
    print("the same tokens on both sides in every round" if not mismatched else
          f"token counts differed in {mismatched} round(s): not quite the same work")


def _quartile(values: list[float], which: int) -> float:
    return statistics.quantiles(values, n=4)[which - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--cases", type=int, default=4, help="the first N cases of each eval set")
    parser.add_argument("--rounds", type=int, default=8, help="passes over the eval sets")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--wait", type=float, default=0.0,
                        help="minutes to wait for other local-model servers to end before starting")
    args = parser.parse_args()
    alone = wait_alone(args.wait)
    print(f"{datetime.now():%Y-%m-%d %H:%M}, {load()}; {alone}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with local_model(folder, threads=args.threads) as server:
            print(f"local model ready ({server.threads} threads)")
            asyncio.run(run(args, folder, server.port))
            print(f"at the end: {load()}; {wait_alone(0, {server.pid})}")


if __name__ == "__main__":
    main()
