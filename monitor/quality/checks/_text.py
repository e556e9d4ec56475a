"""Small text helpers the checks share: how a value is quoted in a reason, how a list is read."""

from __future__ import annotations

import json
import re

QUOTES = "\"'`\u2018\u2019\u201c\u201d\u00ab\u00bb*_"
FINAL_PUNCT = ".!?,;:\u3002"
_MARKER = re.compile(r"^\s*(?:[-*+\u2022\u2013]|\d{1,3}[.)]|\(\d{1,3}\)|#\d{1,3}[.:]?)\s+")
_SPACE = re.compile(r"\s+")
MAX_ITEMS = 1000  # items read from one answer: a list check never needs more, and a huge list costs


def quote(text: str, limit: int = 60) -> str:
    """``text`` as a reason shows it: repr'd, on one line, cut to ``limit`` characters."""
    flat = _SPACE.sub(" ", text).strip()
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "\u2026")


def squash(text: str) -> str:
    """Whitespace stripped and collapsed to single spaces."""
    return _SPACE.sub(" ", text).strip()


def label(text: str) -> str:
    """A label as compared: trimmed of whitespace, quotes and final punctuation, case-folded."""
    text = squash(text)
    previous = None
    while previous != text:
        previous = text
        text = text.strip().strip(QUOTES).rstrip(FINAL_PUNCT)
    return text.casefold()


def strip_marker(line: str) -> str:
    """A list line without its bullet or number ("- ", "2. ", "(3) ")."""
    return _MARKER.sub("", line, count=1).strip()


def split_items(text: str) -> list[str]:
    """The items of a list answer: a JSON array, else one a line (bullets and numbers dropped), else
    comma-separated. Empty items are dropped; at most `MAX_ITEMS`."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, list):
            return [s for s in (item_text(v).strip() for v in data[:MAX_ITEMS]) if s]
    lines = [strip_marker(line) for line in stripped.splitlines()]
    lines = [line for line in lines if line]
    parts = lines if len(lines) > 1 else [p.strip() for p in stripped.split(",")]
    return [p for p in parts if p][:MAX_ITEMS]


def item_text(value: object) -> str:
    """One list item as text: a string, a number, or a dict's name/title/label/id/item; else empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("name", "title", "label", "id", "item"):
            if isinstance(value.get(key), str | int | float) and not isinstance(value.get(key), bool):
                return str(value[key])
        return ""
    if value is None or isinstance(value, list | bool):
        return ""
    return str(value)


def compile_pattern(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """``pattern`` compiled, or ValueError naming it and what is wrong."""
    try:
        return re.compile(pattern, flags)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        where = f" at position {exc.pos}" if isinstance(exc, re.error) and exc.pos is not None else ""
        message = exc.msg if isinstance(exc, re.error) else str(exc) or type(exc).__name__
        raise ValueError(f"bad regular expression {quote(pattern)}: {message}{where}") from None
