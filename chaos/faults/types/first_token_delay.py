"""``first_token_delay``: the answer is held back once, before its first byte (`DelayHead`).

Delays add up across faults, into the plan's ``first_token_delay_s``; where each injection point
applies it is `chaos.faults.wire`'s to say."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import DelayHead


@register
class FirstTokenDelay(FaultType):
    name = "first_token_delay"
    category = "timing"
    doc = "hold the first token back by delay_ms (+ uniform jitter_ms)"
    params: ClassVar[dict[str, Any]] = {"delay_ms": 2000, "jitter_ms": 0}

    def timing(self, fault: FaultLike, rng: random.Random) -> DelayHead:
        jitter = fault.params["jitter_ms"]
        return DelayHead((fault.params["delay_ms"] + rng.uniform(0, jitter)) / 1000)
