"""The emulator's model listings: each provider's shape and paging, read back by the dialects' own parsers,
and the control API that removes a model or gives it a retirement date (strictly validated)."""

from __future__ import annotations

import json
from datetime import date

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.control import check_listing
from probes.catalog import CATALOG
from probes.dialects import DIALECTS
from probes.dialects.base import ModelPage


@pytest.fixture
async def api(emulator):
    async with httpx.AsyncClient(base_url=emulator.url + "/_airisk") as c:
        yield c


async def _listing(emulator, provider: str, client: httpx.AsyncClient) -> list:
    """Every page of ``provider``'s listing, fetched and read as airisk reads a real one."""
    target = emulator.target(provider)
    dialect = DIALECTS[target.dialect]
    models, page = [], None
    for _ in range(50):
        spec = dialect.models_request(target, api_key=None, page=page)
        response = await client.request(spec.method, spec.url, headers=spec.headers, params=spec.params)
        assert response.status_code == 200, (provider, spec.url, response.text)
        read: ModelPage = dialect.parse_models(response.content)
        models.extend(read.models)
        if (page := read.next_page) is None:
            return models
    raise AssertionError("listing never ended")


@pytest.mark.parametrize("provider", ["openai", "azure-openai", "anthropic", "gemini", "cohere", "ollama", "groq",
                                      "mistral"])
async def test_each_listing_names_its_model_in_its_own_shape(emulator, client, provider):
    models = await _listing(emulator, provider, client)
    assert [m.name for m in models] == [CATALOG[provider].model]
    assert models[0].retires is None and not models[0].deprecated


@pytest.mark.parametrize("provider", ["openai", "azure-openai", "anthropic", "gemini", "cohere", "ollama"])
async def test_a_retirement_date_set_over_http_is_read_back(emulator, client, api, provider):
    response = await api.put(f"/models/{provider}", json={"model": "old-model", "retires": "2027-01-28"})
    assert response.status_code == 200, response.text
    models = {m.name: m for m in await _listing(emulator, provider, client)}
    assert models["old-model"].retires == date(2027, 1, 28)
    assert models[CATALOG[provider].model].retires is None


async def test_azure_states_the_date_in_its_own_fields(emulator, api):
    await api.put("/models/azure-openai", json={"model": "gpt-35-turbo", "retires": "2027-02-13"})
    async with httpx.AsyncClient() as c:
        body = (await c.get(emulator.url + "/azure-openai/openai/models", params={"api-version": "2024-10-21"})).json()
    entry = next(item for item in body["data"] if item["id"] == "gpt-35-turbo")
    assert entry["lifecycle_status"] == "deprecating"
    assert entry["deprecation"]["inference"] == 1802476800  # 2027-02-13T00:00:00Z
    assert "x_airisk_retires" not in entry


async def test_a_removed_model_leaves_the_listing_and_comes_back(emulator, client, api):
    default = CATALOG["anthropic"].model
    assert (await api.put("/models/anthropic", json={"model": default, "listed": False})).status_code == 200
    assert await _listing(emulator, "anthropic", client) == []
    await api.put("/models/anthropic", json={"model": default, "listed": True})
    assert [m.name for m in await _listing(emulator, "anthropic", client)] == [default]
    await api.put("/models/anthropic", json={"model": default, "listed": False})
    await api.post("/reset")
    assert [m.name for m in await _listing(emulator, "anthropic", client)] == [default]


async def test_a_model_asked_for_is_listed(emulator, client):
    from probes import probe

    await probe(emulator.target("openai", model="gpt-4.1-nano"), client=client)
    assert {m.name for m in await _listing(emulator, "openai", client)} == {CATALOG["openai"].model, "gpt-4.1-nano"}


@pytest.mark.parametrize(("provider", "size_key", "field"), [
    ("anthropic", "limit", "has_more"), ("gemini", "pageSize", "nextPageToken"), ("cohere", "page_size",
                                                                                  "next_page_token")])
async def test_long_listings_are_paged_as_each_provider_pages(emulator, client, api, provider, size_key, field):
    for i in range(45):
        await api.put(f"/models/{provider}", json={"model": f"m-{i:02d}"})
    names = [m.name for m in await _listing(emulator, provider, client)]  # 1000 a page: one request
    assert len(names) == 46 and len(set(names)) == 46
    target = emulator.target(provider)
    spec = DIALECTS[target.dialect].models_request(target, api_key=None)
    first = (await client.get(spec.url, params={size_key: "10"})).json()
    assert first[field]  # a small page points at the next one
    # walking 10 at a time reaches every model once
    seen, page = [], None
    dialect = DIALECTS[target.dialect]
    for _ in range(10):
        spec = dialect.models_request(target, api_key=None, page=page)
        body = (await client.get(spec.url, params={**spec.params, size_key: "10"})).content
        read = dialect.parse_models(body)
        seen += [m.name for m in read.models]
        if (page := read.next_page) is None:
            break
    assert seen == names


@pytest.mark.parametrize(("route", "body", "message"), [
    ("openia", {"model": "x"}, "models.route: unknown route 'openia'"),
    ("openai", [], "models: must be an object"),
    ("openai", {"model": ""}, "models.model: must be a model id of 1 to 256 printable characters"),
    ("openai", {"model": "x" * 257}, "models.model: must be a model id"),
    ("openai", {"model": "a\nb"}, "models.model: must be a model id"),
    ("openai", {"model": 5}, "models.model: must be a model id"),
    ("openai", {"model": "x", "listed": "no"}, "models.listed: must be true or false, got 'no'"),
    ("openai", {"model": "x", "listed": 0}, "models.listed: must be true or false"),
    ("openai", {"model": "x", "retires": "2027-02-30"}, "models.retires: not a date YYYY-MM-DD: '2027-02-30'"),
    ("openai", {"model": "x", "retires": "2027-W01-1"}, "models.retires: must be a date YYYY-MM-DD or null"),
    ("openai", {"model": "x", "retires": 1802476800}, "models.retires: must be a date YYYY-MM-DD or null"),
    ("openai", {"model": "x", "retires": "9999-01-01"}, "models.retires: year must be 2000 to 2200, got 9999"),
    ("openai", {"model": "x", "retire": "2027-01-01"}, "models.retire: unknown field (known: model, listed, retires)"),
])
async def test_bad_listing_changes_are_refused_with_the_field_named(api, route, body, message):
    response = await api.put(f"/models/{route}", content=json.dumps(body), headers={"content-type":
                                                                                    "application/json"})
    assert response.status_code in (400, 404)
    if response.status_code == 400:
        assert response.json()["error"].startswith(message)
    assert (await api.get("/models")).json() == {}  # nothing applied


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(["openai", "gemini", "nope", "*"]),
       data=st.one_of(st.dictionaries(st.sampled_from(["model", "listed", "retires", "other"]),
                                      st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300)
                                      | st.dates().map(date.isoformat), max_size=4),
                      st.lists(st.integers(), max_size=2), st.text(max_size=10), st.none()))
def test_listing_validation_accepts_only_what_it_can_serve(route, data):
    try:
        change = check_listing(route, data)
    except ValueError as exc:
        text = str(exc)
        assert text.startswith("models") and "\n" not in text and len(text) < 400
        return
    assert route in CATALOG and set(change) == {"model", "listed", "retires"}
    assert isinstance(change["model"], str) and 0 < len(change["model"]) <= 256 and change["model"].isprintable()
    assert isinstance(change["listed"], bool)
    assert change["retires"] is None or 2000 <= date.fromisoformat(change["retires"]).year <= 2200
