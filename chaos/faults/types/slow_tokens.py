"""``slow_tokens``: the answer's chunks are spaced by ``gap_ms`` (the plan's ``token_gap_s``)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, ClassVar

from chaos.faults.catalogue import FaultType, register

if TYPE_CHECKING:
    from chaos.faults.fault import Fault
    from chaos.faults.plan import Plan


@register
class SlowTokens(FaultType):
    name = "slow_tokens"
    category = "timing"
    doc = "gap_ms between chunks instead of the usual token rate"
    params: ClassVar[dict[str, Any]] = {"gap_ms": 500}

    def join(self, plan: Plan, fault: Fault, rng: random.Random) -> bool:
        plan.token_gap_s = fault.params["gap_ms"] / 1000
        return True
