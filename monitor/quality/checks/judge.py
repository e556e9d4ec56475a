"""``judge``: an LLM judges the answer against a rubric (the judge backend: `monitor.quality.judge`).

With the case's reference answer, pairwise: the judge compares the answer with the reference twice,
once with each shown first, to cancel its position bias (Zheng et al. 2023, "Judging LLM-as-a-Judge
with MT-Bench and Chatbot Arena", §3.3-3.4). Each order gives the answer 1 for a win, 0.5 for a tie,
0 for a loss; the score is their mean, a pass when it reaches ``threshold`` (0.5: as good as the
reference). Two orders that disagree outright (a win and a loss) are the judge's position bias, not a
view of the answer: they average to a tie and the reason says "inconsistent".

Without a reference, one absolute grading: does the answer do what the rubric asks (PASS or FAIL)?

No judge configured, a judge backend that fails, or a verdict that cannot be read: unjudged, with the
reason; never a pass, never a failure. This check never raises.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated, Literal

from annotated_types import Interval, MaxLen
from pydantic import Field, field_validator

from monitor.quality.checks.base import Check, Context, Verdict, register

if TYPE_CHECKING:
    from monitor.quality.judge import Judge

_POINTS = {"first": 1.0, "tie": 0.5, "second": 0.0}  # for the answer when it is shown first
_WORD = {1.0: "won", 0.5: "tied", 0.0: "lost"}


@register
class JudgeCheck(Check):
    name = "judge"
    type: Literal["judge"] = "judge"
    rubric: Annotated[str, MaxLen(4000)]
    """What a good answer does, in words the judge model reads."""
    threshold: Annotated[float, Interval(ge=0, le=1), Field(allow_inf_nan=False)] = 0.5

    @field_validator("rubric")
    @classmethod
    def _not_blank(cls, rubric: str) -> str:
        if not rubric.strip():
            raise ValueError("must say what a good answer does")
        return rubric

    def run(self, answer: str, ctx: Context) -> Verdict:
        return Verdict.unjudged("judge: runs through evaluate(), since it must wait on the judge backend")

    async def evaluate(self, answer: str, ctx: Context) -> Verdict:
        try:
            if ctx.judge is None:
                return Verdict.unjudged("judge: no judge backend configured (quality.judge in airisk.yaml)")
            if ctx.reference:
                return await self._pairwise(ctx.judge, answer, ctx.reference, question(ctx))
            return await self._grade(ctx.judge, answer, question(ctx))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a defect anywhere must leave the case unjudged, not failed
            return Verdict.unjudged(f"judge: could not judge: {type(exc).__name__}: {str(exc)[:120]}")

    async def _pairwise(self, judge: Judge, answer: str, reference: str, asked: str) -> Verdict:
        ahead, behind = await asyncio.gather(
            judge.rule_pairwise(question=asked, rubric=self.rubric, first=answer, second=reference),
            judge.rule_pairwise(question=asked, rubric=self.rubric, first=reference, second=answer),
        )
        for order, ruling in (("answer first", ahead), ("reference first", behind)):
            if ruling.value is None:
                return Verdict.unjudged(f"judge ({order}): {ruling.detail}")
        first, second = _POINTS[ahead.value], 1.0 - _POINTS[behind.value]
        score = (first + second) / 2
        found = (f"against the reference the answer {_WORD[first]} shown first and {_WORD[second]} shown "
                 f"second: score {score:.2f}")
        if {first, second} == {0.0, 1.0}:
            found += " (inconsistent: the judge preferred whichever came first/second, counted as a tie)"
        if score >= self.threshold:
            return Verdict.ok(f"{found}, at least {self.threshold:g}", score)
        return Verdict.fail(f"{found}, under {self.threshold:g}", score)

    async def _grade(self, judge: Judge, answer: str, asked: str) -> Verdict:
        ruling = await judge.rule_grade(question=asked, rubric=self.rubric, answer=answer)
        if ruling.value is None:
            return Verdict.unjudged(f"judge: {ruling.detail}")
        why = f": {ruling.detail}" if ruling.detail else ""
        if ruling.value:
            return Verdict.ok(f"the judge finds it meets the rubric{why}")
        return Verdict.fail(f"the judge finds it misses the rubric{why}")


def question(ctx: Context) -> str:
    """What the answer answered, as the judge reads it: the case's conversation, or its HTTP request."""
    case = ctx.case
    if case is None:
        return "(the question is not recorded; judge the answer by the rubric alone)"
    if case.messages:
        head = f"[System prompt]\n{case.system}\n\n" if case.system else ""
        if len(case.messages) == 1:
            return head + case.messages[0].content
        return head + "\n\n".join(f"{m.role.capitalize()}: {m.content}" for m in case.messages)
    if case.http is not None:
        body = "" if case.http.json_body is None else " " + json.dumps(case.http.json_body, ensure_ascii=False)[:4000]
        return f"{case.http.method} {case.http.path}{body}"
    return case.prompt
