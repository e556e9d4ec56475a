"""`probes.probe` never raises: every failure is a result the detector hears of.

A probe that raised stored nothing, so an outage (or a broken config) went unseen. Here:
a request the config cannot express (BAD_CONFIG), provider bytes nested past Python's
recursion limit (MALFORMED), a defect anywhere (INTERNAL_ERROR, logged once with its
traceback), and impossible token counts (dropped, so nothing downstream can trip on them).
Cancellation alone still passes through.
"""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from monitor.metrics import Metrics
from probes import Canary, ErrorKind, Status, Target, classify, probe
from probes.dialects import get_dialect
from tests.probes.strategies import CANARY, probe_bytes
from tests.probes.test_dialects import stream

PROVIDERS = ["openai", "azure-openai", "anthropic", "gemini", "cohere", "ollama"]
KEY_ENV = "AIRISK_TEST_KEY"


class Recorder:
    """A MockTransport handler that answers a healthy stream and counts the requests that reached it."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        ctype = "application/x-ndjson" if self.provider == "ollama" else "text/event-stream"
        return httpx.Response(200, headers={"content-type": ctype}, content=stream(self.provider, "4"))


async def probe_target(target: Target, provider: str | None = None) -> tuple:
    recorder = Recorder(provider or target.provider)
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        result = await probe(target, client=client, canary=CANARY)
    return result, recorder.requests


# -- a request the configuration cannot express --------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("headers", "fragment"), [
    ({"x-team": "café"}, "header 'x-team': the value has a character that is not printable ASCII (at position 3)"),
    ({"x-café": "1"}, "header name 'x-café' is not an HTTP token"),
    ({"x-team": "a\r\nx-injected: 1"}, "header 'x-team': the value has a character"),
    ({"x team": "1"}, "header name 'x team' is not an HTTP token"),
], ids=["non-ascii-value", "non-ascii-name", "crlf-in-value", "space-in-name"])
async def test_a_header_the_config_cannot_send_is_bad_config_not_a_crash(provider, headers, fragment):
    result, sent = await probe_target(Target.from_provider(provider, key_env=None, headers=headers))
    assert result.error_kind is ErrorKind.BAD_CONFIG
    assert result.status is Status.DOWN  # a target that cannot be probed never looks healthy
    assert result.message.startswith("request could not be built: ")
    assert fragment in result.message
    assert not sent  # nothing went out


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_key_that_is_not_ascii_is_bad_config_and_never_shown(provider, monkeypatch):
    secret = "sk-ünïcode-5e3f9c0a7b"
    monkeypatch.setenv(KEY_ENV, secret)
    result, sent = await probe_target(Target.from_provider(provider, key_env=KEY_ENV))
    assert result.error_kind is ErrorKind.BAD_CONFIG
    assert "not printable ASCII" in result.message
    assert "5e3f9c0a7b" not in json.dumps(result.to_dict()) and "ünïcode" not in result.message
    assert not sent


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"dialect": "klingon"}, "unknown dialect 'klingon'"),
    ({"options": {"canary": "riddles"}}, "unknown canary 'riddles' (known: arithmetic, completion)"),
    ({"base_url": "api.openai.com/v1"}, "the target's URL cannot be requested"),
])
async def test_other_impossible_configs_are_bad_config(overrides, fragment):
    target = Target.from_provider("openai", key_env=None, **overrides)
    recorder = Recorder("openai")
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        result = await probe(target, client=client)  # no canary given: the target's own is picked
    assert result.error_kind is ErrorKind.BAD_CONFIG, result.message
    assert fragment in result.message
    assert not recorder.requests


# -- provider bytes nested deeper than Python recurses --------------------------------------------


NESTED = b"[" * 1024  # about 1 KB: deeper than json's recursive reader goes


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_deeply_nested_json_in_a_stream_event_is_malformed(provider):
    event = NESTED + b"\n" if provider == "ollama" else b"data: " + NESTED + b"\n\n"
    result = await probe_bytes(provider, [event])
    assert result.error_kind is ErrorKind.MALFORMED, result.message
    assert "nested too deep" in result.message


AUTH_401 = {  # a 401 in each provider's shape, its message replaced by "@@"
    "openai": {"error": {"message": "@@", "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}},
    "azure-openai": {"error": {"code": "401", "message": "@@"}},
    "anthropic": {"type": "error", "error": {"type": "authentication_error", "message": "@@"}},
    "gemini": {"error": {"code": 401, "message": "@@", "status": "UNAUTHENTICATED"}},
    "cohere": {"message": "@@"},
    "ollama": {"error": "@@"},
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("depth", [900, 1024, 5000])
async def test_deeply_nested_json_in_an_error_body_still_classifies(provider, depth):
    """Deep enough that json.loads or str() of the message recurses too far: the status still decides."""
    deep = b"[" * depth + b"]" * depth
    body = json.dumps(AUTH_401[provider]).encode().replace(b'"@@"', deep)
    result = await probe_bytes(provider, [body], status=401, content_type="application/json")
    assert result.error_kind is ErrorKind.AUTH, result.message
    assert result.message.startswith("HTTP 401 ")
    assert len(result.message) <= 300


# -- impossible token counts ------------------------------------------------------------------------------


ODD_COUNTS = ["-12", "-1", "1.5", "NaN", "Infinity", "-Infinity", "1e300", "100000000000000000000", '"12"', "true",
              "[12]", '{"n": 12}', "null"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("count", ODD_COUNTS)
async def test_an_impossible_token_count_is_dropped_and_the_answer_stands(provider, count):
    body = stream(provider, "4").replace(b":12", b":" + count.encode()).replace(b": 12", b": " + count.encode())
    assert body != stream(provider, "4")
    result = await probe_bytes(provider, [body])
    assert result.error_kind is ErrorKind.OK, result.message  # the provider answered: counts are bookkeeping
    assert result.input_tokens is None
    assert result.output_tokens == 1
    assert result.cost_usd is not None and result.cost_usd >= 0
    Metrics().observe(result)  # prometheus Counter.inc raises on a negative amount


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_integral_float_count_is_read_as_the_int(provider):
    body = stream(provider, "4").replace(b":12", b":12.0").replace(b": 12", b": 12.0")
    result = await probe_bytes(provider, [body])
    assert result.input_tokens == 12 and type(result.input_tokens) is int


# -- anything else: the last resort ------------------------------------------------------------------------


async def test_a_defect_is_internal_error_logged_once_with_its_traceback(monkeypatch, caplog):
    dialect = get_dialect("anthropic")

    def broken(event):
        raise RuntimeError("a defect in a dialect")

    monkeypatch.setattr(type(dialect), "parse_event", lambda self, event: broken(event))
    caplog.set_level(logging.DEBUG, logger="probes.runner")
    first = await probe_bytes("anthropic", [stream("anthropic", "4")])
    second = await probe_bytes("anthropic", [stream("anthropic", "4")])
    for result in (first, second):
        assert result.error_kind is ErrorKind.INTERNAL_ERROR
        assert result.status is Status.DOWN
        assert result.message == "internal error: RuntimeError: a defect in a dialect"
        assert result.http_status == 200  # what was known before the defect is kept
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None  # once, with its traceback


async def test_a_closed_client_is_internal_error_not_an_exception():
    client = httpx.AsyncClient(transport=httpx.MockTransport(Recorder("openai")))
    await client.aclose()
    result = await probe(Target.from_provider("openai", key_env=None), client=client, canary=CANARY)
    assert result.error_kind is ErrorKind.INTERNAL_ERROR
    assert "RuntimeError" in result.message


async def test_a_defect_while_building_the_result_still_gives_a_result():
    class Broken(Canary):
        def check(self, answer: str) -> bool:
            raise ZeroDivisionError("canary")

    canary = Broken(prompt=CANARY.prompt, expected=4, nonce="b")
    recorder = Recorder("gemini")
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        result = await probe(Target.from_provider("gemini", key_env=None), client=client, canary=canary)
    assert result.error_kind is ErrorKind.INTERNAL_ERROR
    assert result.message == "internal error: ZeroDivisionError: canary"
    assert result.target == "gemini"


async def test_cancellation_is_never_swallowed():
    started = asyncio.Event()

    async def never_ends():
        started.set()
        await asyncio.Event().wait()
        yield b""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=never_ends())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        task = asyncio.create_task(probe(Target.from_provider("openai", key_env=None), client=client, canary=CANARY))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("exc", [
    httpx.UnsupportedProtocol("Request URL is missing an 'http://' or 'https://' protocol."),
    httpx.InvalidURL("Invalid port: 'x'"),
])
def test_a_url_httpx_refuses_is_bad_config(exc):
    kind, message = classify.from_exception(exc)
    assert kind is ErrorKind.BAD_CONFIG
    assert message.startswith("the target's URL cannot be requested: ")
