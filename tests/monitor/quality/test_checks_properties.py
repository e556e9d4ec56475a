"""Properties of every check: on any text, reference and product answer it returns a Verdict with a
score in [0, 1] and never raises; any settings either load or are refused with a validation error."""

from __future__ import annotations

import asyncio
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from monitor.quality.checks import REGISTRY, Context, Verdict, parse_check
from monitor.quality.checks._text import label, split_items
from monitor.quality.checks.json_schema import NoJson, read_json
from monitor.quality.checks.number import first_number
from monitor.quality.judge import Ruling

# One or more instances of every registered check, with settings that exercise each branch.
CHECKS = [parse_check(d) for d in (
    {"type": "equals", "value": "Paris"},
    {"type": "equals", "value": "Paris", "case_sensitive": True},
    {"type": "contains", "value": ["a", "b"]},
    {"type": "contains", "value": "x", "mode": "any", "negate": True},
    {"type": "regex", "pattern": r"\d+(\.\d+)?"},
    {"type": "regex", "pattern": "refund", "ignore_case": True, "must_match": False},
    {"type": "one_of", "labels": ["yes", "no"]},
    {"type": "one_of", "labels": ["a", "b", "c"], "multi": True, "max_items": 2},
    {"type": "one_of", "labels": ["a", "b", "c"], "multi": True, "min_overlap": 0.5},
    {"type": "number", "value": 42, "abs_tol": 0.5},
    {"type": "number", "rel_tol": 0.1},
    {"type": "number", "value": 0, "abs_tol": 0},
    {"type": "similar"},
    {"type": "similar", "method": "partial_ratio", "threshold": 0.9},
    {"type": "similar", "method": "ratio", "threshold": 0},
    {"type": "length", "min_chars": 1, "max_words": 10},
    {"type": "length", "min_words": 3},
    {"type": "no_refusal", "extra": ["contact support"]},
    {"type": "json_schema", "schema": {"type": "object", "required": ["a"]}},
    {"type": "json_schema", "schema": {"type": "array", "items": {"type": "integer"}}},
    {"type": "rank", "expected": "shoes"},
    {"type": "rank", "expected": "a", "top": 1},
    {"type": "judge", "rubric": "Helpful."},
)]

texts = st.text(max_size=400) | st.sampled_from([
    "", " ", "42", "-1,234.5e3", "[1, 2]", '{"a": 1}', "```json\n{}\n```", "a, b, c", "- a\n- b",
    "I can't help with that.",
    "[" * 50, "{" * 50, "\u2212\u0663", "9" * 400, '["x", {"name": "shoes"}, null, [1]]',
])
extras = st.dictionaries(st.sampled_from(["ranked", "text", "other"]),
                         st.lists(st.text(max_size=20) | st.integers() | st.none() | st.dictionaries(
                             st.sampled_from(["name", "id"]), st.text(max_size=10) | st.integers()), max_size=6)
                         | st.text(max_size=20) | st.none(), max_size=2)


def test_every_registered_check_is_exercised():
    assert {c.name for c in CHECKS} == set(REGISTRY)


class FakeJudge:
    """A judge answering from a script: a unit test of the check's arithmetic (the real judge backend is
    tested over a loopback server in test_judge.py)."""

    def __init__(self, rulings):
        self.rulings = list(rulings)

    async def rule_pairwise(self, **_):
        return self.rulings.pop(0)

    async def rule_grade(self, **_):
        value = self.rulings.pop(0).value
        return Ruling(None if value is None else value == "first", "because")


def assert_sound(verdict: Verdict) -> None:
    assert isinstance(verdict, Verdict)
    assert verdict.passed in (True, False, None)
    assert isinstance(verdict.score, float | int) and not isinstance(verdict.score, bool)
    assert 0.0 <= verdict.score <= 1.0
    assert math.isfinite(verdict.score)
    assert isinstance(verdict.reason, str) and verdict.reason
    assert "\n" not in verdict.reason


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=texts, reference=st.none() | texts, extra=extras)
def test_every_check_on_any_text_gives_a_sound_verdict(answer, reference, extra):
    ctx = Context(reference=reference, extra=extra)
    for check in CHECKS:
        if check.name == "judge":
            continue
        assert_sound(check.run(answer, ctx))
        assert_sound(asyncio.run(check.evaluate(answer, ctx)))


@settings(max_examples=200, deadline=None)
@given(answer=texts, reference=st.none() | texts,
       rulings=st.lists(st.sampled_from(["first", "second", "tie", None]), min_size=2, max_size=2))
def test_the_judge_check_on_any_ruling_gives_a_sound_verdict(answer, reference, rulings):
    check = next(c for c in CHECKS if c.name == "judge")
    judge = FakeJudge(Ruling(r, "said so") for r in rulings)
    verdict = asyncio.run(check.evaluate(answer, Context(reference=reference, judge=judge)))
    assert_sound(verdict)
    if None in (rulings if reference else rulings[:1]):
        assert verdict.passed is None  # no verdict from the judge: unjudged, never a pass or a failure


@given(st.text(max_size=300))
def test_first_number_is_a_number_or_none(text):
    value = first_number(text)
    assert value is None or isinstance(value, float)


@given(st.text(max_size=300))
def test_read_json_returns_json_or_says_why_not(text):
    try:
        read_json(text)
    except NoJson as exc:
        assert str(exc)


@given(st.text(max_size=200))
def test_label_is_idempotent(text):
    assert label(label(text)) == label(text)


@given(st.text(max_size=300))
def test_split_items_gives_non_empty_items(text):
    assert all(isinstance(i, str) and i.strip() for i in split_items(text))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                       max_size=4), max_leaves=12)
schema_keys = st.sampled_from(["$schema", "type", "properties", "required", "items", "$ref", "minimum", "enum"])
field_names = st.sampled_from(["value", "case_sensitive", "mode", "negate", "pattern", "ignore_case", "must_match",
                               "labels", "multi", "max_items", "min_overlap", "abs_tol", "rel_tol", "threshold",
                               "method", "min_chars", "max_chars", "min_words", "max_words", "extra", "schema",
                               "expected", "top", "rubric", "names"])


@settings(max_examples=500, deadline=None)
@given(kind=st.sampled_from(sorted(REGISTRY)), fields=st.dictionaries(field_names, json_values, max_size=5),
       schema=st.none() | st.dictionaries(schema_keys, json_values, max_size=4))
def test_any_settings_load_or_are_refused_as_invalid(kind, fields, schema):
    if schema is not None:
        fields["schema"] = schema
    try:
        check = parse_check({"type": kind, **fields})
    except ValidationError:
        return
    assert check.name == kind
    assert_sound(check.run("some answer 12", Context(reference="a reference 12")))
