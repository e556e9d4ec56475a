"""``slow_tokens``: the answer's chunks are spaced by ``gap_ms`` (`Pace`, the plan's ``token_gap_s``)."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from chaos.faults.catalogue import FaultLike, FaultType, register
from chaos.faults.wire import Pace


@register
class SlowTokens(FaultType):
    name = "slow_tokens"
    category = "timing"
    doc = "gap_ms between chunks instead of the usual token rate"
    params: ClassVar[dict[str, Any]] = {"gap_ms": 500}

    def timing(self, fault: FaultLike, rng: random.Random) -> Pace:
        return Pace(fault.params["gap_ms"] / 1000)
