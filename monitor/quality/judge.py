"""The judge backend: a model that grades answers for ``judge`` checks (LLM as judge).

Two questions, each one generation at temperature 0 over `probes.generate` (the probes' dialects,
timing and error handling, so any configured target can judge):

- `Judge.pairwise`: which of two answers to a question better meets a rubric. The ``judge`` check
  asks it twice with the order swapped and averages, to cancel the judge's position bias (Zheng et
  al. 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena", NeurIPS Datasets and
  Benchmarks, arXiv:2306.05685, §3.3 on position bias, §3.4 on swapping positions: a verdict that
  flips with the order counts as a tie). The prompt follows their pairwise prompt.
- `Judge.grade`: whether one answer meets the rubric (PASS or FAIL), when there is no reference.

The judge must end with one line, ``VERDICT: A|B|TIE`` (or ``PASS|FAIL``); `read_verdict` reads that
last line only, case-insensitively, and anything else is no verdict (``None``): an answer the judge
gives that cannot be read is never taken as a pass or a failure. Neither method raises (cancellation
aside): a failing backend is ``None`` too, and the ``rule_*`` forms say why.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import httpx

from probes import Conversation, Target, generate

Choice = Literal["first", "second", "tie"]
T = TypeVar("T")
MAX_TEXT = 20_000  # characters of a question or an answer put before the judge; beyond, cut and said so

PAIRWISE_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI "
    "assistants to the user question displayed below. Choose the assistant whose response better does "
    "what the rubric asks. Begin by comparing the two responses and give a short explanation, at most "
    "three sentences. Avoid any position bias: the order in which the responses are presented must not "
    "influence your decision. Do not let the length of the responses influence you, nor the names of "
    "the assistants. Be as objective as possible. Then, on the last line and nothing after it, give your "
    "verdict in exactly this form: \"VERDICT: A\" if assistant A is better, \"VERDICT: B\" if assistant B "
    "is better, or \"VERDICT: TIE\" if they are equally good."
)
GRADE_SYSTEM = (
    "Please act as an impartial judge and decide whether the response of an AI assistant to the user "
    "question displayed below does what the rubric asks. Give a short explanation, at most three "
    "sentences. Be as objective as possible, and do not let the length of the response influence you. "
    "Then, on the last line and nothing after it, give your verdict in exactly this form: "
    "\"VERDICT: PASS\" if the response meets the rubric, or \"VERDICT: FAIL\" if it does not."
)
_VERDICT = re.compile(r"verdict\s*:\s*\[*\s*([a-z]+)\s*\]*", re.IGNORECASE)
_DECORATION = " \t*_`#>"


@dataclass(frozen=True, slots=True)
class Ruling(Generic[T]):
    """A judge's answer: ``value`` (None: no verdict) and ``detail``, one line saying what the judge
    said (its explanation's last sentence) or why there is no verdict."""

    value: T | None
    detail: str


def read_verdict(text: str, allowed: tuple[str, ...]) -> str | None:
    """The verdict on the last non-empty line of ``text`` (``VERDICT: X``, X in ``allowed``, any case;
    markdown emphasis and a final full stop tolerated), upper-cased; ``None`` for anything else."""
    lines = [line for line in text.splitlines() if line.strip(_DECORATION)]
    if not lines:
        return None
    last = lines[-1].strip(_DECORATION).rstrip(".").strip(_DECORATION)
    match = _VERDICT.fullmatch(last)
    value = match.group(1).upper() if match else None
    return value if value in allowed else None


class Judge:
    """A judge backend: a `Target` (a hosted model with a key, or a bigger local model; never the
    backend being judged), the shared client, and the answer's token budget."""

    def __init__(self, *, target: Target, client: httpx.AsyncClient, max_tokens: int = 256) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens: at least 1, got {max_tokens}")
        self.target = target
        self.client = client
        self.max_tokens = max_tokens

    @property
    def name(self) -> str:
        return self.target.name

    async def pairwise(self, *, question: str, rubric: str, first: str, second: str) -> Choice | None:
        """Which answer the judge prefers, ``first`` shown as A and ``second`` as B; None: no verdict."""
        return (await self.rule_pairwise(question=question, rubric=rubric, first=first, second=second)).value

    async def grade(self, *, question: str, rubric: str, answer: str) -> bool | None:
        """Whether the judge finds that ``answer`` meets ``rubric``; None: no verdict."""
        return (await self.rule_grade(question=question, rubric=rubric, answer=answer)).value

    async def rule_pairwise(self, *, question: str, rubric: str, first: str, second: str) -> Ruling[Choice]:
        """`pairwise`, with what the judge said or why it gave no verdict."""
        prompt = (f"[Rubric]\n{_cut(rubric)}\n\n[User Question]\n{_cut(question)}\n\n"
                  f"[The Start of Assistant A's Answer]\n{_cut(first)}\n[The End of Assistant A's Answer]\n\n"
                  f"[The Start of Assistant B's Answer]\n{_cut(second)}\n[The End of Assistant B's Answer]")
        ruling = await self._ask(PAIRWISE_SYSTEM, prompt, ("A", "B", "TIE"))
        choice: Choice | None = {"A": "first", "B": "second", "TIE": "tie"}.get(ruling.value or "")  # type: ignore[assignment]
        return Ruling(choice, ruling.detail)

    async def rule_grade(self, *, question: str, rubric: str, answer: str) -> Ruling[bool]:
        """`grade`, with what the judge said or why it gave no verdict."""
        prompt = (f"[Rubric]\n{_cut(rubric)}\n\n[User Question]\n{_cut(question)}\n\n"
                  f"[The Start of the Assistant's Answer]\n{_cut(answer)}\n[The End of the Assistant's Answer]")
        ruling = await self._ask(GRADE_SYSTEM, prompt, ("PASS", "FAIL"))
        return Ruling(None if ruling.value is None else ruling.value == "PASS", ruling.detail)

    async def _ask(self, system: str, prompt: str, allowed: tuple[str, ...]) -> Ruling[str]:
        try:
            conversation = Conversation(messages=(("user", prompt),), system=system,
                                        max_tokens=self.max_tokens, temperature=0.0)
            generation = await generate(self.target, conversation, client=self.client)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # generate never raises; a defect here must still not fail a case
            return Ruling(None, f"judge backend {self.name!r} could not be asked: {type(exc).__name__}")
        result = generation.result
        if not generation.ok:
            message = _one_line(result.message, 120)
            if result.http_status and f"HTTP {result.http_status}" not in message:
                message = f"HTTP {result.http_status}: {message}".rstrip(": ")
            return Ruling(None, f"judge backend {self.name!r} failed: {result.error_kind}"
                                + (f": {message}" if message else ""))
        value = read_verdict(generation.text, allowed)
        if value is None:
            lines = [line for line in generation.text.splitlines() if line.strip()]
            last = _one_line(lines[-1], 80) if lines else ""
            return Ruling(None, f"judge backend {self.name!r} gave no final 'VERDICT: {'|'.join(allowed)}' line "
                                f"(last line {last!r}; max_tokens {self.max_tokens})")
        return Ruling(value, _explanation(generation.text))


def _cut(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}\n[... {len(text) - MAX_TEXT} more characters not shown]"


def _one_line(text: str, limit: int) -> str:
    flat = " ".join("".join(c if c.isprintable() else " " for c in text[: limit * 4]).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def _explanation(text: str) -> str:
    """The judge's reasoning in brief: the last sentence before its verdict line."""
    lines = [line for line in text.splitlines() if line.strip(_DECORATION)][:-1]
    body = " ".join(" ".join(lines).split())
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", body) if s]
    return _one_line(sentences[-1], 120) if sentences else ""
