"""Fuzz: no provider bytes, however split, make `probes.probe` raise or fall to its last resort.

Every input goes through the real path (`probe` -> framing -> dialect -> classify) on an
`httpx.MockTransport`; `tests.probes.strategies.check` states what must hold. The readers
are also fuzzed one by one, so a failure names the layer. ``bench/fuzz.py`` runs the same
strategies with a 10,000-example budget.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from probes import ErrorKind, classify
from probes.dialects import DIALECTS, Chunk, ProviderError, get_dialect
from probes.framing import MAX_EVENT, MAX_LINE, Event, NDJSONParser, SSEParser
from tests.probes.strategies import (
    ANSWERS,
    EVENTS,
    PROVIDERS,
    ProbeInput,
    check,
    odd,
    probe_inputs,
    raw_inputs,
    run_probe_bytes,
    structured_inputs,
    to_json,
)

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]  # some inputs are megabytes on purpose
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=_SLOW_OK)  # the whole probe path
FUZZ_LAYER = settings(max_examples=100, deadline=None, suppress_health_check=_SLOW_OK)  # one reader, per dialect


@FUZZ
@given(raw_inputs())
@example(ProbeInput("openai", (b"data: " + b"[" * 5000 + b"\n\n",)))  # nesting past the recursion limit
@example(ProbeInput("ollama", (b'{"error": ' + b"[" * 5000 + b"]" * 5000 + b"}",), 500, "application/json"))
@example(ProbeInput("gemini", (b"{" * 3000,), 200, "application/json"))
def test_arbitrary_bytes_through_the_real_probe(case):
    check(run_probe_bytes(case))


@FUZZ
@given(structured_inputs())
@example(ProbeInput("openai", (b'data: {"choices":[],"usage":{"prompt_tokens":-5,"completion_tokens":NaN}}\n\n'
                               b'data: [DONE]\n\n',)))
@example(ProbeInput("anthropic", (b'event: message_delta\ndata: {"type":"message_delta","delta":'
                                  b'{"stop_reason":"end_turn"},"usage":{"output_tokens":1e400}}\n\n',)))
def test_odd_values_in_valid_looking_answers_through_the_real_probe(case):
    check(run_probe_bytes(case))


def _chunk_ok(chunk: Chunk, dialect: str) -> None:
    assert isinstance(chunk, Chunk) and isinstance(chunk.text, str)
    for count in (chunk.input_tokens, chunk.output_tokens):
        assert count is None or (type(count) is int and count >= 0)
    if chunk.error is not None:
        assert isinstance(classify.from_provider_error(dialect, chunk.error), ErrorKind)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@FUZZ_LAYER
@given(data=st.data())
def test_each_dialect_reads_any_event_or_says_value_error(dialect, data):
    name, template = data.draw(st.sampled_from(EVENTS[dialect]))
    text = template if isinstance(template, str) else to_json(data.draw(odd(template)))
    text = data.draw(st.just(text) | st.text(max_size=40))
    stray = data.draw(st.booleans())
    try:
        chunk = get_dialect(dialect).parse_event(Event(text, event=name, stray=stray))
    except ValueError:
        return
    _chunk_ok(chunk, dialect)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@FUZZ_LAYER
@given(data=st.data())
def test_each_dialect_reads_any_whole_answer_or_says_value_error(dialect, data):
    body = to_json(data.draw(odd(data.draw(st.sampled_from(ANSWERS[dialect]))))).encode()
    body = data.draw(st.just(body) | st.binary(max_size=60))
    try:
        chunk = get_dialect(dialect).parse_body(body)
    except ValueError:
        return
    _chunk_ok(chunk, dialect)
    assert chunk.done or chunk.error is not None


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@FUZZ_LAYER
@given(status=st.integers(100, 599), body=st.binary(max_size=200) | st.builds(
    lambda n: b'{"error": {"message": ' + b"[" * n + b"]" * n + b"}}", st.integers(500, 5000)))
def test_each_dialect_reads_any_error_body(dialect, status, body):
    err = get_dialect(dialect).parse_error(status, httpx.Headers({"retry-after": "NaN"}), body)
    assert isinstance(err, ProviderError) and isinstance(err.message, str) and len(err.message) <= 300
    assert err.retry_after_s is None or err.retry_after_s >= 0
    assert isinstance(classify.from_provider_error(dialect, err), ErrorKind)


@FUZZ
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=10))
def test_framing_reads_any_bytes_within_its_caps(body, cuts):
    """Any bytes: events or a ValueError, and no parser ever holds more than its caps."""
    for parser in (SSEParser(), NDJSONParser()):
        start = 0
        try:
            for cut in [*sorted(c for c in cuts if c <= len(body)), len(body)]:
                parser.feed(body[start:cut])
                start = cut
                assert len(parser._buf) <= MAX_LINE
            parser.close()
        except ValueError:
            pass


@FUZZ
@given(dialect=st.sampled_from(sorted(DIALECTS)), message=st.text(max_size=60),
       type_=st.none() | st.text(max_size=20), code=st.none() | st.text(max_size=20),
       status=st.none() | st.integers(0, 999), retry=st.none() | st.floats())
def test_the_classifier_names_a_kind_for_any_stated_error(dialect, message, type_, code, status, retry):
    err = ProviderError(http_status=status, type=type_, code=code, message=message, retry_after_s=retry)
    assert isinstance(classify.from_provider_error(dialect, err), ErrorKind)


def test_the_strategies_reach_every_provider_and_the_caps():
    """The fuzz is only as good as its inputs: every provider, JSON bodies, and events past the caps occur."""
    assert set(PROVIDERS) >= {"openai", "anthropic", "gemini", "cohere", "ollama"}
    seen: set[str] = set()
    big = False

    @settings(max_examples=300, deadline=None, database=None, derandomize=True, suppress_health_check=_SLOW_OK)
    @given(probe_inputs())
    def collect(case):
        nonlocal big
        seen.add(case.provider)
        big = big or sum(map(len, case.chunks)) > MAX_EVENT

    collect()
    assert seen == set(PROVIDERS)
    assert big
