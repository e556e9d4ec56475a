"""Property tests of the relay's own readers of outside bytes (`chaos.proxyfast`): which upstream
answers pass on as they came (`passes_as_is`, against a model of the rule drawn from the headers),
and its one-pass builders against the general ones they stand in for (`request_head` against
`request_headers` + `build_head`, `response_block` + `start_block` against `response_headers` +
`start`), over what the llhttp parser can hand them."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.proxyfast import CHUNKED, passes_as_is, request_head, response_block
from chaos.proxyhttp import request_headers, response_headers
from chaos.proxyserver import _Cycle
from chaos.upstream import build_head

_SPECIAL = ["connection", "keep-alive", "proxy-authorization", "proxy-status", "te", "trailer", "trailers", "upgrade",
            "host", "content-length", "transfer-encoding", "connection-x", "x-airisk-feature", "x-airisk-other",
            "content-type", "date"]
_NAME = st.one_of(st.sampled_from(_SPECIAL), st.text("abcdefghijklmnopqrstuvwxyz0123456789-!#$%&'*+.^_`|~",
                                                      min_size=1, max_size=12))
# What llhttp leaves of a value: no controls but tab, no whitespace at either end.
_VALUE = st.one_of(
    st.sampled_from(["keep-alive", "Keep-Alive", "close", "keep-alive, x-drop", "chunked", "gzip, chunked", "12", "0"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=16).map(str.strip))


def _cased(name: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flip else c for c, flip in zip(name, flips + [False] * len(name), strict=False))


_BENIGN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).filter(
    lambda n: n not in _SPECIAL and not n.startswith("proxy-"))


@st.composite
def answers(draw):
    """An upstream answer's first read: (its bytes, its header list as sent, status, version, whether
    its head is whole). Drawn so that about half pass: benign headers around one framing header,
    then now and then a header that bars it, a second framing, a Connection header."""
    version = draw(st.sampled_from(["1.1"] * 5 + ["1.0"]))
    status = draw(st.sampled_from([200, 200, 201, 400, 429, 500, 529, 599, 204, 304, 101, 103]))
    headers = draw(st.lists(st.tuples(_BENIGN, _VALUE), max_size=4))
    framing = draw(st.sampled_from([("content-length", str(draw(st.integers(0, 99_999))))] * 3
                                   + [("transfer-encoding", "chunked")] * 3
                                   + [("transfer-encoding", "gzip, chunked"), ("content-length", "x1")]))
    headers.insert(draw(st.integers(0, len(headers))), framing)
    if draw(st.booleans()):
        connection = draw(st.sampled_from([("connection", "keep-alive"), ("connection", "Keep-Alive ")]))
        headers.insert(draw(st.integers(0, len(headers))), (connection[0], connection[1].strip()))
    for extra in draw(st.lists(st.tuples(st.sampled_from(_SPECIAL), _VALUE), max_size=2)):
        if draw(st.integers(0, 3)) == 0:
            headers.insert(draw(st.integers(0, len(headers))), extra)
    headers = [(_cased(n, draw(st.lists(st.booleans(), max_size=len(n)))), v) for n, v in headers]
    whole = draw(st.sampled_from([True] * 5 + [False]))
    head = f"HTTP/{version} {status} X\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    data = head.encode() + (b"\r\n" + draw(st.binary(max_size=20)) if whole else b"")
    return data, headers, status, version, whole


def _model(headers: list[tuple[str, str]], status: int, version: str, whole: bool) -> int | None:
    """The rule as passes_as_is's docstring states it, read from the header list itself."""
    if version != "1.1" or not 200 <= status <= 599 or status in (204, 304) or not whole:
        return None
    names = [n.lower() for n, _ in headers]
    connection = [v for n, v in headers if n.lower() == "connection"]
    if len(connection) > 1 or (connection and connection[0].lower() != "keep-alive"):
        return None
    hop = {"keep-alive", "te", "trailer", "upgrade", "host"}
    if any(n in hop or n.startswith("proxy-") for n in names):
        return None
    framing = [(n.lower(), v) for n, v in headers if n.lower() in ("content-length", "transfer-encoding")]
    if len(framing) != 1:
        return None
    name, value = framing[0]
    if name == "content-length":
        return 1 if value.isdigit() else None
    return CHUNKED if value.lower() == "chunked" else None


@settings(max_examples=300)
@given(answers())
def test_an_answer_passes_as_it_came_exactly_when_its_headers_allow(answer):
    data, headers, status, version, whole = answer
    expected = _model(headers, status, version, whole)
    made = passes_as_is(data)
    assert (made is None) == (expected is None)
    if made is None:
        return
    out, size = made
    head_end = data.index(b"\r\n\r\n") + 4
    if expected == CHUNKED:
        assert size == CHUNKED
    else:
        length = int(next(v for n, v in headers if n.lower() == "content-length"))
        assert size == head_end + length  # the whole answer as the upstream sends it
    kept = [f"{n}: {v}\r\n".encode() for n, v in headers if n.lower() != "connection"]
    assert out == f"HTTP/{version} {status} X\r\n".encode() + b"".join(kept) + data[head_end - 2:]


@given(st.binary(max_size=300))
def test_any_bytes_are_judged_without_raising(data):
    made = passes_as_is(data)
    assert made is None or (data.startswith(b"HTTP/1.1 ") and len(made[0]) <= len(data))


_LOWER = st.one_of(st.sampled_from(_SPECIAL), st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10))


@given(method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS"]),
       target=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7f), min_size=1, max_size=20),
       host=st.sampled_from([b"127.0.0.1:8470", b"api.openai.com", b"bad host", b"h\x7f"]),
       headers=st.lists(st.tuples(_LOWER.map(str.encode), _VALUE.map(str.encode)), max_size=6),
       length=st.one_of(st.none(), st.integers(0, 10_000)))
def test_the_one_pass_request_head_is_the_general_builders(method, target, host, headers, length):
    """Server-read headers (names in lower case): the same bytes, feature and declared length as
    `request_headers` then `build_head`, or None where those two must run (then they decide)."""
    made = request_head(method, target, host, headers, length)
    kept, feature, declared = request_headers(headers)
    try:
        general = build_head(method, target, host, kept, length)
    except ValueError:
        assert made is None  # the general builder names the problem
        return
    if made is not None:
        assert made == (general, feature, declared)


def _cycle(version: str = "1.1") -> _Cycle:
    conn = SimpleNamespace(closing=False, refusing=False)  # (what `_Cycle._frame` reads of its connection)
    return _Cycle(conn, {"http_version": version}, True, 0, False)  # type: ignore[arg-type]


@given(status=st.sampled_from([200, 204, 304, 429, 500]),
       headers=st.lists(st.tuples(st.one_of(st.sampled_from(_SPECIAL), _NAME).map(str.encode),
                                  _VALUE.map(str.encode)), max_size=6),
       version=st.sampled_from(["1.1", "1.0"]))
def test_the_one_pass_answer_head_is_the_general_builders(status, headers, version):
    headers = [(n, v) for n, v in headers if n.lower() != b"content-length" or v.isdigit()]  # (llhttp's rule)
    block = response_block(headers)
    general = _cycle(version)
    general.start(status, response_headers(headers)[0])
    if block is None:  # a Connection header: the general builders run
        assert any(n.lower() == b"connection" for n, _ in headers)
        return
    one_pass = _cycle(version)
    one_pass.start_block(status, *block)
    assert (one_pass.head, one_pass.chunked, one_pass.left, one_pass.keep_alive, one_pass.head_only) == \
        (general.head, general.chunked, general.left, general.keep_alive, general.head_only)
