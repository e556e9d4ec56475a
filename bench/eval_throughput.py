"""Eval throughput on the real local model: `airisk eval`'s runner against the model's raw generation rate.

In one run, against the bundled Gemma 3 270M on llama.cpp, the storefront's eval sets (the first
``--cases`` of each, at temperature 0 so both sides generate the very same tokens):

- A, airisk: `monitor.quality.runner.run_plan` per feature, concurrency 1, every check applied (the
  ``judge`` checks report unjudged: no judge backend), every answer stored in a fresh SQLite file;
- B, raw: the same requests (the bytes the local dialect builds, made before the clock starts), one
  after another, sent by a bare ``httpx.AsyncClient`` whose stream is read to its end and nothing else.

Rounds alternate (A then B, B then A, ...) so drift in the machine's load weighs on both alike. Printed:
each round's times and ratio, both rates in cases/s, the ratio, and airisk's overhead (its extra time
over the raw time). Goal: at most 5%. The token counts of both sides are printed too: equal, or the
comparison is not of the same work.

Usage: .venv/bin/python bench/eval_throughput.py [--threads 2] [--cases 8] [--rounds 6] [--sets ...]
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

from bench.evalstack import EVALS, SETS, load, local_model, wait_alone, write_config, zero_temperature  # noqa: E402
from monitor.config import parse_config  # noqa: E402
from monitor.quality.runner import Plan, plan_feature, run_plan  # noqa: E402
from monitor.store import make_engine, migrate  # noqa: E402
from probes import make_client  # noqa: E402
from probes.dialects import get_dialect  # noqa: E402


def raw_requests(plans: list[Plan]) -> list[tuple[str, dict, dict]]:
    """(url, headers, JSON body) of every case, as the local dialect builds them for `probes.generate`."""
    out = []
    for plan in plans:
        target = plan.targets[0]
        dialect = get_dialect(target.dialect)
        for conversation in plan.conversations:
            spec = dialect.build_request(target, conversation.prompt, api_key=target.api_key(),
                                         conversation=conversation)
            out.append((spec.url, dict(spec.headers), spec.json))
    return out


async def raw_round(client: httpx.AsyncClient, requests: list[tuple[str, dict, dict]]) -> tuple[float, int]:
    """Each request in turn, its stream read to the end; the wall time, and the tokens the server reported
    (read from the kept bytes after the clock stopped)."""
    kept: list[list[bytes]] = []
    began = time.perf_counter()
    for url, headers, body in requests:
        chunks: list[bytes] = []
        async with client.stream("POST", url, headers=headers, json=body) as response:
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
        kept.append(chunks)
    wall = time.perf_counter() - began
    return wall, sum(_usage(b"".join(chunks)) for chunks in kept)


def _usage(stream: bytes) -> int:
    """Output tokens as the probe counts them: the server's usage, else its chunks that carried text."""
    reported, chunks = None, 0
    for line in stream.splitlines():
        if line.startswith(b"data: {"):
            data = json.loads(line[6:])
            reported = (data.get("usage") or {}).get("completion_tokens") or reported
            chunks += any(choice.get("text") for choice in data.get("choices") or ())
    return reported if reported is not None else chunks


async def airisk_round(plans: list[Plan], folder: Path, number: int, client: httpx.AsyncClient) -> tuple[float, dict]:
    """Every plan through the runner into a fresh SQLite file (made before the clock starts); the wall
    time, and the stored answers' totals."""
    engine = make_engine(f"sqlite:///{folder / f'round{number}.db'}")
    migrate(engine)
    began = time.perf_counter()
    outcomes = [await run_plan(plan, engine=engine, client=client, concurrency=1) for plan in plans]
    wall = time.perf_counter() - began
    engine.dispose()
    figures = [o.figures["local"] for o in outcomes]
    totals = {"cases": sum(f.cases for f in figures), "stored": sum(o.answered for o in outcomes),
              "tokens": sum(f.output_tokens for f in figures), "passed": sum(f.passed for f in figures),
              "failed": sum(f.failed for f in figures), "unjudged": sum(f.unjudged for f in figures),
              "errors": sum(f.error_count for f in figures)}
    return wall, totals


async def run(args: argparse.Namespace, folder: Path, port: int) -> None:
    features = {}
    for name in args.sets:
        path = zero_temperature(EVALS / f"{name}.jsonl", folder / f"{name}.jsonl")
        features[name] = {"chain": [{"backend": "local"}], "eval": path.name}
    config_path = write_config(folder, features=features, targets=[], local_port=port)
    config = parse_config(config_path.read_text(), source=str(config_path))
    plans = [plan_feature(config, name, base_dir=folder, backends=["local"], limit=args.cases) for name in args.sets]
    requests = raw_requests(plans)
    count = len(requests)
    print(f"{count} cases a round ({', '.join(f'{p.feature} {len(p.cases)}' for p in plans)}), "
          f"{args.rounds} rounds alternating\n")
    a_times, b_times, ratios = [], [], []
    async with make_client() as probes_client, httpx.AsyncClient(timeout=None) as bare:
        await raw_round(bare, requests[:1])  # warm-up: the server's first request loads what it loads lazily
        for number in range(args.rounds):
            order = ("airisk", "raw") if number % 2 == 0 else ("raw", "airisk")
            took = {}
            for side in order:
                if side == "airisk":
                    took["airisk"], totals = await airisk_round(plans, folder, number, probes_client)
                else:
                    took["raw"], raw_tokens = await raw_round(bare, requests)
            a_times.append(took["airisk"])
            b_times.append(took["raw"])
            ratios.append(took["airisk"] / took["raw"])
            print(f"round {number + 1} ({' then '.join(order)}): airisk {took['airisk']:6.1f} s "
                  f"({totals['stored']} stored, {totals['tokens']} tokens, {totals['passed']} passed, "
                  f"{totals['failed']} failed, {totals['unjudged']} unjudged, {totals['errors']} errors)  "
                  f"raw {took['raw']:6.1f} s ({raw_tokens} tokens)  airisk/raw time {ratios[-1]:.3f}", flush=True)
    a_rate, b_rate = count * len(a_times) / sum(a_times), count * len(b_times) / sum(b_times)
    overhead = sum(a_times) / sum(b_times) - 1
    print(f"\nairisk eval runner {a_rate:.3f} cases/s, raw generation {b_rate:.3f} cases/s: "
          f"ratio {a_rate / b_rate:.3f}; airisk's overhead {overhead:+.1%} of the raw time "
          f"(median round {statistics.median(ratios) - 1:+.1%}, rounds {min(ratios) - 1:+.1%} to "
          f"{max(ratios) - 1:+.1%}); goal at most +5%: {'met' if overhead <= 0.05 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--cases", type=int, default=8, help="the first N cases of each eval set")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--wait", type=float, default=0.0,
                        help="minutes to wait for other local-model servers to end before starting")
    args = parser.parse_args()
    print(f"{datetime.now():%Y-%m-%d %H:%M}, {load()}; {wait_alone(args.wait)}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with local_model(folder, threads=args.threads) as server:
            print(f"local model ready ({server.threads} threads)")
            asyncio.run(run(args, folder, server.port))
            print(f"at the end: {load()}; {wait_alone(0, {server.pid})}")


if __name__ == "__main__":
    main()
