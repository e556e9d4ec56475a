"""Durations as people write them in `airisk.yaml`: ``30`` (seconds), ``"500ms"``, ``"5m"``, ``"1m30s"``.

`Duration` is the pydantic field type (a float of seconds once validated); `parse_duration` and
`format_duration` are the two directions, so an error can show a value the way it was written.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from annotated_types import Gt
from pydantic import BeforeValidator, WithJsonSchema

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d)")
_WHOLE = re.compile(rf"(?:{_NUMBER}(?:ms|s|m|h|d))+|{_NUMBER}")
HINT = "use e.g. 500ms, 30s, 5m, 1h, 30d"


def parse_duration(value: Any) -> float:
    """Seconds for ``value``.

    Accepts an int or float (seconds), a string of number-and-unit parts with units ms, s, m, h, d
    (``"500ms"``, ``"1.5s"``, ``"1m30s"``), or a bare number string (seconds, as ``${VAR}``
    interpolation produces). Anything else raises ValueError quoting the value and giving examples.
    The sign is not judged here: the field's own bound (> 0) says what is allowed.
    """
    seconds: float | None = None
    # bool is an int subclass, and `interval: yes` is a mistake, not one second.
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and _WHOLE.fullmatch(text := value.strip()):
        parts = _PART.findall(text)
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts) if parts else float(text)
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(f"{json.dumps(value, default=str)} is not a duration ({HINT})")
    return seconds


def format_duration(seconds: float) -> str:
    """``seconds`` the way a user would write it: 0.5 -> "500ms", 90 -> "1m30s", 3600 -> "1h"."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{int(n)}{unit}" for n, unit in ((hours, "h"), (minutes, "m")) if n)
    return text + (f"{round(secs, 3):g}s" if secs or not text else "")


_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "description": "seconds"},
        {"type": "string", "pattern": rf"^\s*(?:(?:{_NUMBER}(?:ms|s|m|h))+|{_NUMBER})\s*$"},
    ],
    "examples": ["500ms", "30s", "5m", "1h", "1m30s", 60],
}

Duration = Annotated[float, BeforeValidator(parse_duration), Gt(0), WithJsonSchema(_SCHEMA)]
"""A positive duration in seconds; the config file may write it as a number or as "30s", "5m", ..."""
