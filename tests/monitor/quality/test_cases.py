"""Eval files (`monitor.quality.cases`): what a good line becomes, and every bad line named at once as
``file:line: field: problem``; no input, however broken, raises anything but `CaseError`."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.quality import cases as cases_module
from monitor.quality.cases import CaseError, load_cases, parse_cases
from monitor.quality.checks.contains import Contains
from monitor.quality.checks.length import Length

ASK = [{"role": "user", "content": "Describe: trail running shoes"}]
CHECK = [{"type": "contains", "value": "shoes"}]


def line(**fields) -> bytes:
    return json.dumps({"messages": ASK, "checks": CHECK, **fields}).encode()


def problems(raw: bytes | str, source: str = "evals/chat.jsonl") -> list[str]:
    with pytest.raises(CaseError) as exc:
        parse_cases(raw, source=source)
    assert str(exc.value) == "\n".join(exc.value.problems)
    return exc.value.problems


def test_a_good_file_gives_its_cases(tmp_path):
    path = tmp_path / "desc.jsonl"
    path.write_bytes(b"\n".join([
        line(id="desc-1", system="You write product copy.", params={"max_tokens": 120, "temperature": 0},
             reference="Light shoes.", tags=["shoes"],
             checks=[{"type": "contains", "value": "shoes"}, {"type": "length", "max_words": 80}]),
        b"",
        b"   ",
        json.dumps({"http": {"path": "/api/description", "json": {"product": "shoes"}, "answer": "text"},
                    "checks": CHECK}).encode(),
    ]) + b"\n")
    first, second = load_cases(path)
    assert first.id == "desc-1"
    assert first.source == f"{path}:1"
    assert first.system == "You write product copy."
    assert first.params.max_tokens == 120
    assert first.reference == "Light shoes."
    assert first.tags == ("shoes",)
    assert first.prompt == "Describe: trail running shoes"
    assert isinstance(first.checks[0], Contains) and isinstance(first.checks[1], Length)
    assert first.checks[1].max_words == 80
    assert second.id == "line-4"  # no id: named by its line
    assert second.http.path == "/api/description"
    assert second.http.json_body == {"product": "shoes"}
    assert second.prompt == "/api/description"


def test_every_bad_line_is_named_at_once_with_its_field():
    raw = b"\n".join([
        line(id="a"),
        b"not json",
        b"[1, 2]",
        line(id="a"),
        line(checks=[{"type": "nope"}]),
        line(checks=[{"type": "length", "min_words": 5, "max_words": 1}]),
        json.dumps({"checks": CHECK}).encode(),
        json.dumps({"messages": [{"role": "bot", "content": ""}], "checks": []}).encode(),
        line(messages=[*ASK, {"role": "assistant", "content": "ok"}]),
        line(params={"max_tokens": 0, "temperature": 5}, extra=1),
        json.dumps({"http": {"path": "api"}, "checks": CHECK}).encode(),
        line(checks=["contains"]),
        line(checks=[{"type": "regex", "pattern": "("}, {"type": "json_schema", "schema": {"type": "x"}}]),
        line(checks=[{"type": "contains", "value": "x", "bogus": 1}]),
    ])
    assert problems(raw) == [
        "evals/chat.jsonl:2: not JSON: Expecting value: line 1 column 1 (char 0)",
        "evals/chat.jsonl:3: a case is a JSON object, got list",
        "evals/chat.jsonl:4: id: 'a' is already the case on line 1",
        "evals/chat.jsonl:5: checks.0: unknown check type 'nope' (known: contains, equals, json_schema, judge, "
        "length, no_refusal, number, one_of, rank, regex, similar)",
        "evals/chat.jsonl:6: checks.0.max_words: 1 is under min_words (5)",
        "evals/chat.jsonl:7: (case): give 'messages' (what the feature sends its model), 'http' (the product's own "
        "request), or both",
        "evals/chat.jsonl:8: messages.0.role: Input should be 'system', 'user' or 'assistant'",
        "evals/chat.jsonl:8: messages.0.content: String should have at least 1 character",
        "evals/chat.jsonl:8: checks: List should have at least 1 item after validation, not 0",
        "evals/chat.jsonl:9: (case): messages: the last message must be the user's",
        "evals/chat.jsonl:10: params.max_tokens: Input should be greater than or equal to 1",
        "evals/chat.jsonl:10: params.temperature: Input should be less than or equal to 2",
        "evals/chat.jsonl:10: extra: Extra inputs are not permitted",
        "evals/chat.jsonl:11: http.path: must start with / and hold no control characters",
        "evals/chat.jsonl:12: checks.0: a check is an object with a 'type', got str",
        "evals/chat.jsonl:13: checks.0.pattern: bad regular expression '(': missing ), unterminated subpattern at "
        "position 0",
        "evals/chat.jsonl:13: checks.1.schema: not a valid JSON Schema: 'x' is not valid under any of the given "
        "schemas (at $.type)",
        "evals/chat.jsonl:14: checks.0.bogus: Extra inputs are not permitted",
    ]


@pytest.mark.parametrize("check, problem", [
    ({"type": "equals", "value": " "}, "checks.0.value: must hold some text"),
    ({"type": "number", "value": 3}, "checks.0: give abs_tol, rel_tol or both"),
    ({"type": "one_of", "labels": ["a"], "min_overlap": 0.5}, "checks.0: min_overlap applies only with multi: true"),
    ({"type": "similar", "threshold": 2}, "checks.0.threshold: Input should be less than or equal to 1"),
    ({"type": "length"}, "checks.0: give at least one of min_chars"),
    ({"type": "no_refusal", "extra": ["(x"]}, "checks.0.extra.0: bad regular expression '(x'"),
    ({"type": "rank", "expected": "x", "top": 0}, "checks.0.top: Input should be greater than or equal to 1"),
    ({"type": "judge", "rubric": ""}, "checks.0.rubric: must say what a good answer does"),
    ({"type": "json_schema", "schema": {"$schema": "nope"}}, "checks.0.schema: $schema 'nope' names no JSON Schema"),
    ({"type": ["contains"]}, "checks.0: unknown check type ['contains']"),
    ({}, "checks.0: unknown check type None"),
])
def test_a_bad_check_setting_names_the_check_and_field(check, problem):
    (found,) = problems(line(checks=[check]), source="f.jsonl")
    assert found.startswith(f"f.jsonl:1: {problem}")


def test_an_empty_file_has_no_cases():
    assert problems(b"\n \n", source="empty.jsonl") == ["empty.jsonl: no cases (one JSON object a line)"]


def test_a_line_too_long_and_nesting_too_deep():
    found = problems(b"[" * 100_000 + b"\n" + line(id="x" * 300))
    assert found[0].startswith("evals/chat.jsonl:1: not JSON: ")
    assert found[1] == "evals/chat.jsonl:2: id: String should have at most 200 characters"
    (big,) = problems(b'{"x": "' + b"a" * cases_module.MAX_LINE_BYTES + b'"}')
    assert big == (f"evals/chat.jsonl:1: {cases_module.MAX_LINE_BYTES + 9} bytes on one line, more than a case may "
                   f"hold ({cases_module.MAX_LINE_BYTES})")


def test_load_cases_names_a_missing_or_oversized_file(tmp_path, monkeypatch):
    with pytest.raises(CaseError, match=r"missing\.jsonl: cannot be read: No such file or directory"):
        load_cases(tmp_path / "missing.jsonl")
    path = tmp_path / "big.jsonl"
    path.write_bytes(line() + b"\n" + line())
    monkeypatch.setattr(cases_module, "MAX_FILE_BYTES", 10)
    with pytest.raises(CaseError, match=r"big\.jsonl: \d+ bytes, more than an eval file may hold \(10\)"):
        load_cases(path)


def test_too_many_cases_stops_with_a_problem(monkeypatch):
    monkeypatch.setattr(cases_module, "MAX_CASES", 2)
    found = problems(b"\n".join(line(id=str(i)) for i in range(5)))
    assert found == ["evals/chat.jsonl:3: more than 2 cases in one file"]


# -- hypothesis: nothing but CaseError ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=10)
check_entries = st.fixed_dictionaries({"type": st.sampled_from(
    ["contains", "equals", "regex", "one_of", "number", "similar", "length", "no_refusal", "json_schema", "rank",
     "judge", "nope"])}, optional={k: json_values for k in ("value", "pattern", "labels", "schema", "multi",
                                                             "min_overlap", "abs_tol", "top", "rubric", "extra")})
case_like = st.fixed_dictionaries({}, optional={
    "id": st.text(max_size=10) | json_values,
    "system": st.text(max_size=10) | json_values,
    "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "x"]),
                                                "content": st.text(max_size=20)}), max_size=3) | json_values,
    "params": st.dictionaries(st.sampled_from(["max_tokens", "temperature", "top_p", "stop", "x"]), json_values,
                              max_size=3),
    "http": st.dictionaries(st.sampled_from(["method", "path", "json", "answer", "x"]), json_values, max_size=3),
    "checks": st.lists(check_entries | json_values, max_size=3) | json_values,
    "reference": st.text(max_size=20) | json_values,
    "tags": json_values,
})


def _only_case_errors(raw: bytes) -> None:
    try:
        cases = parse_cases(raw, source="fuzz.jsonl")
    except CaseError as exc:
        assert exc.problems
        assert all(p.startswith("fuzz.jsonl") for p in exc.problems)
        return
    assert cases


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_case_error(raw):
    _only_case_errors(raw)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(case_like | json_values, min_size=1, max_size=4))
def test_arbitrary_json_lines_raise_only_case_error(objects):
    _only_case_errors(b"\n".join(json.dumps(o).encode() for o in objects))
