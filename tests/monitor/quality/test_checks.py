"""Each check of the registry: its pass, its failure, its edge cases, the reason it gives, and the
settings it refuses when the eval file loads."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from monitor.quality.cases import parse_cases
from monitor.quality.checks import REGISTRY, Check, Context, UnknownCheck, Verdict, parse_check
from monitor.quality.checks.no_refusal import refusal
from monitor.quality.checks.number import first_number


def check(**data) -> Check:
    return parse_check(data)


def run(data: dict, answer: str, **ctx) -> Verdict:
    return parse_check(data).run(answer, Context(**ctx))


async def evaluate(data: dict, answer: str, **ctx) -> Verdict:
    return await parse_check(data).evaluate(answer, Context(**ctx))


def case_with(prompt: str, **extra):
    line = {"messages": [{"role": "user", "content": prompt}], "checks": [{"type": "length", "max_chars": 9}]}
    line.update(extra)
    return parse_cases(json.dumps(line))[0]


def test_the_registry_holds_every_check_of_the_issue():
    assert set(REGISTRY) == {"equals", "contains", "regex", "one_of", "number", "similar", "length",
                             "no_refusal", "json_schema", "rank", "judge"}
    for name, cls in REGISTRY.items():
        assert cls.name == name
        assert issubclass(cls, Check)


def test_each_check_is_named_by_its_type_field_and_implements_a_verdict():
    for name, cls in REGISTRY.items():
        assert cls.model_fields["type"].default == name
        assert cls.run is not Check.run or cls.evaluate is not Check.evaluate, name


def test_the_package_exports_a_sorted_all():
    import monitor.quality.checks as package

    # isort-style, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    def kind(name: str) -> int:
        return 0 if name.isupper() else 1 if name[0].isupper() else 2

    assert package.__all__ == sorted(package.__all__, key=lambda name: (kind(name), name))
    assert all(hasattr(package, name) for name in package.__all__)


def test_an_unknown_type_names_the_known_ones():
    with pytest.raises(UnknownCheck, match=r"unknown check type 'nope' \(known: contains, equals"):
        parse_check({"type": "nope"})


# -- equals ------------------------------------------------------------------------------------------


def test_equals_compares_after_collapsing_whitespace_and_case():
    assert run({"type": "equals", "value": "New  York"}, "  new york\n").passed is True


def test_equals_case_sensitive_fails_on_case_and_says_what_it_got():
    v = run({"type": "equals", "value": "Paris", "case_sensitive": True}, "paris")
    assert v.passed is False
    assert v.reason == "got 'paris', not 'Paris'"
    assert 0 < v.score < 1  # a near miss scores above nothing


def test_equals_far_off_scores_low():
    assert run({"type": "equals", "value": "Paris"}, "xqz").score < 0.3


def test_equals_refuses_a_blank_value():
    with pytest.raises(ValidationError, match="must hold some text"):
        check(type="equals", value="   ")


# -- contains ----------------------------------------------------------------------------------------


def test_contains_all_and_any():
    assert run({"type": "contains", "value": ["shoe", "trail"]}, "Trail shoes!").passed is True
    v = run({"type": "contains", "value": ["shoe", "road"]}, "Trail shoes")
    assert (v.passed, v.score, v.reason) == (False, 0.5, "missing 'road'")
    assert run({"type": "contains", "value": ["shoe", "road"], "mode": "any"}, "Trail shoes").passed is True


def test_contains_negate_passes_only_when_none_appears():
    never = {"type": "contains", "value": ["refund", "money back"], "negate": True}
    assert run(never, "We can exchange it.").passed is True
    v = run(never, "You will get a full REFUND.")
    assert (v.passed, v.reason) == (False, "contains 'refund'")
    assert v.score == 0.5  # one of two texts kept out


def test_contains_reason_stays_short():
    v = run({"type": "contains", "value": [f"word{i}" for i in range(9)]}, "none")
    assert v.reason == "missing 'word0', 'word1', 'word2', 'word3', 'word4' (and 4 more)"


def test_contains_case_sensitive():
    assert run({"type": "contains", "value": "API", "case_sensitive": True}, "the api").passed is False


# -- regex -------------------------------------------------------------------------------------------


def test_regex_match_says_what_and_where():
    v = run({"type": "regex", "pattern": r"\$\d+"}, "It costs $40 today")
    assert v.passed is True
    assert v.reason == r"matches /\$\d+/: '$40' at character 9"


def test_regex_ignore_case():
    assert run({"type": "regex", "pattern": "^yes"}, "Yes.").passed is False
    assert run({"type": "regex", "pattern": "^yes", "ignore_case": True}, "Yes.").passed is True


def test_regex_must_not_match_fails_with_the_offending_text():
    never = {"type": "regex", "pattern": r"\brefund(ed)?\b", "ignore_case": True, "must_match": False}
    assert run(never, "We will exchange it.").passed is True
    v = run(never, "You'll be Refunded tomorrow")
    assert v.passed is False
    assert "'Refunded' at character 10" in v.reason
    assert "must not" in v.reason


def test_regex_bad_pattern_is_a_load_error_naming_it():
    with pytest.raises(ValidationError) as exc:
        check(type="regex", pattern="(unclosed")
    assert "bad regular expression '(unclosed': missing ), unterminated subpattern at position 0" in str(exc.value)


def test_regex_pattern_is_at_most_1000_characters():
    check(type="regex", pattern="a" * 1000)
    with pytest.raises(ValidationError, match="at most 1000"):
        check(type="regex", pattern="a" * 1001)


# -- one_of ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["positive", "Positive.", ' "POSITIVE" ', "**positive**!", "'positive'\n"])
def test_one_of_trims_quotes_punctuation_and_case(answer):
    assert run({"type": "one_of", "labels": ["positive", "negative"]}, answer).passed is True


def test_one_of_fails_with_what_it_read():
    v = run({"type": "one_of", "labels": ["positive", "negative"]}, "It is positive.")
    assert v.passed is False
    assert v.reason == "'it is positive' is not one of 'positive', 'negative'"


@pytest.mark.parametrize("answer", [
    "shoes, outdoor", "- shoes\n- outdoor", '["Shoes", "outdoor"]', "1. shoes\n2. outdoor"])
def test_one_of_multi_reads_comma_line_and_json_lists(answer):
    v = run({"type": "one_of", "labels": ["shoes", "outdoor", "kitchen"], "multi": True}, answer)
    assert (v.passed, v.score) == (True, 1.0)


def test_one_of_multi_scores_the_share_of_labels():
    v = run({"type": "one_of", "labels": ["shoes", "outdoor"], "multi": True}, "shoes, boats, cars, outdoor")
    assert v.passed is False
    assert v.score == 0.5
    assert v.reason == "2 of 4 items not labels ('boats', 'cars')"


def test_one_of_multi_max_items():
    tags = {"type": "one_of", "labels": ["a", "b", "c"], "multi": True, "max_items": 2}
    assert run(tags, "a, b").passed is True
    v = run(tags, "a, b, c")
    assert v.passed is False
    assert v.reason == "3 items, more than 2"


def test_one_of_multi_empty_answer_fails():
    assert run({"type": "one_of", "labels": ["a"], "multi": True}, " , \n").passed is False


async def test_one_of_min_overlap_is_jaccard_against_the_reference():
    tags = {"type": "one_of", "labels": ["shoes", "outdoor", "running", "kitchen"], "multi": True, "min_overlap": 0.5}
    v = await evaluate(tags, "shoes, running", reference="Shoes, Outdoor, Running")
    assert v.passed is True
    assert v.score == pytest.approx(2 / 3)
    v = await evaluate(tags, "kitchen, shoes", reference="shoes, outdoor, running")
    assert v.passed is False
    assert v.score == pytest.approx(1 / 4)
    assert "overlap 0.25 with the reference's 3, under 0.5" in v.reason


async def test_one_of_min_overlap_without_reference_is_unjudged():
    tags = {"type": "one_of", "labels": ["a"], "multi": True, "min_overlap": 0.5}
    v = await evaluate(tags, "a")
    assert v.passed is None
    assert "reference" in v.reason


@pytest.mark.parametrize("data, message", [
    ({"labels": []}, "at least 1 item"),
    ({"labels": ["ok", "  '.' "]}, "label 1 is blank"),
    ({"labels": ["a"], "max_items": 2}, "max_items applies only with multi: true"),
    ({"labels": ["a"], "min_overlap": 0.5, "max_items": 2}, "max_items and min_overlap apply only with multi"),
    ({"labels": ["a"], "multi": True, "min_overlap": 1.5}, "less than or equal to 1"),
    ({"labels": ["a"], "multi": True, "max_items": 0}, "greater than or equal to 1"),
])
def test_one_of_settings(data, message):
    with pytest.raises(ValidationError, match=message):
        check(type="one_of", **data)


# -- number ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    ("The total is 1,234.50 USD", 1234.5),
    ("-3 degrees", -3.0),
    ("about \u22122.5", -2.5),
    ("+7", 7.0),
    ("2.5e3 units", 2500.0),
    ("costs $.5", 0.5),
    ("COVID-19 cases: 12", 19.0),
    ("H2O is water, 3 litres", 3.0),
    ("range 3-5", 3.0),
    ("12345,678", 12345.0),
    ("no digits here", None),
])
def test_first_number(text, value):
    assert first_number(text) == value


def test_number_within_absolute_tolerance():
    v = run({"type": "number", "value": 42, "abs_tol": 0.5}, "It is 41.6.")
    assert (v.passed, v.reason) == (True, "read 41.6, expected 42 \u00b1 0.5")


def test_number_outside_tolerance_says_by_how_much():
    v = run({"type": "number", "value": 100, "rel_tol": 0.05}, "I'd say 110")
    assert v.passed is False
    assert v.reason == "read 110, expected 100 \u00b1 5 (off by 10)"
    assert v.score == pytest.approx(0.5)


def test_number_either_tolerance_is_enough():
    both = {"type": "number", "value": 1000, "abs_tol": 1, "rel_tol": 0.01}
    assert run(both, "1,009").passed is True  # 1% of 1000


def test_number_missing_in_answer():
    v = run({"type": "number", "value": 1, "abs_tol": 0}, "none")
    assert (v.passed, v.reason) == (False, "no number in 'none'")


async def test_number_from_the_reference():
    data = {"type": "number", "abs_tol": 0}
    assert (await evaluate(data, "=19.99", reference="It costs $19.99.")).passed is True
    assert (await evaluate(data, "20", reference="It costs $19.99.")).passed is False
    assert (await evaluate(data, "20", reference="no number")).passed is None
    assert (await evaluate(data, "20")).passed is None


def test_number_needs_a_tolerance_and_a_finite_value():
    with pytest.raises(ValidationError, match="give abs_tol, rel_tol or both"):
        check(type="number", value=1)
    with pytest.raises(ValidationError, match="finite"):
        check(type="number", value=float("inf"), abs_tol=1)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        check(type="number", value=1, abs_tol=-1)


def test_number_an_overflowing_answer_fails_not_raises():
    v = run({"type": "number", "value": 1, "abs_tol": 1}, "9" * 400)
    assert v.passed is False
    assert v.score == 0.0


# -- similar -----------------------------------------------------------------------------------------


async def test_similar_against_the_reference():
    data = {"type": "similar", "threshold": 0.8}
    v = await evaluate(data, "Lightweight TRAIL running shoes", reference="lightweight trail running shoes with grip")
    assert v.passed is True
    assert v.score == 1.0  # token_set_ratio: one's words all within the other's
    v = await evaluate(data, "A stainless kitchen kettle", reference="lightweight trail running shoes")
    assert v.passed is False
    assert v.reason.startswith("similarity 0.")
    assert v.reason.endswith("to the reference (token_set_ratio), under 0.8")


async def test_similar_methods_differ():
    answer, reference = "shoes running trail", "trail running shoes"
    assert (await evaluate({"type": "similar", "method": "token_sort_ratio"}, answer, reference=reference)).score == 1
    assert (await evaluate({"type": "similar", "method": "ratio"}, answer, reference=reference)).score < 1


async def test_similar_bounds_long_texts_and_says_so():
    reference = "trail running shoes " * 2000  # 40,000 characters
    v = await evaluate({"type": "similar", "method": "partial_ratio"}, reference, reference=reference)
    assert v.passed is True
    assert "(partial_ratio, on the texts cut short)" in v.reason
    short = await evaluate({"type": "similar", "method": "partial_ratio"}, "running shoes", reference=reference[:5000])
    assert short.passed is True
    assert "cut short" not in short.reason


async def test_similar_without_reference_is_unjudged():
    v = await evaluate({"type": "similar"}, "anything")
    assert v.passed is None
    assert "no reference" in v.reason


def test_similar_settings():
    with pytest.raises(ValidationError):
        check(type="similar", threshold=1.2)
    with pytest.raises(ValidationError, match="'ratio', 'token_sort_ratio', 'token_set_ratio' or 'partial_ratio'"):
        check(type="similar", method="jaro")


# -- length ------------------------------------------------------------------------------------------


def test_length_words_over_says_how_many():
    v = run({"type": "length", "max_words": 80}, "word " * 412)
    assert (v.passed, v.reason) == (False, "412 words, more than 80")
    assert v.score == pytest.approx(80 / 412)


def test_length_chars_under_and_every_problem_at_once():
    v = run({"type": "length", "min_chars": 10, "min_words": 3}, "  hi  ")
    assert v.passed is False
    assert v.reason == "2 chars, fewer than 10; 1 words, fewer than 3"


def test_length_within():
    v = run({"type": "length", "min_words": 2, "max_words": 5}, "two words")
    assert (v.passed, v.reason) == (True, "2 words, within bounds")


@pytest.mark.parametrize("data, message", [
    ({}, "give at least one of min_chars, max_chars, min_words, max_words"),
    ({"min_chars": 10, "max_chars": 5}, "5 is under min_chars"),
    ({"min_words": 10, "max_words": 5}, "5 is under min_words"),
    ({"max_words": -1}, "greater than or equal to 0"),
])
def test_length_settings(data, message):
    with pytest.raises(ValidationError, match=message):
        check(type="length", **data)


# -- no_refusal --------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [
    "I'm sorry, but I can't help with that.",
    "I\u2019m sorry, but I cannot assist with this request.",
    "I can't help with that request.",
    "As an AI language model, I do not have opinions.",
    "I am unable to provide that information.",
    "Sorry, I can't.",
    "I must decline to answer.",
    "Unfortunately, I cannot comply with that.",
    "I won't be able to help you with this one.",
    "I apologize, but I can't share internal details.",
    "That's not something I can help with.",
])
def test_no_refusal_catches_refusals(answer):
    v = run({"type": "no_refusal"}, answer)
    assert v.passed is False
    assert v.reason.startswith("a refusal: ")


@pytest.mark.parametrize("answer", [
    "I'm sorry to hear your order was late! It ships today.",
    "Sure: these trail shoes weigh 280 g and grip well on wet rock.",
    "Sorry for the wait. I can help with that: your refund policy is 30 days.",
    "",
])
def test_no_refusal_lets_helpful_answers_pass(answer):
    assert run({"type": "no_refusal"}, answer).passed is True


def test_no_refusal_looks_near_the_start():
    late = "Here is a long, helpful answer. " * 20 + "As an AI, I find this fun."
    assert refusal(late) is None
    assert run({"type": "no_refusal"}, late).passed is True


def test_no_refusal_extra_patterns_anywhere():
    data = {"type": "no_refusal", "extra": [r"contact (our )?support"]}
    v = run(data, "Good question. Please Contact Support for that.")
    assert v.passed is False
    assert "'Contact Support'" in v.reason


def test_no_refusal_settings():
    with pytest.raises(ValidationError, match="bad regular expression"):
        check(type="no_refusal", extra=["[unclosed"])
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        check(type="no_refusal", names=["x"])


# -- json_schema -------------------------------------------------------------------------------------

PRODUCT = {"type": "object", "required": ["name", "price"],
           "properties": {"name": {"type": "string"}, "price": {"type": "number", "minimum": 0}}}


@pytest.mark.parametrize("answer", [
    '{"name": "Shoe", "price": 80}',
    'Here you go:\n```json\n{"name": "Shoe", "price": 80}\n```\nAnything else?',
    "```\n{\"name\": \"Shoe\", \"price\": 80}\n```",
    'Sure! {"name": "Shoe", "price": 80} is the product.',
])
def test_json_schema_reads_json_wherever_models_put_it(answer):
    assert run({"type": "json_schema", "schema": PRODUCT}, answer).passed is True


def test_json_schema_names_the_first_errors_path_and_message():
    v = run({"type": "json_schema", "schema": PRODUCT}, '{"name": "Shoe", "price": -3}')
    assert v.passed is False
    assert v.reason == "at $.price: -3 is less than the minimum of 0"


def test_json_schema_no_json_and_bad_json():
    data = {"type": "json_schema", "schema": PRODUCT}
    assert run(data, "Just words.").reason.startswith("no JSON object or array in the answer")
    v = run(data, '{"name": "Shoe", price: 1')
    assert v.passed is False
    assert v.reason.startswith("not JSON: Expecting property name enclosed in double quotes")


def test_json_schema_deep_nesting_fails_not_raises():
    assert run({"type": "json_schema", "schema": PRODUCT}, "[" * 100_000 + "]" * 100_000).passed is False


def test_json_schema_is_checked_against_its_meta_schema_when_loaded():
    with pytest.raises(ValidationError, match=r"schema\n.*not a valid JSON Schema: 'strng' is not valid"):
        check(type="json_schema", schema={"type": "strng"})
    with pytest.raises(ValidationError, match="Field required"):
        check(type="json_schema")


def test_json_schema_names_its_draft_with_dollar_schema():
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "integer"}
    assert run({"type": "json_schema", "schema": draft7}, "12").passed is True
    with pytest.raises(ValidationError, match="\\$schema 'draft-99' names no JSON Schema draft jsonschema knows"):
        check(type="json_schema", schema={"$schema": "draft-99"})
    for odd in ({"a": 1}, True, 3):
        with pytest.raises(ValidationError, match="schema must be a draft's URI, got"):
            check(type="json_schema", schema={"$schema": odd})


def test_json_schema_an_unresolvable_ref_is_unjudged():
    v = run({"type": "json_schema", "schema": {"$ref": "https://example.invalid/s.json"}}, "{}")
    assert v.passed is None
    assert "could not be applied" in v.reason


# -- rank --------------------------------------------------------------------------------------------


def test_rank_prefers_the_products_own_ranking():
    v = run({"type": "rank", "expected": "trail shoes"}, "irrelevant",
            extra={"ranked": ["Road bike", "Trail Shoes (blue)", "Kettle"]})
    assert v.passed is True
    assert v.score == 0.5
    assert v.reason == "'trail shoes' is 2nd of 3 in the product's ranking, within the top 3"


@pytest.mark.parametrize("answer", [
    "1. Kettle\n2. Lamp\n3. Trail shoes",
    '["Kettle", "Lamp", "Trail shoes"]',
    "Kettle, Lamp, Trail shoes",
    "- Kettle\n- Lamp\n- Trail shoes",
])
def test_rank_reads_lists_from_the_answer(answer):
    v = run({"type": "rank", "expected": "trail shoes", "top": 3}, answer)
    assert v.passed is True
    assert v.score == pytest.approx(1 / 3)


def test_rank_below_top_and_absent():
    v = run({"type": "rank", "expected": "shoes", "top": 1}, "lamp, shoes")
    assert (v.passed, v.score) == (False, 0.5)
    assert v.reason == "'shoes' is 2nd of 2 in the answer, not within the top 1"
    v = run({"type": "rank", "expected": "shoes"}, "lamp, kettle")
    assert (v.passed, v.score, v.reason) == (False, 0.0, "'shoes' not among the 2 items of the answer")


def test_rank_substring_either_way():
    assert run({"type": "rank", "expected": "Trail running shoes, size 42"}, "trail running shoes").passed is True


def test_rank_a_bare_number_names_the_prompts_numbered_item():
    case = case_with("Search query: shoes for hills\n\nItems:\n1. Kettle\n2. Trail shoes\n3. Lamp\n\n"
                     "Reply with the number.")
    v = run({"type": "rank", "expected": "trail shoes", "top": 1}, "2", case=case)
    assert v.passed is True
    assert v.reason == "'trail shoes' is 1st of 1 in the answer, within the top 1"
    assert run({"type": "rank", "expected": "trail shoes", "top": 1}, "3", case=case).passed is False


def test_rank_settings():
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        check(type="rank", expected="x", top=0)
    with pytest.raises(ValidationError, match="must hold some text"):
        check(type="rank", expected="  ")


# -- judge: settings (the judge itself: test_judge.py) -----------------------------------------------


def test_judge_settings():
    assert check(type="judge", rubric="Answers the question asked.").threshold == 0.5
    with pytest.raises(ValidationError, match="must say what a good answer does"):
        check(type="judge", rubric=" ")
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        check(type="judge", rubric="x", threshold=2)


async def test_judge_without_a_judge_is_unjudged_never_failed():
    v = await evaluate({"type": "judge", "rubric": "Helpful."}, "anything", reference="ref")
    assert v == Verdict(None, 0.0, "judge: no judge backend configured (quality.judge in airisk.yaml)")
