"""`probes.classify` (every failure -> one `ErrorKind`) and the stream framers it depends on.

Transport failures are produced for real where a loopback socket can produce them
(refused, TLS, reset, a chunked body cut short); where it cannot (DNS, an unreachable
network, a connect that hangs) only the OS call is replaced, and the exception still
travels through `TimedBackend`, httpcore's pool and httpx, so its chain is the real one.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import httpcore
import httpx
import pytest
import trustme
from hypothesis import example, given
from hypothesis import strategies as st

from probes import Canary, Deadlines, ErrorKind, Target, classify, make_client, probe
from probes.dialects import ProviderError
from probes.framing import Event, NDJSONParser, SSEParser

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# -- real transport failures -------------------------------------------------------------------


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)  # unread bytes would turn our close into a RST


@pytest.fixture
async def loopback() -> AsyncIterator[Callable[..., Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield serve
    for server in servers:
        server.close()
        await server.wait_closed()


async def _failure(url: str, **client_kwargs) -> httpx.HTTPError:
    async with make_client(**client_kwargs) as client:
        with pytest.raises(httpx.HTTPError) as info:
            await client.get(url)
    return info.value


def _closed_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, never listening: a SYN gets a RST
    return sock, sock.getsockname()[1]


async def test_name_that_does_not_resolve_is_dns(monkeypatch):
    async def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_such_name)
    exc = await _failure("http://api.example.invalid/")
    assert isinstance(exc, httpx.ConnectError)
    assert classify.from_exception(exc) == (ErrorKind.DNS, "DNS lookup failed: Name or service not known")


async def test_refused_connection():
    sock, port = _closed_port()
    with sock:
        exc = await _failure(f"http://127.0.0.1:{port}/")
    assert classify.from_exception(exc) == (ErrorKind.CONNECTION_REFUSED, "connection refused")


@pytest.mark.parametrize("code", [errno.ENETUNREACH, errno.EHOSTUNREACH])
async def test_unreachable_network(monkeypatch, code):
    async def unreachable(sock, address):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(asyncio.get_running_loop(), "sock_connect", unreachable)
    exc = await _failure("http://192.0.2.1:9/")
    assert classify.from_exception(exc) == (ErrorKind.UNREACHABLE, f"unreachable: {os.strerror(code)}")


async def test_connect_that_hangs_is_a_connect_timeout(monkeypatch):
    async def hang(sock, address):
        await asyncio.sleep(3600)

    monkeypatch.setattr(asyncio.get_running_loop(), "sock_connect", hang)
    exc = await _failure("http://192.0.2.1:9/", timeout=httpx.Timeout(5.0, connect=0.05))
    assert isinstance(exc, httpx.ConnectTimeout)
    assert classify.from_exception(exc)[0] is ErrorKind.CONNECT_TIMEOUT


async def test_untrusted_certificate_is_tls(loopback):
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)

    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    port = await loopback(hello, server_ctx)
    exc = await _failure(f"https://127.0.0.1:{port}/")  # the default CA bundle does not know trustme's CA
    kind, message = classify.from_exception(exc)
    assert kind is ErrorKind.TLS
    assert "certificate verify failed" in message


async def test_reset_while_waiting_for_the_answer(loopback):
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # SO_LINGER 0: RST, not FIN

    port = await loopback(reset)
    exc = await _failure(f"http://127.0.0.1:{port}/")
    assert isinstance(exc, httpx.ReadError)
    assert classify.from_exception(exc) == (ErrorKind.CONNECTION_RESET, "connection reset by peer")


async def test_close_before_any_response_is_a_reset(loopback):
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()

    port = await loopback(hang_up)
    exc = await _failure(f"http://127.0.0.1:{port}/")
    assert isinstance(exc, httpx.RemoteProtocolError)
    assert classify.from_exception(exc)[0] is ErrorKind.CONNECTION_RESET


SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.mark.parametrize(("events", "kind"), [
    # The answer had begun: the stream was cut mid-answer.
    ([b'data: {"choices":[{"index":0,"delta":{"content":"4"},"finish_reason":null}]}\n\n'], ErrorKind.STREAM_CUT),
    # Headers, then nothing: the connection died before any answer.
    ([], ErrorKind.CONNECTION_RESET),
    # Bytes came, but no answer text yet.
    ([b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'], ErrorKind.CONNECTION_RESET),
], ids=["answer-started", "headers-only", "no-text-yet"])
async def test_incomplete_chunked_body_through_the_probe(loopback, events, kind):
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(SSE_HEAD + b"".join(_chunk(e) for e in events))
        await writer.drain()
        writer.close()  # FIN without the terminating zero-length chunk

    port = await loopback(cut)
    t = Target.from_provider("openai", base_url=f"http://127.0.0.1:{port}/v1", key_env="AIRISK_TEST_NO_KEY",
                             deadlines=Deadlines(connect=2, first_token=5, total=5, stall=5))
    async with make_client() as client:
        result = await probe(t, client=client, canary=Canary(prompt="What is 2 plus 2?", expected=4, nonce="n"))
    assert result.error_kind is kind
    assert "incomplete chunked read" in result.message
    assert result.http_status == 200


# -- exception chains built the way the layers build them ------------------------------------


def _layered(outer: type[httpx.HTTPError], middle: type[httpcore.NetworkError | httpcore.TimeoutException],
             root: BaseException) -> httpx.HTTPError:
    """httpx error -[cause]-> httpcore error -[context]-> OS error, as `probes.netbackend` documents."""
    try:
        try:
            try:
                raise root
            except BaseException as exc:
                raise middle(exc) from exc
        except middle as exc:
            raise exc from None  # httpcore's pool re-raises so (encode/httpcore#915)
    except middle as exc:
        try:
            raise outer(str(exc)) from exc
        except outer as final:
            return final


@pytest.mark.parametrize(("exc", "kind"), [
    (_layered(httpx.ConnectError, httpcore.ConnectError, socket.gaierror(-3, "Temporary failure in name resolution")),
     ErrorKind.DNS),
    (_layered(httpx.ConnectError, httpcore.ConnectError, ConnectionRefusedError(111, "Connection refused")),
     ErrorKind.CONNECTION_REFUSED),
    (_layered(httpx.ConnectError, httpcore.ConnectError, OSError(errno.ENETUNREACH, "Network is unreachable")),
     ErrorKind.UNREACHABLE),
    (_layered(httpx.ConnectError, httpcore.ConnectError, OSError(errno.EHOSTDOWN, "Host is down")),
     ErrorKind.UNREACHABLE),
    (_layered(httpx.ConnectError, httpcore.ConnectError,
              ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")),
     ErrorKind.TLS),
    (_layered(httpx.ReadError, httpcore.ReadError, ConnectionResetError(104, "Connection reset by peer")),
     ErrorKind.CONNECTION_RESET),
    (_layered(httpx.WriteError, httpcore.WriteError, BrokenPipeError(32, "Broken pipe")),
     ErrorKind.CONNECTION_RESET),
    (_layered(httpx.ConnectTimeout, httpcore.ConnectTimeout, TimeoutError()), ErrorKind.CONNECT_TIMEOUT),
    (httpx.PoolTimeout("no connection free"), ErrorKind.CONNECT_TIMEOUT),
    (httpx.ConnectError("[Errno -2] Name or service not known"), ErrorKind.DNS),  # the chain was lost
    (httpx.RemoteProtocolError("Server disconnected without sending a response."), ErrorKind.CONNECTION_RESET),
    (httpx.RemoteProtocolError("illegal status line: bytearray(b'SSH-2.0-OpenSSH_9.6')"), ErrorKind.MALFORMED),
    (httpx.DecodingError("Error -3 while decompressing data: incorrect header check"), ErrorKind.MALFORMED),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v))
def test_exception_chain(exc, kind):
    assert classify.from_exception(exc)[0] is kind


@pytest.mark.parametrize(("answer_started", "kind"), [
    (True, ErrorKind.STREAM_CUT),
    (False, ErrorKind.CONNECTION_RESET),
])
def test_incomplete_body_depends_on_whether_the_answer_had_started(answer_started, kind):
    exc = httpx.RemoteProtocolError("peer closed connection without sending complete message body: "
                                    "incomplete chunked read")
    assert classify.from_exception(exc, answer_started=answer_started)[0] is kind


# -- errors the provider stated ----------------------------------------------------------------


def err(status: int | None, type_: str | None = None, code: str | None = None, message: str = "",
        retry: float | None = None) -> ProviderError:
    return ProviderError(http_status=status, type=type_, code=code, message=message, retry_after_s=retry)


PROVIDER_ERRORS = [
    # The provider's own type or code decides, whatever the status says.
    ("openai", err(429, "insufficient_quota", "insufficient_quota", "You exceeded your current quota"),
     ErrorKind.QUOTA_EXHAUSTED),
    ("openai", err(429, "tokens", "rate_limit_exceeded", "Rate limit reached on tokens per min"),
     ErrorKind.RATE_LIMITED),
    ("openai", err(400, "invalid_request_error", "context_length_exceeded", "maximum context length is 4097 tokens"),
     ErrorKind.CONTEXT_TOO_LONG),
    ("openai", err(404, "invalid_request_error", "model_not_found", "The model `gpt-9` does not exist"),
     ErrorKind.MODEL_NOT_FOUND),
    ("openai", err(400, None, "content_filter", "The response was filtered"), ErrorKind.CONTENT_FILTERED),
    ("openai", err(None, "refusal", None, "I can't help with that."), ErrorKind.CONTENT_FILTERED),
    ("openai", err(503, "server_error", None, "That model is currently overloaded with other requests."),
     ErrorKind.OVERLOADED),
    ("openai", err(503, "server_error", None, "The server had an error processing your request."),
     ErrorKind.SERVER_ERROR),
    ("anthropic", err(529, "overloaded_error", None, "Overloaded"), ErrorKind.OVERLOADED),
    ("anthropic", err(None, "overloaded_error", None, "Overloaded"), ErrorKind.OVERLOADED),  # in a 200 stream
    ("anthropic", err(429, "rate_limit_error", None, "would exceed your organization's rate limit", 12.0),
     ErrorKind.RATE_LIMITED),
    ("anthropic", err(429, "rate_limit_error", "enforced_spend_limit_reached", "You have reached your usage limits"),
     ErrorKind.QUOTA_EXHAUSTED),
    ("anthropic", err(400, "billing_error", None, "Your credit balance is too low"), ErrorKind.QUOTA_EXHAUSTED),
    ("anthropic", err(404, "not_found_error", None, "model: claude-9"), ErrorKind.MODEL_NOT_FOUND),
    ("anthropic", err(400, "invalid_request_error", None, "prompt is too long: 215000 tokens > 200000 maximum"),
     ErrorKind.CONTEXT_TOO_LONG),
    ("anthropic", err(500, "api_error", None, "Internal server error"), ErrorKind.SERVER_ERROR),
    ("gemini", err(400, "INVALID_ARGUMENT", "API_KEY_INVALID", "API key not valid."), ErrorKind.AUTH),
    ("gemini", err(403, "PERMISSION_DENIED", "SERVICE_DISABLED", "Generative Language API has not been used"),
     ErrorKind.AUTH),
    ("gemini", err(429, "RESOURCE_EXHAUSTED", None, "You exceeded your current quota", 26.0), ErrorKind.RATE_LIMITED),
    ("gemini", err(429, "RESOURCE_EXHAUSTED", None, "You exceeded your current quota"), ErrorKind.QUOTA_EXHAUSTED),
    ("gemini", err(429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED", "Quota exceeded for quota metric 'requests per "
                                                                    "minute'"), ErrorKind.RATE_LIMITED),
    ("gemini", err(503, "UNAVAILABLE", None, "The model is overloaded."), ErrorKind.OVERLOADED),
    ("gemini", err(None, "CANCELLED", None, "The operation was cancelled."), ErrorKind.STREAM_ERROR),
    ("gemini", err(404, "NOT_FOUND", None, "models/gemini-9 is not found"), ErrorKind.MODEL_NOT_FOUND),
    ("gemini", err(504, "DEADLINE_EXCEEDED", None, "Deadline expired"), ErrorKind.SERVER_ERROR),
    # No table: the HTTP status decides, then the words refine it.
    ("cohere", err(400, None, None, "too many tokens: total number of tokens (prompt and prediction) cannot exceed "
                                    "2048 - received 6354."), ErrorKind.CONTEXT_TOO_LONG),
    ("cohere", err(402, None, None, "Please add a payment method"), ErrorKind.QUOTA_EXHAUSTED),
    ("cohere", err(498, None, None, "invalid api token"), ErrorKind.AUTH),
    ("cohere", err(429, None, None, "Trial key, limited to 20 API calls / minute", 60.0), ErrorKind.RATE_LIMITED),
    ("ollama", err(503, None, None, "server busy, please try again.  maximum pending requests exceeded"),
     ErrorKind.OVERLOADED),
    ("ollama", err(None, None, None, "an error was encountered while running the model"), ErrorKind.STREAM_ERROR),
    ("ollama", err(None, None, None, "model is at capacity"), ErrorKind.OVERLOADED),
]


@pytest.mark.parametrize(("dialect", "error", "kind"), PROVIDER_ERRORS,
                         ids=[f"{d}-{e.http_status}-{e.type or e.code or 'status'}" for d, e, _ in PROVIDER_ERRORS])
def test_provider_error(dialect, error, kind):
    assert classify.from_provider_error(dialect, error) is kind


@pytest.mark.parametrize(("status", "kind"), [
    (400, ErrorKind.BAD_REQUEST), (401, ErrorKind.AUTH), (402, ErrorKind.QUOTA_EXHAUSTED), (403, ErrorKind.AUTH),
    (404, ErrorKind.MODEL_NOT_FOUND), (405, ErrorKind.BAD_REQUEST), (409, ErrorKind.BAD_REQUEST),
    (413, ErrorKind.BAD_REQUEST), (422, ErrorKind.BAD_REQUEST), (429, ErrorKind.RATE_LIMITED),
    (498, ErrorKind.AUTH), (499, ErrorKind.BAD_REQUEST), (500, ErrorKind.SERVER_ERROR), (502, ErrorKind.SERVER_ERROR),
    (503, ErrorKind.SERVER_ERROR), (504, ErrorKind.SERVER_ERROR), (529, ErrorKind.OVERLOADED),
    (204, ErrorKind.MALFORMED), (302, ErrorKind.MALFORMED),
])
def test_bare_status(status, kind):
    """A body that names nothing: the status alone. A 4xx refuses the request; 1xx-3xx is no answer at all."""
    assert classify.from_provider_error("cohere", err(status, message="")) is kind


@pytest.mark.parametrize(("finish", "kind"), [
    ("filter", ErrorKind.CONTENT_FILTERED), ("error", ErrorKind.STREAM_ERROR),
    ("stop", None), ("length", None), ("other", None), (None, None),
])
def test_finish(finish, kind):
    assert classify.from_finish(finish) is kind


TEXT = st.one_of(st.none(), st.text(max_size=40), st.sampled_from([
    "insufficient_quota", "rate_limit_exceeded", "RATE_LIMIT_EXCEEDED", "API_KEY_INVALID",
    "enforced_spend_limit_reached", "overloaded_error", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "refusal",
]))
MESSAGES = st.text(max_size=80) | st.sampled_from(["quota", "overloaded", "too long", "billing", ""])


@given(
    dialect=st.sampled_from(["openai", "anthropic", "gemini", "cohere", "ollama", "no-such-dialect"]),
    status=st.none() | st.integers(min_value=-1, max_value=1000),
    type_=TEXT, code=TEXT, message=MESSAGES,
    retry=st.none() | st.floats(allow_nan=True),
)
def test_any_stated_error_is_a_failure_kind(dialect, status, type_, code, message, retry):
    error = ProviderError(http_status=status, type=type_, code=code, message=message, retry_after_s=retry)
    kind = classify.from_provider_error(dialect, error)
    assert isinstance(kind, ErrorKind)
    # A stated error is never a good answer, nor a verdict about the answer's text.
    assert kind not in (ErrorKind.OK, ErrorKind.WRONG_ANSWER, ErrorKind.EMPTY_ANSWER)


# -- framing: the same events however the bytes arrive -----------------------------------------


def _feed(parser: SSEParser | NDJSONParser, chunks: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.close()


_SSE_PIECES = st.sampled_from([
    b"data: ", b"data:", b"event: e", b"id: 7", b": ping", b"foo: bar", b"4", "é✓".encode(),
    b"\n", b"\r", b"\r\n", b"\n\n", b"\r\n\r\n", b"data: 4\r\n", b"event: e\r\n", b"\r\ndata: 5",
])
SSE_PIECES = st.one_of(_SSE_PIECES, _SSE_PIECES, _SSE_PIECES, st.text(max_size=4).map(str.encode))
NDJSON_PIECES = st.sampled_from([
    b'{"done":false,"response":"4"}', b"{", b"}", b'  "done": true', b"\n", b"\r\n", b"  ", "é✓".encode(),
]) | st.text(max_size=6).map(str.encode)


@st.composite
def reads(draw: st.DrawFn, pieces: st.SearchStrategy[bytes]) -> list[bytes]:
    """A body as the reads that deliver it: a read may end at any byte (between a CR and its
    LF, inside a UTF-8 character) and empty reads may come in between."""
    body = b"".join(draw(st.lists(pieces, max_size=20)))
    out = [b""]
    for i in range(len(body)):
        how = draw(st.sampled_from(["same read"] * 4 + ["next read", "empty read, then next"]))
        if how != "same read":
            out.append(b"")
        if how == "empty read, then next":
            out.append(b"")
        out[-1] += body[i:i + 1]
    return out


@given(reads(SSE_PIECES))
@example([b"data: a\r", b"", b"\ndata: b\n\n"])  # an empty read between a CR and its LF
def test_sse_events_do_not_depend_on_how_the_bytes_are_split(chunks):
    body = b"".join(chunks)
    whole = _feed(SSEParser(), [body])
    assert _feed(SSEParser(), chunks) == whole
    assert _feed(SSEParser(), [body[i:i + 1] for i in range(len(body))]) == whole


@given(reads(NDJSON_PIECES))
def test_ndjson_events_do_not_depend_on_how_the_bytes_are_split(chunks):
    body = b"".join(chunks)
    whole = _feed(NDJSONParser(), [body])
    assert _feed(NDJSONParser(), chunks) == whole
    assert _feed(NDJSONParser(), [body[i:i + 1] for i in range(len(body))]) == whole


@pytest.mark.parametrize(("body", "events"), [
    (b"data: 4\n\n", [Event("4")]),
    (b"data:4\n\n", [Event("4")]),  # the space after the colon is optional
    (b"data:  4\n\n", [Event(" 4")]),  # only one space is removed
    (b"data\n\n", [Event("")]),  # a field name alone is a field with an empty value
    (b"data: a\ndata: b\n\n", [Event("a\nb")]),
    (b"data: a\r\ndata: b\rdata: c\n\n", [Event("a\nb\nc")]),
    (b"event: ping\ndata: {}\n\n", [Event("{}", "ping")]),
    (b": keep-alive\n\ndata: 4\n\n", [Event("4")]),
    (b"event: ping\n\n", []),  # no data, no event
    (b"id: 1\nretry: 5\ndata: 4\n\n", [Event("4")]),
    (b"data: 4", [Event("4")]),  # an unterminated last event still counts when the body ends
    (b'data: {"a": 1}\n\n{\n  "error": {}\n}\n', [Event('{"a": 1}'), Event('{\n  "error": {}\n}', stray=True)]),
])
def test_sse_fields(body, events):
    assert _feed(SSEParser(), [body]) == events


def test_ndjson_gathers_pretty_printed_objects():
    body = b'{"a": 1}\n{\n  "message": {\n    "content": "The"\n  },\n  "done": false\n}\n{"b": 2}\n'
    datas = [e.data for e in _feed(NDJSONParser(), [body])]
    assert datas == ['{"a": 1}', '{\n  "message": {\n    "content": "The"\n  },\n  "done": false\n}', '{"b": 2}']
