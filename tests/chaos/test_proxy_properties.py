"""Properties of the proxy's parts that read what comes from outside (hypothesis): the stream
splitter and editor over arbitrary upstream bytes cut at arbitrary points, and request building
over arbitrary paths and headers. No exception, whatever arrives; the same output however the
bytes are cut; a request head that means exactly what it seems, or a refusal."""

from __future__ import annotations

import itertools
from urllib.parse import urlsplit

import httptools
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chaos.faults import Fault, FaultSet, RequestInfo
from chaos.faults.fault import Scope
from chaos.proxyhttp import hop_by_hop, request_headers, response_headers, split_target
from chaos.rewrite import Out, Splitter, StreamEditor
from chaos.speakers import SPEAKERS, Ask
from chaos.upstream import build_head, origin

DIALECTS = sorted(SPEAKERS)
ASK = Ask(model="m", prompt="What is 2 plus 3?", stream=True, id="0" * 24, created=0)
PLANS = [None, ("stream_cut", {"after_chunks": 1}), ("stream_cut", {"after_chunks": 0}),
         ("malformed_chunk", {"after_chunks": 2}), ("stream_error", {"after_chunks": 1, "error": "overloaded"}),
         ("missing_terminator", {}), ("stream_stall", {"after_chunks": 1, "seconds": 1}),
         ("slow_tokens", {"gap_ms": 1})]


def _frames(dialect: str) -> list[bytes]:
    s = SPEAKERS[dialect]
    return [f for f in (s.open(ASK), s.token(ASK, "Five", 0), s.token(ASK, " it is", 1), s.close(ASK, "stop", 2),
                        s.terminator(ASK, "stop", 2), s.malformed(ASK)) if f]


# Pieces a hostile or broken upstream sends: real events, separators alone, fragments, deep
# nesting, and arbitrary bytes.
_PIECES = st.one_of(
    st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\r\n\r\n", b"\r", b"data: ", b"data: [DONE]\n\n", b"event: x\n",
                     b"data: {}\n\n", b'{"done": true}\n', b"data: " + b"[" * 2000 + b"\n\n", b"[" * 3000 + b"\n"]),
    st.binary(max_size=40),
)


@st.composite
def upstream_bytes(draw, dialect: str) -> bytes:
    frames = _frames(dialect)
    pieces = draw(st.lists(st.one_of(st.sampled_from(frames), _PIECES), max_size=12))
    return b"".join(pieces)


@st.composite
def cuts(draw, data: bytes) -> list[bytes]:
    points = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def _merged(outs: list[Out]) -> list[tuple[bytes, bool, str | None]]:
    """Outputs with adjacent plain pieces joined: the same bytes sent in different pieces are the same output."""
    merged: list[tuple[bytes, bool, str | None]] = []
    for out in outs:
        if merged and not out.paced and out.end is None and not merged[-1][1] and merged[-1][2] is None:
            merged[-1] = (merged[-1][0] + out.data, False, None)
        else:
            merged.append((out.data, out.paced, out.end))
    return merged


def _run(editor: StreamEditor, pieces: list[bytes]) -> list[Out]:
    outs: list[Out] = []
    for piece in pieces:
        outs += editor.feed(piece)
    outs += editor.close()
    return outs


def _editor(dialect: str, plan_spec, limit: int | None) -> StreamEditor:
    faults = FaultSet()
    if plan_spec is not None:
        faults.add(Fault.from_dict({"type": plan_spec[0], "params": plan_spec[1]}))
    editor = StreamEditor(faults.plan(RequestInfo(route="r")), dialect, ASK)
    if limit is not None:
        editor._split.limit = limit
    return editor


@pytest.mark.parametrize("framing", ["sse", "ndjson"])
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), limit=st.sampled_from([None, 16, 300]))
def test_splitter_cuts_the_same_events_however_the_bytes_arrive(framing, data, limit):
    body = data.draw(upstream_bytes("openai" if framing == "sse" else "ollama"))
    pieces = data.draw(cuts(body))
    whole, split = Splitter(framing, limit), Splitter(framing, limit)
    events_whole = whole.feed(body)
    events_split: list[bytes] = []
    for piece in pieces:
        if split.overflowed:
            break
        events_split += split.feed(piece)
    assert events_split == events_whole
    assert split.overflowed == whole.overflowed
    if not whole.overflowed:  # nothing lost, nothing added, every event whole
        assert b"".join(events_whole) + whole.rest() == body
        assert all(len(e) <= split.limit for e in events_whole)


@pytest.mark.parametrize("dialect", DIALECTS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), plan=st.sampled_from(PLANS), limit=st.sampled_from([None, 64]))
def test_stream_editor_output_does_not_depend_on_where_reads_end(dialect, data, plan, limit):
    body = data.draw(upstream_bytes(dialect))
    pieces = data.draw(cuts(body))
    whole = _run(_editor(dialect, plan, limit), [body])
    split = _run(_editor(dialect, plan, limit), pieces)
    assert _merged(split) == _merged(whole)
    if plan is None or plan[0] == "slow_tokens":  # no fault that edits: the bytes pass as they came
        assert b"".join(o.data for o in whole) == body


# -- request building -----------------------------------------------------------------------------

_PATH_BYTES = st.lists(st.one_of(st.sampled_from([b"/", b"%", b"%20", b"%23", b"%3F", b"%00", b"%0D%0A", b"%2F",
                                                  b"?", b"#", b" ", b"\x00", b"\r\n", b"\xc3\xa9", b"..", b"%zz"]),
                                 st.binary(max_size=6)), max_size=10).map(b"".join)


def _parse(head: bytes) -> tuple[list, list]:
    """Every request httptools reads in ``head``: [(url, headers)]; and the parser's errors."""
    requests: list = []

    class Sink:
        def on_message_begin(self):
            self.url, self.headers = b"", []

        def on_url(self, url):
            self.url += url

        def on_header(self, name, value):
            self.headers.append((name, value))

        def on_message_complete(self):
            requests.append((self.url, self.headers))

    parser = httptools.HttpRequestParser(Sink())
    errors = []
    try:
        parser.feed_data(head)
    except httptools.HttpParserError as exc:
        errors.append(exc)
    return requests, errors


@settings(max_examples=200)
@given(raw=_PATH_BYTES, query=st.binary(max_size=12))
def test_any_path_is_sent_exactly_as_received_or_refused(raw, query):
    scope = {"type": "http", "path": "/ignored", "raw_path": b"/up" + (raw if raw.startswith(b"/") else b"/" + raw),
             "query_string": query}
    try:
        name, rest, decoded, q = split_target(scope)
    except ValueError as exc:
        assert str(exc).startswith("path: ")
        return
    assert name == "up" and "\x00" not in decoded and "\n" not in decoded
    target = "/v1" + rest + ("?" + q if q else "")
    head = build_head("GET", target, b"127.0.0.1:1", [], None)
    requests, errors = _parse(head)
    assert errors == [] and len(requests) == 1  # one request: the path cannot split or end it
    assert requests[0][0] == target.encode()


_NAME = st.one_of(st.sampled_from([b"connection", b"te", b"proxy-authorization", b"x-a", b"X-Hop", b"keep-alive",
                                   b"x-airisk-feature", b"bad name", b"host", b""]), st.binary(min_size=1, max_size=8))
_VALUE = st.one_of(st.sampled_from([b"x-hop, X-A", b"close", b"a\r\nx-injected: 1", b"\x00", b"\t tab", b"\xff"]),
                   st.binary(max_size=12))


@settings(max_examples=200)
@given(headers=st.lists(st.tuples(_NAME, _VALUE), max_size=8))
@example(headers=[(b"*: ", b"x-hop, X-A")])  # a colon in a name: the joined block read as name "*"
def test_any_headers_are_sent_as_they_mean_or_refused(headers):
    scope_headers = [(k.lower(), v) for k, v in headers]  # ASGI servers give names in lower case
    sent, _, _ = request_headers(scope_headers)
    hop = hop_by_hop(scope_headers)
    assert all(k not in hop and not k.startswith(b"x-airisk-") for k, _ in sent)
    try:
        head = build_head("POST", "/v1/chat", b"127.0.0.1:1", sent, 0)
    except ValueError as exc:
        assert str(exc).startswith(("header", "method"))
        return
    requests, errors = _parse(head)
    assert errors == [] and len(requests) == 1
    # exactly the headers meant, none smuggled in by a CR/LF. llhttp reports a value with its
    # trailing whitespace, which is not part of the value (RFC 9110 5.5; the proxy's server strips
    # it too): compared without it, as the values meant are.
    got = [(k.lower(), v.rstrip(b" \t")) for k, v in requests[0][1]]
    assert got == [(b"host", b"127.0.0.1:1"), *[(k, v.strip(b" \t")) for k, v in sent], (b"content-length", b"0")]


@settings(max_examples=300)
@given(headers=st.lists(st.tuples(st.one_of(_NAME, st.sampled_from([b"Content-Length", b"content-type",
                                                                      b"Content-Type", b"Connection"])), _VALUE),
                        max_size=8), edit=st.booleans())
def test_response_headers_in_one_pass_are_those_of_the_hop_by_hop_rule(headers, edit):
    """`response_headers` (one pass) passes on what the rule it replaced did: every header but the
    hop-by-hop ones and those the upstream's Connection names, Content-Length kept unless the
    body is edited; and the first Content-Type, whatever its case."""
    hop = hop_by_hop(headers)
    meant = [(k, v) for k, v in headers if (lk := k.lower()) not in hop or (lk == b"content-length" and not edit)]
    out, content_type = response_headers(headers)
    if edit:
        out = [(k, v) for k, v in out if k.lower() != b"content-length"]
    assert out == meant
    assert content_type == next((v for k, v in headers if k.lower() == b"content-type"), b"")


_BASE = st.sampled_from(["http://127.0.0.1:8470", "http://127.0.0.1:8470/openai/v1", "https://api.example.com/v1",
                         "http://user:pw@[::1]:9/x/", "http://h", "https://h:443", "http://h/a?x=1"])


@settings(max_examples=300)
@given(base=_BASE, raw=_PATH_BYTES, query=st.binary(max_size=12))
def test_the_upstream_split_once_sends_what_splitting_each_url_sent(base, raw, query):
    """The route's upstream split once (`origin`) and the request's target appended gives the
    connection key, host header and request target that `urlsplit` of the whole URL gave (the
    proxy falls back to that whenever the base or the path holds a ``?`` or ``#``)."""
    scope = {"type": "http", "path": "/ignored", "raw_path": b"/up" + (raw if raw.startswith(b"/") else b"/" + raw),
             "query_string": query}
    try:
        _, rest, _, q = split_target(scope)
    except ValueError:
        return
    to = origin(base)
    if to is None or "?" in rest or "#" in rest or "#" in q:
        return
    parts = urlsplit(base + rest + ("?" + q if q else ""))
    assert to.key == (parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    assert to.host_header == parts.netloc.rpartition("@")[2].encode()
    assert (to.path + rest or "/") + ("?" + q if q else "") == (parts.path or "/") + (
        f"?{parts.query}" if parts.query else "")


_SCOPE = st.sampled_from([Scope(), Scope(route="openai"), Scope(model="gpt-4o-mini"), Scope(feature="chat")])


@settings(max_examples=100)
@given(ops=st.lists(st.tuples(st.sampled_from(["add", "add-lapsed", "remove", "clear"]), _SCOPE), max_size=6),
       req=st.builds(RequestInfo, route=st.sampled_from(["openai", "anthropic"]),
                     model=st.sampled_from([None, "gpt-4o-mini"]), feature=st.sampled_from([None, "chat"])))
def test_an_empty_fault_set_plans_nothing_so_the_proxy_may_skip_planning(ops, req):
    """`FaultSet.empty` is what the proxy reads to skip `plan` (and `RequestInfo`) on every request:
    while it says empty, no request can get a fault; a lapsed fault not yet pruned is not empty."""
    faults, added = FaultSet(), []
    for op, scope in ops:
        if op.startswith("add"):
            fault = Fault(type="server_error", scope=scope)
            if op == "add-lapsed":
                fault.expires_at = 1.0
            added.append(faults.add(fault).id)
        elif op == "remove" and added:
            faults.remove(added.pop())
        elif op == "clear":
            faults.clear()
            added.clear()
    was_empty = faults.empty
    plan = faults.plan(req)
    if was_empty:
        assert plan.faults == [] and plan.respond is None and plan.stream is None
    assert was_empty == (not added)
