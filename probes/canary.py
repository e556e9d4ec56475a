"""Canary questions: a checkable answer, and a nonce so no cache can answer for the model.

The nonce leads the prompt because prompt caches (the providers', and llama.cpp's own)
match on prefixes: a fresh first token forces a real prefill, so time to first token is
the real one. It is eight decimal digits, which tokenizers split the same way every time,
so every probe's prompt has the same length in tokens and its prefill the same cost. Two sets:

- ``arithmetic`` for chat models: fresh operands each time, so the answer itself cannot
  be cached; the first number in the answer must be the sum.
- ``completion`` for base models without a chat template (the bundled Gemma 3 270M is
  one): a few-shot "capital of" prompt, deterministic at temperature 0; the first word
  of the completion must be the capital.
"""

from __future__ import annotations

import random
import re
import secrets
from dataclasses import dataclass
from typing import Literal

_NUMBER = re.compile(r"-?\d[\d,]*")
_WORD = re.compile(r"[^\W\d_]+")

# Countries whose capital a small base model completes reliably (checked against the bundled
# Gemma 3 270M at temperature 0, nonce-prefixed, see tests/probes/test_local_model.py).
CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Germany": "Berlin", "Spain": "Madrid",
    "England": "London", "Russia": "Moscow", "Egypt": "Cairo",
}
_SHOTS = "The capital of Portugal is Lisbon.\nThe capital of Greece is Athens.\n"


@dataclass(frozen=True, slots=True)
class Canary:
    prompt: str
    expected: int | str
    nonce: str
    kind: Literal["number", "word"] = "number"

    def check(self, answer: str) -> bool:
        """True when the first number (or word) in the answer is the expected one."""
        if self.kind == "word":
            match = _WORD.search(answer)
            return match is not None and match.group().casefold() == str(self.expected).casefold()
        match = _NUMBER.search(answer)
        return match is not None and match.group().replace(",", "") == str(self.expected)


def new_nonce() -> str:
    return f"{secrets.randbelow(10**8):08d}"


def arithmetic(rng: random.Random | None = None) -> Canary:
    rng = rng or random.Random()
    a, b = rng.randint(100, 999), rng.randint(100, 999)
    nonce = new_nonce()
    prompt = f"[probe {nonce}] What is {a} plus {b}? Reply with the number only."
    return Canary(prompt=prompt, expected=a + b, nonce=nonce)


def completion(rng: random.Random | None = None) -> Canary:
    rng = rng or random.Random()
    country = rng.choice(sorted(CAPITALS))
    nonce = new_nonce()
    prompt = f"[probe {nonce}]\n{_SHOTS}The capital of {country} is"
    return Canary(prompt=prompt, expected=CAPITALS[country], nonce=nonce, kind="word")


CANARIES = {"arithmetic": arithmetic, "completion": completion}

_QUESTION = re.compile(r"What is (-?\d+) plus (-?\d+)\?")
_CAPITAL = re.compile(r"The capital of (\w+) is$")


def solve(prompt: str) -> str | None:
    """The right answer to a canary prompt (the emulator uses this to answer like a good model)."""
    if match := _QUESTION.search(prompt):
        return str(int(match.group(1)) + int(match.group(2)))
    if (match := _CAPITAL.search(prompt.rstrip())) and match.group(1) in CAPITALS:
        return " " + CAPITALS[match.group(1)]
    return None
