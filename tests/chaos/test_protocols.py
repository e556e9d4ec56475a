"""A protocol is declared once: its dialect (`probes.dialects`) and its speaker (`chaos.speakers`), listed in
the two registries. These tests list the registries and check that each entry declares what the rest of the
code reads from it: the dialect its error table, the speaker its emulator routes, listing paging, SDK suffix
and the errors of the fault catalogue."""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.faults import FAULT_TYPES
from chaos.routes import catalog_routes, sdk_base
from chaos.speakers import ONE_PAGE, SPEAKERS, Ask, EmulatorRoute, Listed, Paging, Speaker, routes_for
from chaos.speakers.base import Speaking
from probes import classify
from probes.catalog import CATALOG
from probes.dialects import DIALECTS
from probes.dialects.base import ProviderError
from probes.result import ErrorKind
from probes.target import Target

PROTOCOLS = sorted(DIALECTS)
# Every kind a speaker must render: the error faults (flapping answers as a server error) and the
# emulator's and the proxy's own refusal of a request.
ERROR_KINDS = sorted({name for name, t in FAULT_TYPES.items() if t.category == "error" and name != "flapping"}
                     | {"bad_request"})


def test_the_registries_list_the_same_protocols():
    assert sorted(SPEAKERS) == PROTOCOLS == ["anthropic", "cohere", "gemini", "ollama", "openai"]
    for name in PROTOCOLS:
        assert DIALECTS[name].name == SPEAKERS[name].name == name


def test_every_catalog_provider_speaks_a_registered_protocol():
    for provider in CATALOG.values():
        assert provider.dialect in DIALECTS, provider.name
        assert provider.dialect in SPEAKERS, provider.name


@pytest.mark.parametrize("name", PROTOCOLS)
def test_every_dialect_has_an_error_table(name):
    table = DIALECTS[name].errors
    assert isinstance(table, Mapping)
    assert all(isinstance(key, str) and isinstance(kind, ErrorKind) for key, kind in table.items())


@pytest.mark.parametrize("name", PROTOCOLS)
def test_classify_applies_the_dialects_table(name):
    for key, kind in DIALECTS[name].errors.items():
        assert classify.from_provider_error(name, ProviderError(http_status=None, type=key)) is kind
        assert classify.from_provider_error(name, ProviderError(http_status=None, code=key)) is kind


def test_an_unknown_dialect_is_classified_by_status():
    assert classify.from_provider_error("no-such-dialect", ProviderError(http_status=429)) is ErrorKind.RATE_LIMITED
    assert classify.from_provider_error("no-such-dialect", ProviderError(http_status=None)) is ErrorKind.STREAM_ERROR


@pytest.mark.parametrize("name", PROTOCOLS)
def test_every_speaker_declares_routes_paging_and_an_sdk_suffix(name):
    speaker = SPEAKERS[name]
    assert speaker.routes and all(isinstance(r, EmulatorRoute) for r in speaker.routes)
    assert all(r.method in ("GET", "POST") and r.path.startswith("/") for r in speaker.routes)
    for variant in {r.variant for r in speaker.routes}:
        kinds = [r.kind for r in speaker.routes if r.variant == variant]
        assert "generate" in kinds and kinds.count("listing") == 1, (name, variant)
    assert isinstance(speaker.paging, Paging)
    assert isinstance(speaker.sdk_suffix, str)
    assert speaker.sdk_suffix == "" or speaker.sdk_suffix.startswith("/")
    assert isinstance(speaker.unsupported, frozenset)
    assert speaker.unsupported <= {n for n, t in FAULT_TYPES.items() if t.category == "stream"}


@pytest.mark.parametrize("name", PROTOCOLS)
def test_every_speaker_has_what_the_protocol_states(name):
    """Callers rely on `Speaker` alone, with no getattr: every member it states is there."""
    speaker = SPEAKERS[name]
    stated = [m for m in vars(Speaker) if not m.startswith("_")] + list(Speaker.__annotations__)
    assert {"routes", "paging", "sdk_suffix", "unsupported", "error", "status_error", "ask_of", "models"} <= set(stated)
    for member in stated:
        assert hasattr(speaker, member), member
    assert speaker.models([Listed("m")], None, variant=None)


def test_each_catalog_provider_gets_one_generation_and_one_listing_route():
    for provider in CATALOG.values():
        routes = routes_for(SPEAKERS[provider.dialect].routes, provider.options)
        kinds = [r.kind for r in routes]
        assert "generate" in kinds and kinds.count("listing") == 1, provider.name
        paths = [r.at(provider.emulator_prefix) for r in routes]
        assert len(set(paths)) == len(paths), provider.name


def test_azure_and_cohere_route_where_their_apis_do():
    azure = CATALOG["azure-openai"]
    paths = {r.at(azure.emulator_prefix) for r in routes_for(SPEAKERS["openai"].routes, azure.options)}
    assert paths == {"/azure-openai/openai/deployments/{deployment}/chat/completions", "/azure-openai/openai/models"}
    cohere = CATALOG["cohere"]
    paths = {r.at(cohere.emulator_prefix) for r in routes_for(SPEAKERS["cohere"].routes, cohere.options)}
    assert paths == {"/cohere/v2/chat", "/cohere/v1/models"}


def test_the_sdk_suffix_is_what_the_catalog_base_urls_end_with():
    for provider in CATALOG.values():
        suffix = SPEAKERS[provider.dialect].sdk_suffix
        if suffix:
            assert provider.base_url.endswith(suffix), provider.name
    routes = catalog_routes()
    assert routes["anthropic"].upstream == "https://api.anthropic.com"
    assert routes["gemini"].upstream == "https://generativelanguage.googleapis.com"
    assert routes["cohere"].upstream == "https://api.cohere.com"
    assert routes["openai"].upstream == "https://api.openai.com/v1"
    assert sdk_base("no-such-dialect", "https://x/v1/") == "https://x/v1"


@pytest.mark.parametrize("name", PROTOCOLS)
@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_every_speaker_renders_every_error_kind(name, kind):
    status, headers, body = SPEAKERS[name].error(kind, ask=Ask(model="m", prompt="p"), detail="why")
    assert 400 <= status < 600
    assert headers["content-type"] == "application/json"
    assert body


@pytest.mark.parametrize("name", PROTOCOLS)
@pytest.mark.parametrize("fault", [n for n, t in FAULT_TYPES.items() if t.category == "error"])
def test_what_a_speaker_says_its_dialect_reads_as_the_faults_kind(name, fault):
    """The two halves of one protocol agree, without a server between them (`test_fault_matrix` has one)."""
    params = FAULT_TYPES[fault].params
    kind = "server_error" if fault == "flapping" else fault
    status, headers, body = SPEAKERS[name].error(kind, status=params.get("status"),
                                                 retry_after=params.get("retry_after"), ask=Ask(model="m", prompt="p"))
    err = DIALECTS[name].parse_error(status, httpx.Headers(headers), body)
    assert classify.from_provider_error(name, err) is FAULT_TYPES[fault].expect


@pytest.mark.parametrize("name", PROTOCOLS)
@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_a_stream_error_is_the_error_body_in_the_streams_framing(name, kind):
    speaker = SPEAKERS[name]
    ask = Ask(model="m", prompt="p")
    _, _, body = speaker.error(kind, ask=ask)
    framed = speaker.stream_error(ask, kind)
    assert body in framed and framed.startswith(speaker.stream_error_frame[0])


@given(name=st.sampled_from(PROTOCOLS), kind=st.text(max_size=20), status=st.none() | st.integers(100, 599),
       retry_after=st.none() | st.floats(0, 1e6), detail=st.text(max_size=200), model=st.text(max_size=50))
def test_any_error_renders_and_reads_back(name, kind, status, retry_after, detail, model):
    """Any kind (an unknown one is a server error of its status), any detail or model text: rendered, and read
    back by the dialect into some kind, never an exception."""
    speaker = SPEAKERS[name]
    assert isinstance(speaker, Speaking)
    rendered, headers, body = speaker.error(kind, status=status, retry_after=retry_after,
                                            ask=Ask(model=model, prompt="p"), detail=detail)
    if kind not in speaker.errors:
        assert rendered == (status or 500)
    err = DIALECTS[name].parse_error(rendered, httpx.Headers(headers), body)
    assert isinstance(classify.from_provider_error(name, err), ErrorKind)


# -- paging --------------------------------------------------------------------------------------------

def _walk(paging: Paging, entries: list[Listed], size: str | None) -> list[str]:
    seen: list[str] = []
    query: dict[str, str] = {paging.size_key: size} if size is not None and paging.size_key else {}
    for _ in range(len(entries) + 2):
        page, token = paging.page(query, entries)
        seen.extend(e.name for e in page)
        if token is None:
            return seen
        assert paging.token_key is not None
        query = {**query, paging.token_key: token}
    raise AssertionError("the pages never end")


_entries = st.lists(st.text("abcdefgh", min_size=1, max_size=4), unique=True, max_size=80).map(
    lambda names: [Listed(n) for n in names])


@given(name=st.sampled_from(PROTOCOLS), entries=_entries, size=st.none() | st.integers(1, 30).map(str))
def test_following_the_tokens_lists_every_model_once(name, entries, size):
    assert _walk(SPEAKERS[name].paging, entries, size) == [e.name for e in entries]


@given(name=st.sampled_from(PROTOCOLS), entries=_entries, size=st.text(max_size=8), token=st.text(max_size=8))
def test_any_query_gives_a_bounded_page(name, entries, size, token):
    paging = SPEAKERS[name].paging
    query = {key: value for key, value in ((paging.size_key, size), (paging.token_key, token)) if key}
    page, _ = paging.page(query, entries)
    if paging is ONE_PAGE:
        assert page == entries
    else:
        assert len(page) <= 1000
        assert all(e in entries for e in page)


def test_paging_follows_each_providers_rules():
    entries = [Listed(str(i)) for i in range(60)]
    anthropic, gemini, cohere = (SPEAKERS[n].paging for n in ("anthropic", "gemini", "cohere"))
    page, token = anthropic.page({}, entries)
    assert (len(page), token) == (20, "19")  # the next after_id is the page's last id
    page, token = anthropic.page({"after_id": "19", "limit": "50"}, entries)
    assert (page[0].name, len(page), token) == ("20", 40, None)
    page, token = gemini.page({}, entries)
    assert (len(page), token) == (50, "50")  # an offset
    page, token = cohere.page({"page_size": "0"}, entries)  # not a size: the default
    assert (len(page), token) == (20, "20")
    assert SPEAKERS["openai"].paging.page({"limit": "1"}, entries) == (entries, None)


# -- requests ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("provider", sorted(CATALOG))
def test_what_a_dialect_asks_its_speaker_reads_at_one_of_its_routes(provider):
    """A probe's request (the dialect's) reaches a generation route of the speaker's and reads back as asked."""
    target = Target.from_provider(provider, base_url="http://emulator" + CATALOG[provider].emulator_prefix)
    spec = DIALECTS[target.dialect].build_request(target, "What is 2+2?", api_key="k")
    path = httpx.URL(spec.url).path
    speaker = SPEAKERS[target.dialect]
    patterns = [r.at(CATALOG[provider].emulator_prefix) for r in routes_for(speaker.routes, target.options)
                if r.kind == "generate" and r.method == spec.method]
    assert any(re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(p)), path) for p in patterns), (path, patterns)
    assert spec.json is not None
    ask = speaker.ask_of(spec.json, path, spec.params)
    assert ask.prompt == "What is 2+2?"
    assert ask.model == target.model
    assert ask.stream is True



@given(name=st.sampled_from(PROTOCOLS), status=st.sampled_from([400, 413, 500, 502, 503, 504]),
       message=st.text(max_size=150))
def test_an_error_of_a_status_reads_back_with_its_status_and_message(name, status, message):
    """The fault proxy's own errors (502, 504, 413, 400) in the route's format: its SDK reads them as the
    provider's, with the proxy's words."""
    rendered, headers, body = SPEAKERS[name].status_error(status, message, Ask(model="m", prompt="p"))
    assert rendered == status and headers["content-type"] == "application/json"
    err = DIALECTS[name].parse_error(status, httpx.Headers(headers), body)
    assert err.http_status == status
    if message.strip():
        assert err.message == message[:300]
    kind = classify.from_provider_error(name, err)
    assert (kind in (ErrorKind.SERVER_ERROR, ErrorKind.OVERLOADED)) if status >= 500 else kind is not ErrorKind.OK
