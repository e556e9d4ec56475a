"""Conformance: recorded provider responses, byte for byte, through the real probe.

The transcripts are real wire captures and provider documentation examples kept outside
this repository (``shared/transcripts``, described by its ``INDEX.md``). They are read at
test time and never copied here: a file is a header block of ``# `` lines (tier, source,
HTTP status, caveats), one blank line, then the body bytes exactly as recorded.

Each body is served through `httpx.MockTransport` with the recorded status to
`probes.probe`, so framing, dialect and classification are tested together on what
providers really send.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from probes import Canary, ErrorKind, ProbeResult, Status, Target, probe
from tests.probes.shared_data import TRANSCRIPTS, require_dir

require_dir(TRANSCRIPTS, "provider transcripts")  # a skip, except under CI=true: there a failure

# No recorded answer is ours: the canary fails on every success transcript (none starts with 4).
CANARY = Canary(prompt="[probe t] What is 2 plus 2? Reply with the number only.", expected=4, nonce="t")


# -- reading and serving transcripts ---------------------------------------------------------


@dataclass(frozen=True)
class Transcript:
    name: str
    status: int | None  # None when the header gives no single status (e.g. "4xx/5xx")
    body: bytes


def read_transcript(name: str) -> Transcript:
    raw = (TRANSCRIPTS / name).read_bytes()
    header, sep, body = raw.partition(b"\n\n")
    assert sep and all(line.startswith(b"#") for line in header.splitlines()), f"{name}: no header block"
    status = re.search(rb"^#\s*status:\s*(\d{3})\b", header, re.MULTILINE)
    return Transcript(name, int(status.group(1)) if status else None, body)


def read_cases() -> list[dict[str, str]]:
    with (TRANSCRIPTS / "cases.tsv").open(newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    header, *rows = rows
    assert header[0].lstrip("# ") == "transcript", header
    return [{"file": r[0], "provider": r[1], "family": r[2], "note": r[3] if len(r) > 3 else ""} for r in rows if r]


def target(provider: str, key_env: str | None = None) -> Target:
    return Target.from_provider(provider, key_env=key_env)


async def serve(provider: str, status: int, body: bytes, *, one_byte_reads: bool = False,
                canary: Canary = CANARY, key_env: str | None = None) -> ProbeResult:
    """Probe ``provider`` against a server that answers ``status`` with exactly ``body``."""
    t = target(provider, key_env=key_env)
    if status != 200:
        content_type = "application/json"
    else:
        content_type = "application/x-ndjson" if t.dialect == "ollama" else "text/event-stream"

    async def byte_by_byte() -> AsyncIterator[bytes]:
        for i in range(len(body)):
            yield body[i:i + 1]

    def handler(request: httpx.Request) -> httpx.Response:
        content = byte_by_byte() if one_byte_reads else body
        return httpx.Response(status, headers={"content-type": content_type}, content=content)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await probe(t, client=client, canary=canary)


CASES = read_cases()

# The kind each cases.tsv row should produce, where its loose family admits more than one
# (or matches by a substring that would also fit a wrong kind).
EXACT: dict[str, ErrorKind] = {
    "openai__chat_stream_refusal.txt": ErrorKind.CONTENT_FILTERED,  # text in delta.refusal, then finish "stop"
    "openai__error_429_rate_limit_tokens.txt": ErrorKind.RATE_LIMITED,
    "openai__error_429_insufficient_quota.txt": ErrorKind.QUOTA_EXHAUSTED,
    "openai__error_401_invalid_api_key.txt": ErrorKind.AUTH,
    "openai__error_400_context_length_exceeded.txt": ErrorKind.CONTEXT_TOO_LONG,
    "openai__error_500_server_error.txt": ErrorKind.SERVER_ERROR,
    "openai__error_503_overloaded.txt": ErrorKind.OVERLOADED,  # type server_error; only the message says so
    "openai__azure_stream_content_filter.txt": ErrorKind.CONTENT_FILTERED,
    "anthropic__stream_error_overloaded_event.txt": ErrorKind.OVERLOADED,
    "anthropic__error_529_overloaded.txt": ErrorKind.OVERLOADED,
    "anthropic__error_429_rate_limit_live.txt": ErrorKind.RATE_LIMITED,
    "anthropic__error_429_spend_limit_docs.txt": ErrorKind.QUOTA_EXHAUSTED,
    "anthropic__error_401_authentication.txt": ErrorKind.AUTH,
    "anthropic__error_500_api_error.txt": ErrorKind.SERVER_ERROR,
    "gemini__stream_prompt_blocked.txt": ErrorKind.CONTENT_FILTERED,
    "gemini__stream_finish_reason_safety_vertex.txt": ErrorKind.CONTENT_FILTERED,
    # A per-minute limit (reason RATE_LIMIT_EXCEEDED) although Google's message says "quota".
    "gemini__error_429_resource_exhausted.txt": ErrorKind.RATE_LIMITED,
    "gemini__error_503_unavailable.txt": ErrorKind.OVERLOADED,
    "gemini__error_400_invalid_argument.txt": ErrorKind.AUTH,  # a bad key is 400 API_KEY_INVALID
    "gemini__error_403_permission_denied.txt": ErrorKind.AUTH,
    "ollama__generate_stream_error_midstream.txt": ErrorKind.STREAM_ERROR,
}

# The Azure content-streaming sample as published is not a readable stream: the doc author
# elided events ("... " lines) and broke one chunk's JSON across two SSE events. Its
# header flags both; `_undo_doc_artifacts` reverses exactly those two edits.
DOC_ARTIFACTS = {"openai__azure_stream_content_filter.txt"}


def _undo_doc_artifacts(body: bytes) -> bytes:
    elided = re.sub(rb"(?m)^\.\.\. \n\n", b"", body)
    return re.sub(rb'"gpt-35- \n\nturbo"', b'"gpt-35-turbo"', elided)


# -- every row of cases.tsv ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c["file"].removesuffix(".txt") for c in CASES])
async def test_case_matches_its_expected_family(case):
    transcript = read_transcript(case["file"])
    body = _undo_doc_artifacts(transcript.body) if case["file"] in DOC_ARTIFACTS else transcript.body
    result = await serve(case["provider"], transcript.status, body)
    why = f"{case['file']} ({case['note']}): {result.error_kind} {result.message!r}"

    if case["family"] == "ok":
        # A recorded success is somebody else's answer: the stream must arrive whole, with
        # text, and only the canary check may fail.
        assert result.error_kind is ErrorKind.WRONG_ANSWER, why
        assert result.stream_complete, why
        assert result.answer.strip(), why
        assert result.canary_pass is False
        assert result.status is Status.DEGRADED
        return

    families = case["family"].split("|")
    assert any(f in str(result.error_kind) for f in families), why
    if case["file"] in EXACT:
        assert result.error_kind is EXACT[case["file"]], why
    assert result.status is result.error_kind.status
    assert result.message
    assert result.http_status == transcript.status


async def test_azure_filtered_stream_as_published_is_malformed_not_a_crash():
    """Verbatim, the doc sample breaks a chunk's JSON in two; an SDK would fail on it too."""
    transcript = read_transcript("openai__azure_stream_content_filter.txt")
    result = await serve("azure-openai", 200, transcript.body)
    assert result.error_kind is ErrorKind.MALFORMED
    assert result.message.startswith("malformed JSON")
    assert result.answer == "Hey Jude,"  # what arrived before the broken chunk is kept


async def test_azure_filtered_stream_keeps_the_text_before_the_verdict():
    transcript = read_transcript("openai__azure_stream_content_filter.txt")
    result = await serve("azure-openai", 200, _undo_doc_artifacts(transcript.body))
    assert result.error_kind is ErrorKind.CONTENT_FILTERED
    assert result.status is Status.DEGRADED
    assert result.stream_complete
    assert result.answer == "Hey Jude, better"


# -- success streams: exactly the text and usage the provider sent ---------------------------


def _gemini_text(body: bytes) -> str:
    """Independent reading of a simple Gemini alt=sse body: one part per ``data:`` line."""
    lines = body.replace(b"\r", b"\n").split(b"\n")
    events = [json.loads(line[len(b"data: "):]) for line in lines if line.startswith(b"data: ")]
    return "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)


# file, provider, answer text (None: read independently), input tokens, output tokens
# (None: the transcript has no usage, so the probe must not invent an input count).
SUCCESS_STREAMS = [
    ("openai__chat_stream_success_usage.txt", "openai", "Foo!", 9, 2),
    ("openai__chat_stream_finish_length.txt", "openai", '{"', 79, 1),  # finish_reason length is a fine end
    ("anthropic__messages_stream_success_live.txt", "anthropic", "[12345,67890]", 135, 10),
    ("anthropic__messages_stream_success_docs.txt", "anthropic", "Hello!", 25, 15),
    ("gemini__stream_sse_success.txt", "gemini", "The capital of Wyoming is **Cheyenne**.\n", 7, 10),
    ("gemini__stream_sse_cookbook_2024.txt", "gemini", None, None, None),
    ("cohere__chat_v2_stream_rendered.txt", "cohere",
     "LLMs stand for Large Language Models, which are a type of neural network model specialized in "
     "processing and generating human language.", 71, 26),
    ("ollama__generate_stream_ndjson.txt", "ollama", "That's a fantastic question!", None, None),
    ("ollama__chat_stream_docs.txt", "ollama", "The", 26, 282),  # pretty-printed NDJSON, as the docs print it
]


@pytest.mark.parametrize(("name", "provider", "text", "input_tokens", "output_tokens"), SUCCESS_STREAMS,
                         ids=[s[0].removesuffix(".txt") for s in SUCCESS_STREAMS])
async def test_success_stream_text_and_usage(name, provider, text, input_tokens, output_tokens):
    transcript = read_transcript(name)
    result = await serve(provider, 200, transcript.body)
    expected = text if text is not None else _gemini_text(transcript.body)

    assert result.error_kind is ErrorKind.WRONG_ANSWER, result.message
    assert result.stream_complete
    assert result.answer == expected[:200]  # ProbeResult keeps the first 200 characters
    assert result.input_tokens == input_tokens
    if output_tokens is not None:
        assert result.output_tokens == output_tokens
        assert result.cost_usd == pytest.approx(target(provider).cost(input_tokens, output_tokens))


async def test_gemini_2024_stream_keeps_every_chunk_after_an_early_finish_reason():
    """The 2024 format repeats finishReason STOP on every chunk: that is no end of the text."""
    result = await serve("gemini", 200, read_transcript("gemini__stream_sse_cookbook_2024.txt").body)
    assert result.answer.startswith("In the quaint, sunlit cottage")
    assert result.output_tokens == 6  # no usageMetadata: one per text chunk, all six counted


STREAM_TRANSCRIPTS = sorted(
    {(c["file"], c["provider"]) for c in CASES if read_transcript(c["file"]).status == 200}
    | {(s[0], s[1]) for s in SUCCESS_STREAMS}
    | {("gemini__stream_error_midstream_vertex.txt", "gemini")}
)


@pytest.mark.parametrize(("name", "provider"), STREAM_TRANSCRIPTS,
                         ids=[s[0].removesuffix(".txt") for s in STREAM_TRANSCRIPTS])
async def test_stream_reads_the_same_one_byte_at_a_time(name, provider):
    """CRLF pairs, multi-byte UTF-8 and JSON split across reads change nothing."""
    body = read_transcript(name).body
    whole = await serve(provider, 200, body)
    trickled = await serve(provider, 200, body, one_byte_reads=True)
    fields = ("error_kind", "answer", "message", "stream_complete", "input_tokens", "output_tokens")
    assert [getattr(trickled, f) for f in fields] == [getattr(whole, f) for f in fields]


# -- transcripts beyond cases.tsv ------------------------------------------------------------


async def test_gemini_error_object_after_data_events_is_a_stream_error():
    """Vertex ends a failed stream with a bare pretty-printed google.rpc error, no ``data:``."""
    result = await serve("gemini", 200, read_transcript("gemini__stream_error_midstream_vertex.txt").body)
    assert result.error_kind is ErrorKind.STREAM_ERROR  # CANCELLED names no better kind
    assert result.status is Status.DOWN
    assert result.answer == "First Second "
    assert "CANCELLED: The operation was cancelled." in result.message


async def test_azure_content_filter_400_published_as_invalid_json_still_classifies():
    transcript = read_transcript("openai__azure_error_400_content_filter.txt")
    with pytest.raises(json.JSONDecodeError):
        json.loads(transcript.body)  # the premise: as published, this is not JSON
    result = await serve("azure-openai", transcript.status, transcript.body)
    assert result.error_kind is ErrorKind.BAD_REQUEST  # unreadable body: the status is all we have
    assert result.http_status == 400
    assert "The response was filtered" in result.message


@pytest.mark.parametrize(("status", "kind"), [
    (400, ErrorKind.BAD_REQUEST),
    (404, ErrorKind.MODEL_NOT_FOUND),
    (429, ErrorKind.RATE_LIMITED),
    (500, ErrorKind.SERVER_ERROR),
    (502, ErrorKind.SERVER_ERROR),
])
async def test_ollama_error_string_with_each_documented_status(status, kind):
    transcript = read_transcript("ollama__error_json.txt")
    assert transcript.status is None  # the docs give "4xx/5xx" and list these five
    result = await serve("ollama", status, transcript.body)
    assert result.error_kind is kind
    assert result.http_status == status
    assert "the model failed to generate a response" in result.message


# file, provider, kind, a fragment the message must carry
ERROR_BODIES = [
    # llama-server answers every route but /models with this while its model loads.
    ("llamacpp__health_503_loading.txt", "llamacpp", ErrorKind.SERVER_ERROR, "unavailable_error: Loading model"),
    ("anthropic__error_400_invalid_request_live.txt", "anthropic", ErrorKind.BAD_REQUEST,
     "invalid_request_error: messages.0.content.1: unexpected `tool_use_id`"),
    ("anthropic__error_404_not_found_docs.txt", "anthropic", ErrorKind.MODEL_NOT_FOUND,
     "not_found_error: The requested resource could not be found."),
]


@pytest.mark.parametrize(("name", "provider", "kind", "fragment"), ERROR_BODIES,
                         ids=[e[0].removesuffix(".txt") for e in ERROR_BODIES])
async def test_error_body(name, provider, kind, fragment):
    transcript = read_transcript(name)
    result = await serve(provider, transcript.status, transcript.body)
    assert result.error_kind is kind
    assert result.http_status == transcript.status
    assert f"HTTP {transcript.status} {fragment}" in result.message


async def test_gemini_retry_delay_in_the_body_is_kept():
    """Gemini puts the wait in details[RetryInfo].retryDelay ("26s"), not in a header."""
    transcript = read_transcript("gemini__error_429_free_tier_retryinfo.txt")
    result = await serve("gemini", transcript.status, transcript.body)
    assert result.error_kind is ErrorKind.RATE_LIMITED  # a per-minute quota: waiting helps
    assert result.retry_after_s == 26.0


async def test_a_key_echoed_in_error_details_stays_out_of_the_result(monkeypatch):
    """The captured bad-key body carries the key in a DebugInfo detail ("Invalid API key: key1234")."""
    transcript = read_transcript("gemini__error_400_invalid_argument.txt")
    assert b"key1234" in transcript.body
    monkeypatch.setenv("AIRISK_TEST_GEMINI_KEY", "key1234")
    result = await serve("gemini", transcript.status, transcript.body, key_env="AIRISK_TEST_GEMINI_KEY")
    assert result.error_kind is ErrorKind.AUTH
    assert "key1234" not in json.dumps(result.to_dict())
