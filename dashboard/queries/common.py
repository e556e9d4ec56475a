"""Small helpers the page queries share: frames with fixed columns, safe URLs, causes in words."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd


def frame(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame of ``rows`` with exactly ``columns`` (in that order), also when there are no rows."""
    rows = list(rows)
    df = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=list(columns))
    return df


def safe_url(url: str | None) -> str:
    """``url`` without user, password, query or fragment: what may be shown to anyone."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def describe_cause(cause: Mapping[str, Any] | None) -> str:
    """An incident's cause in one line: the rule, the error kinds and the values that crossed a threshold."""
    if not cause:
        return ""
    parts = []
    if rule := cause.get("rule"):
        parts.append(str(rule))
    kinds = cause.get("kinds")
    if isinstance(kinds, Mapping) and kinds:
        parts.append(", ".join(f"{k} ×{n}" for k, n in kinds.items()))
    elif isinstance(kinds, list | tuple) and kinds:
        parts.append(", ".join(map(str, kinds)))
    for key, value in cause.items():
        if key in ("rule", "kinds") or isinstance(value, Mapping | list | tuple):
            continue
        parts.append(f"{key}={value}")
    return "; ".join(parts)


def duration_text(seconds: float | None) -> str:
    """``"3h 12m"``, ``"45s"``; empty for None."""
    if seconds is None:
        return ""
    s = round(abs(seconds))
    sign = "-" if seconds < 0 else ""
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{sign}{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{sign}{s // 86400}d {s % 86400 // 3600:02d}h"
