"""``first_token_delay``: the answer is held back once, before its first byte (DelayHead).

Delays add up across faults, so the effect is the plan's ``first_token_delay_s``; where each
injection point applies it is `chaos.faults.wire`'s to say."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, ClassVar

from chaos.faults.catalogue import FaultType, register

if TYPE_CHECKING:
    from chaos.faults.fault import Fault
    from chaos.faults.plan import Plan


@register
class FirstTokenDelay(FaultType):
    name = "first_token_delay"
    category = "timing"
    doc = "hold the first token back by delay_ms (+ uniform jitter_ms)"
    params: ClassVar[dict[str, Any]] = {"delay_ms": 2000, "jitter_ms": 0}

    def join(self, plan: Plan, fault: Fault, rng: random.Random) -> bool:
        jitter = fault.params["jitter_ms"]
        plan.first_token_delay_s += (fault.params["delay_ms"] + rng.uniform(0, jitter)) / 1000
        return True
