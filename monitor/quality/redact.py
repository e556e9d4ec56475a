"""Redaction: what looks like a secret or personal data becomes ``[REDACTED:<kind>]`` before a captured
request or answer is stored (`airisk proxy --capture`).

Built-in kinds, each found wherever it sits in the text (no word-boundary look-arounds: a key glued
to the word before it is still a key):

- provider keys and tokens: ``anthropic_key`` (``sk-ant-...``), ``openai_key`` (``sk-...``, ``sk-proj-...``),
  ``google_key`` (``AIza...``), ``groq_key``, ``xai_key``, ``huggingface_key``, ``github_token``,
  ``aws_key``, ``jwt``, and ``bearer`` (``Bearer <token>``);
- ``email``;
- ``iban`` (a known country's length, mod-97 checked);
- digit runs of 7 or more digits (spaces, dots, dashes and brackets between them allowed): ``card``
  when 13 to 19 digits pass the Luhn check (and no ``+`` leads them), ``phone`` up to 15 digits,
  ``number`` beyond. Every such run is redacted, Luhn or not: two numbers written next to each other
  are one run, and a card glued to an order number must not come through because the whole fails the
  check. Two shapes are kept, because prompts are full of them and they cannot hide a longer number:
  an ISO date (``2024-01-15``) and a short decimal (at most 6 digits each side of one dot).

``extra`` patterns (``airisk proxy --redact REGEX``, or a file of them) are applied first, as kind
``custom``. Everything here is pure: text in, text out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MAX_DEPTH = 64
"""JSON nested deeper than this is not a request a product sends; `Redactor.json` refuses it."""

_KEYS = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in (
    ("anthropic_key", r"sk-ant-[A-Za-z0-9_\-]{16,}"),
    # Real keys are long and random; a hyphenated word after "sk-" (as in "task-force-...") is neither.
    ("openai_key", r"sk-(?:[A-Za-z0-9_\-]{32,}|(?=[A-Za-z0-9_\-]{0,64}\d)[A-Za-z0-9_\-]{20,})"),
    ("google_key", r"AIza[0-9A-Za-z_\-]{35}"),
    ("groq_key", r"gsk_[A-Za-z0-9]{20,}"),
    ("xai_key", r"xai-[A-Za-z0-9]{20,}"),
    ("huggingface_key", r"hf_[A-Za-z0-9]{30,}"),
    ("github_token", r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
    ("aws_key", r"(?:AKIA|ASIA)[0-9A-Z]{16}"),
    ("jwt", r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    ("bearer", r"(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{16,}"),
)))
_KEY_HINT = re.compile(r"sk-|AIza|gsk_|xai-|hf_|gh[pousr]_|github_pat_|AKIA|ASIA|eyJ|(?i:bearer)")
_SHORTEST = 6  # characters of the shortest built-in kind ("a@b.co"); a shorter text holds none
# Bounded parts: no backtracking blow-up on long runs of word characters without an '@'.
_EMAIL = re.compile(r"[\w.%+\-]{1,64}@(?:[A-Za-z0-9\-]{1,63}\.){1,8}[A-Za-z]{2,24}")
# An opening bracket is part of the number only as an area code's: "(415) 555-0100", not "(1234567)".
_DIGITS = re.compile(r"(?:\+|\(\d{1,4}\)[ .\-]?)?\d(?:[ ().\-]{0,2}\d){6,}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DECIMAL = re.compile(r"\d{1,6}\.\d{1,6}")
_IBAN_START = re.compile(r"(?=[A-Z]{2}[0-9]{2})")
# IBAN length per country (ISO 13616 registry).
_IBAN_LENGTH = {code: int(n) for code, n in (item.split(":") for item in (
    "AD:24 AE:23 AL:28 AT:20 AZ:28 BA:20 BE:16 BG:22 BH:22 BI:27 BR:29 BY:28 CH:21 CR:22 CY:28 CZ:24 DE:22 "
    "DJ:27 DK:18 DO:28 EE:20 EG:29 ES:24 FI:18 FK:18 FO:18 FR:27 GB:22 GE:22 GI:23 GL:18 GR:27 GT:28 HR:21 "
    "HU:28 IE:22 IL:23 IQ:23 IS:26 IT:27 JO:30 KW:30 KZ:20 LB:28 LC:32 LI:21 LT:20 LU:20 LV:21 LY:25 MC:27 "
    "MD:24 ME:22 MK:19 MN:20 MR:27 MT:31 MU:30 NI:28 NL:18 NO:15 OM:23 PK:24 PL:28 PS:29 PT:25 QA:29 RO:24 "
    "RS:22 RU:33 SA:24 SC:31 SD:18 SE:24 SI:19 SK:24 SM:27 SO:23 ST:25 SV:28 TL:23 TN:24 TR:26 UA:29 VA:22 "
    "VG:24 XK:20 YE:30").split())}


def marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


def luhn(digits: str) -> bool:
    """The Luhn check (payment card numbers) over a string of ASCII digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_valid(compact: str) -> bool:
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _digit_run(match: re.Match[str]) -> str:
    run = match.group()
    if _DATE.fullmatch(run) or _DECIMAL.fullmatch(run):
        return run
    digits = "".join(ch for ch in run if ch.isdigit())
    if 13 <= len(digits) <= 19 and run[0] != "+" and digits.isascii() and luhn(digits):
        return marker("card")
    return marker("phone" if len(digits) <= 15 else "number")


def _key(match: re.Match[str]) -> str:
    return marker(match.lastgroup or "key")


def _ibans(text: str) -> str:
    """IBANs (compact, or in groups split by single spaces) of a known country's length that pass mod 97."""
    out: list[str] = []
    done = 0  # text[:done] is settled
    for start_match in _IBAN_START.finditer(text):
        start = start_match.start()
        if start < done:
            continue
        want = _IBAN_LENGTH.get(text[start:start + 2])
        if want is None:
            continue
        compact, i = [], start
        while i < len(text) and len(compact) < want:
            ch = text[i]
            if ("A" <= ch <= "Z") or ("0" <= ch <= "9"):
                compact.append(ch)
            elif not (ch == " " and compact and i + 1 < len(text) and text[i + 1] != " "):
                break
            i += 1
        if len(compact) == want and _iban_valid("".join(compact)):
            out += [text[done:start], marker("iban")]
            done = i
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def parse_patterns(text: str) -> list[str]:
    """The patterns of a ``--redact-file``: one regular expression a line; blank lines and lines starting
    with ``#`` are skipped."""
    return [line for raw in text.splitlines() if (line := raw.strip()) and not line.startswith("#")]


class Redactor:
    """Replaces what looks like a secret or personal data (see the module) with ``[REDACTED:<kind>]``.

    ``extra``: regular expressions of the user's own (kind ``custom``); ValueError names one that does not
    compile."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.extra: list[re.Pattern[str]] = []
        for pattern in extra:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"redaction pattern {pattern!r}: not a regular expression ({exc})") from None
            if compiled.match(""):
                raise ValueError(f"redaction pattern {pattern!r}: matches the empty string")
            self.extra.append(compiled)

    def text(self, value: str) -> str:
        """``value`` with every span of a known kind (and of the extra patterns) replaced."""
        for pattern in self.extra:
            value = pattern.sub(marker("custom"), value)
        if len(value) < _SHORTEST:  # most of a request body's strings: its keys, roles, short values
            return value
        if _KEY_HINT.search(value):
            value = _KEYS.sub(_key, value)
        if "@" in value:
            value = _EMAIL.sub(marker("email"), value)
        value = _ibans(value)
        return _DIGITS.sub(_digit_run, value)

    def json(self, value: Any, _depth: int = 0) -> Any:
        """A parsed JSON document with every string in it (object keys too) redacted; ValueError when it
        nests deeper than `MAX_DEPTH`."""
        if isinstance(value, str):
            return self.text(value)
        if _depth >= MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            return {self.text(str(k)): self.json(v, _depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v, _depth + 1) for v in value]
        return value
