"""A hostile stream cannot make a probe hold unbounded memory, nor spend quadratic time.

The SSE and NDJSON readers cap a line and an event (`probes.framing.MAX_LINE`,
`MAX_EVENT`: 1 MiB); past a cap the probe is MALFORMED. The runner keeps at most
`probes.runner.ANSWER_LIMIT` characters of answer text, however many chunks arrive.
"""

from __future__ import annotations

import json

import pytest

from probes import ErrorKind, make_client, probe
from probes.dialects import Chunk
from probes.framing import MAX_EVENT, MAX_LINE, Event, NDJSONParser, SSEParser
from probes.runner import ANSWER_LIMIT, _Run
from tests.probes.loopback import Canned, serving
from tests.probes.strategies import CANARY, probe_bytes, target_for

READ = 64 * 1024


def reads(body: bytes, size: int = READ) -> list[bytes]:
    return [body[i:i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize("parser", [SSEParser, NDJSONParser])
def test_a_line_that_never_ends_is_refused_once_past_the_cap(parser):
    p = parser()
    fed = 0
    with pytest.raises(ValueError, match=f"line longer than {MAX_LINE} bytes"):
        for piece in reads(b"x" * (3 * MAX_LINE)):
            p.feed(piece)
            fed += len(piece)
            assert len(p._buf) <= MAX_LINE
    assert fed <= MAX_LINE + READ  # refused as soon as the cap was passed, not at the end of the body


@pytest.mark.parametrize("parser", [SSEParser, NDJSONParser])
def test_a_long_line_is_appended_in_place_not_copied_on_every_read(parser):
    """``buf + chunk`` on every read copies the whole line each time: quadratic in its length.
    The buffer is one bytearray, grown in place while no line ends."""
    p = parser()
    p.feed(b"data: {")
    buf = p._buf
    for _ in range(100):
        p.feed(b"x" * 1000)
        assert p._buf is buf
    assert isinstance(buf, bytearray) and len(buf) == len(b"data: {") + 100_000


def test_an_sse_event_of_many_short_lines_is_capped_too():
    p = SSEParser()
    with pytest.raises(ValueError, match=f"SSE event longer than {MAX_EVENT} bytes"):
        for _ in range(MAX_EVENT // 1000 + 2):
            p.feed(b"data: " + b"x" * 1000 + b"\n")  # never a blank line, so never dispatched


def test_a_pretty_printed_ndjson_object_that_never_closes_is_capped():
    p = NDJSONParser()
    with pytest.raises(ValueError, match=f"NDJSON object longer than {MAX_EVENT} bytes"):
        p.feed(b"{\n")
        for _ in range(MAX_EVENT // 1000 + 2):
            p.feed(b'  "a": "' + b"x" * 1000 + b'",\n')


@pytest.mark.parametrize("parser", [SSEParser, NDJSONParser])
def test_lines_up_to_the_cap_still_read_whole(parser):
    text = "x" * (MAX_LINE - 100)
    line = json.dumps({"t": text}).encode()
    body = (b"data: " + line + b"\n\n") if parser is SSEParser else line + b"\n"
    events: list[Event] = []
    p = parser()
    for piece in reads(body, 4096):
        events += p.feed(piece)
    events += p.close()
    assert [json.loads(e.data)["t"] for e in events] == [text]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "cohere", "ollama"])
async def test_a_stream_with_a_line_past_the_cap_is_malformed(provider):
    head = b"" if provider == "ollama" else b"data: "
    body = head + b'{"x": "' + b"y" * (2 * MAX_LINE)
    result = await probe_bytes(provider, reads(body))
    assert result.error_kind is ErrorKind.MALFORMED
    assert "longer than 1048576 bytes" in result.message


async def test_a_line_past_the_cap_over_loopback_is_malformed():
    """An answer that never ends its line, through the real client: refused, not buffered to the end."""
    event = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"4" * (2 * MAX_LINE) + b'"}}]}'
    canned = Canned(chunks=reads(event))
    async with serving(canned) as url, make_client() as client:
        target = target_for("openai")
        target = type(target).from_provider("openai", base_url=url, key_env=None, deadlines=target.deadlines)
        result = await probe(target, client=client, canary=CANARY)
    assert result.error_kind is ErrorKind.MALFORMED, result.message
    assert result.message.startswith("an SSE line longer than")


async def test_a_json_answer_past_the_cap_is_malformed():
    body = json.dumps({"choices": [{"message": {"content": "4" * (2 * MAX_EVENT)}, "finish_reason": "stop"}]})
    result = await probe_bytes("openai", reads(body.encode()), content_type="application/json")
    assert result.error_kind is ErrorKind.MALFORMED
    assert result.message == f"a JSON answer longer than {MAX_EVENT} bytes"


async def test_a_json_answer_of_endless_blank_space_is_capped_too():
    """Telling a JSON body from a mislabelled stream reads only its first bytes, blank ones bounded too."""
    result = await probe_bytes("anthropic", reads(b" " * (2 * MAX_EVENT), 1024), content_type="application/json")
    assert result.error_kind is ErrorKind.MALFORMED
    assert result.message == f"a JSON answer longer than {MAX_EVENT} bytes"


def test_the_answer_kept_is_capped_while_every_chunk_is_counted():
    run = _Run(CANARY, 0)
    for i in range(20_000):
        run.take(Chunk(text="four "), i)
    assert run.text_chunks == 20_000
    assert sum(map(len, run.text)) == run.text_len == ANSWER_LIMIT
    assert "".join(run.text).startswith("four four")


async def test_a_long_answer_is_still_judged_by_its_start():
    body = b"".join(
        [b'data: {"choices":[{"index":0,"delta":{"content":"4"},"finish_reason":null}]}\n\n']
        + [b'data: {"choices":[{"index":0,"delta":{"content":"' + b"z" * 500 + b'"},"finish_reason":null}]}\n\n'] * 300
        + [b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\ndata: [DONE]\n\n'])
    result = await probe_bytes("openai", reads(body))
    assert result.error_kind is ErrorKind.OK, result.message
    assert result.output_tokens == 301  # counted by chunk: no usage was sent
    assert len(result.answer) == 200
