"""A status page is someone else's server: what a hostile or broken one can send, and that reading
it stays bounded (memory, redirects, time) and ends in a `VendorStatus`, never an exception.

`parse_status` is also fuzzed here with hypothesis (arbitrary JSON, summary-shaped JSON with odd
times, arbitrary bytes); `bench/fuzz.py` runs the same entry point with a larger budget."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.statuspoll import MAX_BODY, MAX_REDIRECTS, StatusPageError, VendorStatus, fetch_status, parse_status
from tests.monitor.status_server import DEEP, GOOD, OVERFLOW


@pytest.fixture
async def http():
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as c:
        yield c


async def _fetch_measured(http: httpx.AsyncClient, url: str, **kwargs) -> tuple[VendorStatus, int]:
    """The status, and the peak of Python memory allocated while reading it."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        status = await fetch_status(http, url + "/api/v2/summary.json", **kwargs)
        return status, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- bounded reading, against a loopback page ----------------------------------------------------


async def test_a_50_mb_body_is_given_up_on_as_it_streams(page, http):
    status, peak = await _fetch_measured(http, page.url + "/big", provider="openai")
    assert status.error == (f"body too large for a status page (cut while it streamed; at most {MAX_BODY} bytes "
                            "are read)")
    assert (status.provider, status.indicator, status.incidents) == ("openai", "unknown", [])
    # Read as it came and dropped at the cap: neither held whole, nor all sent.
    assert peak < 8 * MAX_BODY, f"peak {peak} bytes while reading"
    assert page.sent["big"] < page.big_bytes // 4


async def test_a_gzip_bomb_is_inflated_only_up_to_the_cap(page, http):
    page.prepare_bomb()
    status, peak = await _fetch_measured(http, page.url + "/bomb")
    assert status.error.startswith("body too large for a status page")
    assert peak < 8 * MAX_BODY, f"peak {peak} bytes while inflating"


async def test_redirects_are_bounded_and_their_bodies_never_read(page, http):
    status, peak = await _fetch_measured(http, page.url + "/loop")
    assert status.error == f"more than {MAX_REDIRECTS} redirects"
    assert page.served["loop"] == MAX_REDIRECTS + 1
    assert peak < 8 * MAX_BODY, f"peak {peak} bytes while following redirects"


async def test_a_redirect_or_two_to_a_good_page_are_followed():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/summary.json":
            return httpx.Response(301, headers={"Location": "/moved"}, content=b"see /moved")
        if request.url.path == "/moved":
            return httpx.Response(302, headers={"Location": "https://elsewhere.example.com/summary.json"})
        return httpx.Response(200, json=GOOD)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        status = await fetch_status(client, "https://status.example.com/api/v2/summary.json")
    assert status.ok and (status.provider, status.indicator) == ("Example", "major")


@settings(max_examples=150)
@given(st.text(st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=60))
@example("javascript:alert(1)")  # httpx raised InvalidURL (not an HTTPError) for it
@example("file:///etc/passwd")
@example("http://[::1")
@example("//")
async def test_fuzz_any_redirect_location_ends_in_a_status(location):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "status.example.com" and request.url.path == "/api/v2/summary.json":
            return httpx.Response(302, headers=[(b"location", location.encode("latin-1"))])
        return httpx.Response(200, json=GOOD)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        status = await fetch_status(client, "https://status.example.com/api/v2/summary.json", provider="p")
    assert status.ok or (status.error and "\n" not in status.error)


async def test_a_page_trickling_a_byte_a_second_is_cut_at_the_deadline(page, http):
    # The client's read timeout (5 s) restarts with every byte: only the total deadline ends it.
    status = await fetch_status(http, page.url + "/trickle/api/v2/summary.json", within=2.5)
    assert status.error == "no whole answer within 2.5s"
    assert 1 <= page.sent["trickle"] < len(json.dumps(GOOD))


async def test_odd_bodies_are_errors_or_read_never_exceptions(page, http):
    url = page.serve("odd", OVERFLOW, DEEP, b"\x00" * 10, GOOD)
    overflow = await fetch_status(http, url + "/api/v2/summary.json")
    assert overflow.ok and overflow.indicator == "minor"
    [incident] = overflow.incidents
    assert (incident.created_at, incident.first_post_at) == (None, None)  # times we cannot place
    deep = await fetch_status(http, url + "/api/v2/summary.json")
    assert deep.error == "not JSON we read: nested too deeply"
    assert (await fetch_status(http, url + "/api/v2/summary.json")).error.startswith("not JSON")
    assert (await fetch_status(http, url + "/api/v2/summary.json")).indicator == "major"


async def test_an_unasked_content_encoding_is_an_error(page, http):
    url = page.serve("zstd", b"\x28\xb5\x2f\xfd")
    page.headers["zstd"] = {"Content-Encoding": "zstd"}
    status = await fetch_status(http, url + "/api/v2/summary.json")
    assert status.error == "Content-Encoding 'zstd' is not one we asked for"


# --- parse_status, the pure half -----------------------------------------------------------------


def test_parse_status_keeps_text_storable():
    body = json.dumps({"page": {"name": "a\x00b"}, "status": {"indicator": "minor", "description": "\ud800x"},
                       "incidents": [{"id": "i" * 5000, "name": "n"}]}).encode()
    status = parse_status(body)
    assert status.provider == "a\ufffdb" and status.description == "?x"
    assert len(status.incidents[0].id) == 2000
    status.to_dict()["description"].encode("utf-8")  # no lone surrogate left


def test_parse_status_refuses_too_large_a_body():
    with pytest.raises(StatusPageError, match="body too large"):
        parse_status(b" " * (MAX_BODY + 1))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
_zone = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
_time = st.one_of(
    st.datetimes(timezones=_zone).map(datetime.isoformat),  # includes year 1 and 9999 with any offset
    st.datetimes().map(datetime.isoformat),  # no zone
    st.text(max_size=40),
    _json,
)
_incident = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.text(max_size=20), _json), "name": st.one_of(st.text(), _json),
    "status": st.text(max_size=20), "impact": st.sampled_from(["none", "minor", "major", "critical"]),
    "created_at": _time, "incident_updates": st.lists(st.one_of(st.fixed_dictionaries({"created_at": _time}), _json),
                                                      max_size=4),
})
_summary = st.fixed_dictionaries({}, optional={
    "page": st.one_of(st.fixed_dictionaries({"name": st.one_of(st.text(), _json)}), _json),
    "status": st.one_of(st.fixed_dictionaries({"indicator": st.text(max_size=10), "description": st.text()}), _json),
    "incidents": st.one_of(st.lists(st.one_of(_incident, _json), max_size=4), _json),
})


def _check(body: bytes) -> None:
    """The contract `bench/fuzz.py` checks too: a `VendorStatus` whose every value can be stored, or
    `StatusPageError` with a one-line message."""
    try:
        status = parse_status(body, provider=None, fetched_at=datetime(2025, 3, 1, tzinfo=UTC))
    except StatusPageError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    data = json.dumps(status.to_dict())
    assert "\\u0000" not in data
    data.encode("utf-8")
    for incident in status.incidents:
        for when in (incident.created_at, incident.first_update_at):
            assert when is None or when.tzinfo is UTC


@settings(max_examples=200)
@given(_summary)
@example({"incidents": [{"id": "x", "created_at": "9999-12-31T23:59:59-12:00"}]})
@example({"incidents": [{"id": "x", "incident_updates": [{"created_at": "0001-01-01T00:00:00+00:01"}]}]})
def test_fuzz_summary_shaped_json(data):
    _check(json.dumps(data).encode())


@given(_json)
def test_fuzz_arbitrary_json(data):
    _check(json.dumps(data).encode())


@given(st.binary(max_size=2000))
@example(DEEP)
@example(b"[" * 5000)
@example(b'{"a": ' * 3000)
@example(b"1" * 5000)  # an integer past Python's digit limit
@example(b'"\\ud800"')
@example(b"\xef\xbb\xbf{}")  # UTF-8 BOM
@example('{"status": {"indicator": "minor"}}'.encode("utf-16"))
def test_fuzz_arbitrary_bytes(body):
    _check(body)


@given(st.integers(1, 200_000))
def test_fuzz_nesting_depth(depth):
    _check(b'{"incidents": ' + b"[" * depth + b"]" * depth + b"}")


def test_numbers_json_allows_and_json_does_not_are_not_trouble():
    status = parse_status(b'{"status": {"indicator": NaN, "description": Infinity}, "incidents": -Infinity}')
    assert (status.indicator, status.description, status.incidents) == ("unknown", "", [])
