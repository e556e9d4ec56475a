"""Canary questions: a checkable answer, and a nonce so no cache can answer for the model.

The nonce leads the prompt because provider prompt caches match on prefixes: a fresh
first token forces a real prefill, so time to first token is the provider's real one.
Fresh operands each time make the answer itself uncacheable too.
"""

from __future__ import annotations

import random
import re
import secrets
from dataclasses import dataclass

_NUMBER = re.compile(r"-?\d[\d,]*")


@dataclass(frozen=True, slots=True)
class Canary:
    prompt: str
    expected: int
    nonce: str

    def check(self, answer: str) -> bool:
        """True when the first number in the answer is the expected one."""
        match = _NUMBER.search(answer)
        return match is not None and match.group().replace(",", "") == str(self.expected)


def arithmetic(rng: random.Random | None = None) -> Canary:
    rng = rng or random.Random()
    a, b = rng.randint(100, 999), rng.randint(100, 999)
    nonce = secrets.token_hex(4)
    prompt = f"[probe {nonce}] What is {a} plus {b}? Reply with the number only."
    return Canary(prompt=prompt, expected=a + b, nonce=nonce)


_QUESTION = re.compile(r"What is (-?\d+) plus (-?\d+)\?")


def solve(prompt: str) -> int | None:
    """The answer to a canary prompt (the emulator uses this to answer like a good model)."""
    match = _QUESTION.search(prompt)
    return int(match.group(1)) + int(match.group(2)) if match else None
