"""An emulated route's latency profile: how a healthy route behaves (`chaos.emulator` follows it,
the control API's ``profiles`` verbs and timelines change it, checked by `Profile.check`).

Its own module so that the emulator and its control API (`chaos.control`, which the emulator
mounts) both import it without importing each other. `chaos.emulator.Profile` is the same class.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True)
class Profile:
    """How a healthy route behaves. Times in ms; sigma is the lognormal spread (0: fixed)."""

    ttft_ms: float = 150.0
    ttft_sigma: float = 0.0
    token_gap_ms: float = 15.0
    tokens: int = 12  # answer length in tokens, capped by the request's max_tokens

    def sample_ttft(self, rng: random.Random) -> float:
        base = self.ttft_ms / 1000
        return base * math.exp(rng.gauss(0, self.ttft_sigma)) if self.ttft_sigma else base

    @classmethod
    def check(cls, key: Any, value: Any) -> None:
        """Refuse a field this profile has not, or a value outside its range (finite numbers only:
        an infinite TTFT would hold every request, a huge sigma overflows per request)."""
        if key not in cls.__dataclass_fields__:
            raise ValueError(f"profile.{str(key)[:60]}: unknown field (known: {', '.join(cls.__dataclass_fields__)})")
        top = _PROFILE_MAX[key]
        if (not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)
                or not 0 <= value <= top):
            raise ValueError(f"profile.{key}: must be a number from 0 to {top:g}, got {str(value)[:60]}")
        if key == "tokens" and value != int(value):
            raise ValueError(f"profile.tokens: must be a whole number, got {value!r}")

    def update(self, data: dict[str, Any]) -> None:
        """Apply ``data`` whole, or (`ValueError`, naming the field) none of it."""
        for key, value in data.items():
            self.check(key, value)
        for key, value in data.items():
            setattr(self, key, type(getattr(self, key))(value))


_PROFILE_MAX = {"ttft_ms": 3_600_000, "ttft_sigma": 5.0, "token_gap_ms": 60_000, "tokens": 100_000}


def profile_dict(profile: Profile) -> dict[str, Any]:
    return asdict(profile)


__all__ = ["Profile", "profile_dict"]
