"""Model lifecycle: the real emulator's listings on loopback, read by `LifecycleWatcher` into a real database
(SQLite, and PostgreSQL where it runs), with the alert events it queues; and the listing parsers under
hostile input (hypothesis)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from monitor.config import parse_config
from monitor.lifecycle import MAX_LISTING_BYTES, LifecycleWatcher, ListingError, load_published, plan, read_listing
from monitor.store.lifecycle import ModelNoticeRow, known_retirements
from monitor.store.models import AlertOutbox
from probes import Target, make_client
from probes.dialects import DIALECTS
from probes.dialects.base import MODEL_NAME_LIMIT, ModelPage
from tests.probes.loopback import Canned, serving

NOW = datetime.now(UTC).replace(microsecond=0)


def _config(url: str, *, extra_targets: str = "", lifecycle: str = ""):
    return parse_config(f"""
targets:
  - {{name: claude-support, provider: anthropic, model: claude-x, base_url: "{url}/anthropic/v1",
     key_env: AIRISK_TEST_UNSET_KEY}}
  - {{name: claude-default, provider: anthropic, base_url: "{url}/anthropic/v1", key_env: AIRISK_TEST_UNSET_KEY}}
  - {{name: gpt, provider: openai, base_url: "{url}/openai/v1", key_env: AIRISK_TEST_UNSET_KEY}}
{extra_targets}
features:
  support_chat: {{chain: [{{backend: claude-support}}, {{backend: gpt}}], criticality: critical}}
  search: {{chain: [{{backend: gpt}}, {{backend: claude-support}}], criticality: medium}}
alerts:
  channels: [{{name: team, type: webhook, url_env: AIRISK_TEST_HOOK}}]
  rules:
    - {{rule: model_lifecycle, channels: [team]}}
    - {{rule: down, channels: [team]}}
{lifecycle}
""")


async def _control(emulator, route: str, **body) -> None:
    async with httpx.AsyncClient() as c:
        response = await c.put(f"{emulator.url}/_airisk/models/{route}", json=body)
        assert response.status_code == 200, response.text


def _outbox(engine) -> list[AlertOutbox]:
    with Session(engine) as s:
        return list(s.exec(select(AlertOutbox).where(AlertOutbox.rule == "model_lifecycle")
                           .order_by(AlertOutbox.id)).all())


def _notices(engine, kind: str | None = None) -> list[ModelNoticeRow]:
    with Session(engine) as s:
        query = select(ModelNoticeRow).order_by(ModelNoticeRow.id)
        if kind:
            query = query.where(ModelNoticeRow.kind == kind)
        return list(s.exec(query).all())


async def test_a_model_removed_from_the_listing_is_an_incident_naming_its_features(emulator, engine):
    await _control(emulator, "anthropic", model="claude-x")  # listed
    async with make_client() as client:
        watcher = LifecycleWatcher(_config(emulator.url), engine, client, published={})
        assert await watcher.check_once(NOW) == []
        await _control(emulator, "anthropic", model="claude-x", listed=False)
        raised = await watcher.check_once(NOW + timedelta(hours=6))
        assert [(n.kind, n.action, n.model) for n in raised] == [("vanished", "trigger", "claude-x")]
        notice = raised[0]
        assert notice.severity == "critical"
        assert "support_chat (primary)" in notice.message and "search (fallback 1)" in notice.message
        [row] = _notices(engine, "vanished")
        assert row.opened_at == NOW + timedelta(hours=6) and row.closed_at is None
        [event] = _outbox(engine)
        assert event.channel == "team" and event.payload["action"] == "trigger"
        assert "claude-x has left anthropic's model listing" in event.payload["title"]
        assert event.payload["details"]["features"] == ["support_chat (primary)", "search (fallback 1)"]
        assert event.payload["members"][0]["cause"]["error_kind"] == "model_not_found"

        assert await watcher.check_once(NOW + timedelta(hours=12)) == []  # still gone: nothing new
        assert len(_outbox(engine)) == 1

        await _control(emulator, "anthropic", model="claude-x", listed=True)
        back = await watcher.check_once(NOW + timedelta(hours=18))
        assert [(n.kind, n.action) for n in back] == [("vanished", "resolve")]
        [row] = _notices(engine, "vanished")
        assert row.closed_at == NOW + timedelta(hours=18)
        trigger, resolve = _outbox(engine)
        assert resolve.payload["action"] == "resolve" and resolve.dedup_key == trigger.dedup_key

        await _control(emulator, "anthropic", model="claude-x", listed=False)  # gone again the same day
        again = await watcher.check_once(NOW + timedelta(hours=19))
        assert [(n.kind, n.action) for n in again] == [("vanished", "trigger")]
        assert len(_outbox(engine)) == 3


async def test_a_retirement_date_warns_once_per_step(emulator, engine):
    retires = NOW.date() + timedelta(days=21)
    await _control(emulator, "anthropic", model="claude-x", retires=retires.isoformat())
    async with make_client() as client:
        watcher = LifecycleWatcher(_config(emulator.url), engine, client, published={})
        [notice] = await watcher.check_once(NOW)
        assert notice.kind == "retiring" and notice.days_left == 21 and notice.severity == "warning"
        assert notice.message == ("claude-x, used by support_chat (primary) and search (fallback 1), retires in 21 "
                                  f"days ({retires.isoformat()})")
        assert notice.source == "listing"
        assert await watcher.check_once(NOW + timedelta(hours=6)) == []  # the next poll: no second warning
        assert len(_outbox(engine)) == 1
        [step7] = await watcher.check_once(NOW + timedelta(days=15))  # 6 days left: the 7-day step
        assert step7.days_left == 6 and step7.severity == "error"
        [gone] = await watcher.check_once(NOW + timedelta(days=22))
        assert gone.kind == "retired" and gone.severity == "critical"
        assert [e.payload["severity"] for e in _outbox(engine)] == ["warning", "error", "critical"]
    with Session(engine) as s:
        assert known_retirements(session=s)[("anthropic", "claude-x")] == (retires, "listing")


async def test_a_date_in_the_config_wins_and_is_used_without_any_listing(engine):
    retires = NOW.date() + timedelta(days=3)
    config = parse_config(f"""
targets:
  - {{name: dead, provider: anthropic, model: claude-z, base_url: "http://127.0.0.1:9/v1", retires: {retires}}}
""")
    async with make_client() as client:
        watcher = LifecycleWatcher(config, engine, client, published={})
        [notice] = await watcher.check_once(NOW)  # the listing is unreachable: no vanished, the date still counts
    assert notice.kind == "retiring" and notice.source == "config" and notice.days_left == 3
    assert notice.message.startswith("claude-z, used by target dead, retires in 3 days")
    assert _outbox(engine) == []  # no alerts section, no events


async def test_a_published_date_is_used_for_a_model_the_listing_does_not_date(emulator, engine):
    await _control(emulator, "anthropic", model="claude-x")
    published = {("anthropic", "claude-x"): (NOW.date() + timedelta(days=30), "https://example.test/deprecations")}
    async with make_client() as client:
        [notice] = await LifecycleWatcher(_config(emulator.url), engine, client, published=published).check_once(NOW)
    assert notice.source == "https://example.test/deprecations" and notice.days_left == 30


async def test_a_model_never_listed_is_a_warning_not_an_incident(emulator, engine):
    async with make_client() as client:
        watcher = LifecycleWatcher(_config(emulator.url), engine, client, published={})
        raised = await watcher.check_once(NOW)
        assert [(n.kind, n.severity) for n in raised] == [("not_listed", "warning")]
        assert await watcher.check_once(NOW + timedelta(hours=6)) == []
    assert _notices(engine, "vanished") == []


async def test_an_empty_or_unreadable_listing_judges_nothing_missing(emulator, engine):
    await _control(emulator, "anthropic", model="claude-x")
    async with make_client() as client:
        watcher = LifecycleWatcher(_config(emulator.url), engine, client, published={})
        await watcher.check_once(NOW)
        for model in ("claude-x", "claude-haiku-4-5"):
            await _control(emulator, "anthropic", model=model, listed=False)
        assert await watcher.check_once(NOW + timedelta(hours=1)) == []  # an empty listing is not believed


async def test_one_listing_read_per_distinct_endpoint(engine, monkeypatch):
    monkeypatch.setenv("AIRISK_TEST_KEY_A", "sk-test-a")
    monkeypatch.setenv("AIRISK_TEST_KEY_B", "sk-test-b")
    body = json.dumps({"object": "list", "data": [{"id": "m1"}, {"id": "m2"}]}).encode()
    canned = Canned(content_type="application/json", chunks=[body])
    async with serving(canned) as url:
        config = parse_config(f"""
targets:
  - {{name: a1, provider: groq, model: m1, base_url: "{url}/v1", key_env: AIRISK_TEST_KEY_A}}
  - {{name: a2, provider: groq, model: m2, base_url: "{url}/v1/", key_env: AIRISK_TEST_KEY_A}}
  - {{name: a3, provider: groq, model: m1, base_url: "{url}/v1", key_env: AIRISK_TEST_KEY_A}}
  - {{name: b1, provider: groq, model: m1, base_url: "{url}/v1", key_env: AIRISK_TEST_KEY_B}}
""")
        assert sorted(len(e.uses) for e in plan(config)) == [1, 2]
        async with make_client() as client:
            assert await LifecycleWatcher(config, engine, client, published={}).check_once(NOW) == []
    assert len(canned.requests) == 2  # one per (URL, key), however many targets share it
    heads = b"\n".join(canned.requests).lower()
    assert b"authorization: bearer sk-test-a" in heads and b"authorization: bearer sk-test-b" in heads
    with Session(engine) as s:
        stored = json.dumps([r.model_dump(mode="json") for r in s.exec(select(ModelNoticeRow)).all()])
    assert "sk-test" not in stored


async def test_run_checks_at_once_and_stops(emulator, engine):
    await _control(emulator, "anthropic", model="claude-x", retires=(NOW.date() + timedelta(days=5)).isoformat())
    async with make_client() as client:
        watcher = LifecycleWatcher(_config(emulator.url, lifecycle="lifecycle: {interval: 1h}"), engine, client,
                                   published={})
        stop = asyncio.Event()
        task = asyncio.create_task(watcher.run(stop))
        for _ in range(200):
            if _notices(engine):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)
    assert [n.kind for n in _notices(engine)] == ["retiring"]


def test_the_shipped_dates_are_well_formed():
    published = load_published()
    assert published[("anthropic", "claude-3-opus-20240229")] == (
        date(2026, 1, 5), "https://docs.claude.com/en/docs/about-claude/model-deprecations")
    assert all(url.startswith("https://") for _, url in published.values())


# -- reading hostile listings -----------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "message"), [
    (401, b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}',
     "listing answered HTTP 401"),
    (200, b"<html>captive portal</html>", "listing unreadable: malformed JSON"),
    (200, b"[" * 100_000, "listing unreadable: malformed JSON (nested too deep)"),
    (200, b'{"data": 5}', "listing unreadable: listing has no 'data' list"),
    (200, b'{"data": []}' + b" " * (MAX_LISTING_BYTES + 1), f"listing larger than {MAX_LISTING_BYTES} bytes"),
])
async def test_a_bad_listing_is_one_safe_error(status, body, message):
    async with serving(Canned(status=status, content_type="application/json", chunks=[body])) as url, \
            make_client() as client:
        target = Target.from_provider("anthropic", base_url=url + "/v1", key_env=None)
        with pytest.raises(ListingError) as err:
            await read_listing(client, target)
    assert str(err.value).startswith(message)


async def test_pages_that_point_back_at_themselves_end():
    body = json.dumps({"data": [{"id": "m"}], "has_more": True, "last_id": "m"}).encode()

    async with serving(Canned(content_type="application/json", chunks=[body])) as url, make_client() as client:
        target = Target.from_provider("anthropic", base_url=url + "/v1", key_env=None)
        models = await read_listing(client, target)
    assert [m.name for m in models] == ["m", "m"]  # the first page, then the same token again: stop


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                     lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
                         st.sampled_from(["data", "models", "id", "name", "model", "has_more", "last_id",
                                          "nextPageToken", "next_page_token", "deprecation", "inference",
                                          "lifecycle_status", "is_deprecated", "x_airisk_retires"])
                         | st.text(max_size=5),
                         inner, max_size=6), max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(dialect=st.sampled_from(sorted(DIALECTS)), value=_JSON)
def test_listing_parsers_take_any_json(dialect, value):
    _check_parse(dialect, json.dumps(value).encode())


@settings(max_examples=200, deadline=None)
@given(dialect=st.sampled_from(sorted(DIALECTS)), body=st.binary(max_size=300))
def test_listing_parsers_take_any_bytes(dialect, body):
    _check_parse(dialect, body)


@settings(max_examples=200, deadline=None)
@given(dialect=st.sampled_from(sorted(DIALECTS)),
       names=st.lists(st.text(max_size=300) | st.integers() | st.none(), max_size=8),
       dates=st.lists(st.text(max_size=12) | st.dates().map(date.isoformat) | st.integers(), max_size=8))
def test_listing_entries_of_any_shape(dialect, names, dates):
    key = {"openai": "data", "anthropic": "data"}.get(dialect, "models")
    field = {"openai": "id", "anthropic": "id"}.get(dialect, "name")
    items = [{field: n, "x_airisk_retires": d, "deprecation": {"inference": d}} for n, d in zip(names, dates,
                                                                                                  strict=False)]
    page = _check_parse(dialect, json.dumps({key: items}).encode())
    assert page is not None


def _check_parse(dialect: str, body: bytes) -> ModelPage | None:
    try:
        page = DIALECTS[dialect].parse_models(body)
    except ValueError as exc:
        assert "\n" not in str(exc)[:200]
        return None
    assert isinstance(page, ModelPage)
    for model in page.models:
        assert isinstance(model.name, str) and 0 < len(model.name) <= MODEL_NAME_LIMIT and model.name.isprintable()
        assert model.retires is None or 2000 <= model.retires.year <= 2200
    assert page.next_page is None or (isinstance(page.next_page, str) and len(page.next_page) <= 1000)
    return page


async def test_azure_dates_its_own_retirements_in_the_listing(emulator, engine):
    retires = NOW.date() + timedelta(days=10)
    await _control(emulator, "azure-openai", model="gpt-35-turbo", retires=retires.isoformat())
    config = parse_config(f"""
targets:
  - {{name: az, provider: azure-openai, model: gpt-35-turbo, base_url: "{emulator.url}/azure-openai",
     key_env: AIRISK_TEST_UNSET_KEY}}
""")
    async with make_client() as client:
        [notice] = await LifecycleWatcher(config, engine, client, published={}).check_once(NOW)
    assert (notice.kind, notice.retires, notice.source, notice.days_left) == ("retiring", retires, "listing", 10)


def test_endpoints_are_named_without_credentials():
    from monitor.lifecycle import safe_url

    # The config refuses credentials in a URL already; the name is safe even for a URL built elsewhere.
    assert safe_url("https://user:s3cret@gateway.example.com:8443/v1/?token=abc#x") == \
        "https://gateway.example.com:8443/v1"
    config = parse_config("""
targets:
  - {name: a, provider: openai, base_url: "https://gateway.example.com/v1/"}
""")
    [endpoint] = plan(config)
    assert endpoint.name == "openai https://gateway.example.com/v1 (OPENAI_API_KEY)"


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=40) | st.integers() | st.dates().map(date.isoformat))
def test_a_target_retires_date_is_a_day_or_one_line_naming_the_field(value):
    from monitor.config import ConfigError

    try:
        config = parse_config(f"targets:\n  - {{provider: openai, retires: {json.dumps(value)}}}\n")
    except ConfigError as exc:
        assert "targets[0].retires" in str(exc) or "YAML" in str(exc)
        return
    retires = config.targets[0].retires
    assert retires is None or 2000 <= retires.year <= 2200


async def test_mistral_dates_a_model_in_its_listing_and_answers_to_its_aliases(engine):
    # Mistral's GET /v1/models entry (docs.mistral.ai/api, Models): deprecation as ISO 8601, aliases.
    retires = NOW.date() + timedelta(days=25)
    body = json.dumps({"object": "list", "data": [
        {"id": "mistral-small-2503", "object": "model", "created": 1741000000, "owned_by": "mistralai",
         "archived": False, "aliases": ["mistral-small-latest"], "deprecation": f"{retires}T12:00:00Z",
         "capabilities": {"completion_chat": True}, "max_context_length": 131072}]}).encode()
    async with serving(Canned(content_type="application/json", chunks=[body])) as url, make_client() as client:
        config = parse_config(f"""
targets:
  - {{name: small, provider: mistral, model: mistral-small-latest, base_url: "{url}/v1", key_env: AIRISK_TEST_UNSET}}
""")
        [notice] = await LifecycleWatcher(config, engine, client, published={}).check_once(NOW)
    assert (notice.kind, notice.model, notice.retires, notice.source) == ("retiring", "mistral-small-latest", retires,
                                                                          "listing")


async def test_the_real_airisk_emulate_process_drives_a_vanished_model_incident(tmp_path):
    """The same path as a user's: `airisk emulate` in its own process, its control API, a SQLite file."""
    import socket
    import sys
    from types import SimpleNamespace

    from monitor.store import make_engine, migrate

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "airisk.cli", "emulate", "--port", str(port),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    emulator = SimpleNamespace(url=f"http://127.0.0.1:{port}")
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    try:
        async with httpx.AsyncClient() as c:
            for _ in range(1200):  # a cold interpreter on a loaded machine takes seconds
                try:
                    if (await c.get(f"{emulator.url}/_airisk/health", timeout=0.5)).status_code == 200:
                        break
                except httpx.HTTPError:
                    assert proc.returncode is None, (await proc.stderr.read()).decode()
                    await asyncio.sleep(0.05)
        migrate(engine)
        await _control(emulator, "anthropic", model="claude-x")
        async with make_client() as client:
            watcher = LifecycleWatcher(_config(emulator.url), engine, client, published={})
            assert await watcher.check_once(NOW) == []
            await _control(emulator, "anthropic", model="claude-x", listed=False)
            [notice] = await watcher.check_once(NOW + timedelta(hours=6))
        assert notice.kind == "vanished" and "support_chat (primary)" in notice.message
        assert [e.payload["action"] for e in _outbox(engine)] == ["trigger"]
    finally:
        if proc.returncode is None:
            proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        engine.dispose()


async def test_two_keys_on_one_url_are_two_listings(engine, monkeypatch):
    """Key B's listing lacks the model key A's lists: for B it was never listed, not vanished."""
    from aiohttp import web

    monkeypatch.setenv("AIRISK_TEST_KEY_A", "sk-test-a")
    monkeypatch.setenv("AIRISK_TEST_KEY_B", "sk-test-b")

    async def models(request: web.Request) -> web.Response:
        names = ["m1", "m2"] if request.headers.get("authorization") == "Bearer sk-test-a" else ["m2"]
        return web.json_response({"object": "list", "data": [{"id": n} for n in names]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        config = parse_config(f"""
targets:
  - {{name: a, provider: groq, model: m1, base_url: "{url}/v1", key_env: AIRISK_TEST_KEY_A}}
  - {{name: b, provider: groq, model: m1, base_url: "{url}/v1", key_env: AIRISK_TEST_KEY_B}}
""")
        async with make_client() as client:
            raised = await LifecycleWatcher(config, engine, client, published={}).check_once(NOW)
    finally:
        await runner.cleanup()
    assert [(n.kind, n.targets, n.endpoint) for n in raised] == [
        ("not_listed", ("b",), f"groq {url}/v1 (AIRISK_TEST_KEY_B)")]
