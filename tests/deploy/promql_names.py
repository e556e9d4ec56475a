"""The metric names a PromQL expression reads, so a test can hold the shipped rules and dashboard
to what `/metrics` really exposes.

No PromQL parser is packaged for Python (promtool checks syntax but does not list names), and the
expressions here are ours, so a small lexer suffices: strings, label matchers, ranges, grouping
clauses and Grafana's `$variables` are taken out first; what is left is names, function calls
(a name before "("), keywords and numbers. A selector by `__name__` is refused rather than
guessed at.
"""

from __future__ import annotations

import re

KEYWORDS = frozenset({
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right",
    "inf", "nan", "atan2",
})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![\w:.])[A-Za-z_:][\w:]*")


class PromQLError(ValueError):
    """An expression this lexer will not read (a `__name__` selector)."""


def metric_names(expr: str) -> set[str]:
    """Every metric name ``expr`` selects, in any position (a bare name or one before ``{``)."""
    text = _STRING.sub(" '' ", expr)
    if "__name__" in text:
        raise PromQLError(f"selects by __name__, which this check cannot follow: {expr!r}")
    text = _GRAFANA_VAR.sub(" 0 ", text)
    text = _BRACES.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        rest = text[match.end():].lstrip()
        if rest.startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() in KEYWORDS:
            continue
        names.add(match.group())
    return names


def label_values_metric(query: str) -> str:
    """The series selector of a Grafana ``label_values(selector, label)`` variable query."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query, flags=re.S)
    if not match:
        raise PromQLError(f"not a label_values(selector, label) query: {query!r}")
    return match.group(1)
