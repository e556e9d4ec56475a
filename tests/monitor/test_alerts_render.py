"""Each channel renders an alert's impact in its own idiom, checked at a loopback receiver against the
service's documented schema (tests/monitor/schemas/: PagerDuty Events API v2, Slack Block Kit limits).

The schemas are JSON Schema (2020-12). jsonschema is not a dependency, so `validate` checks the subset they
use (type, enum, const, required, properties, additionalProperties, items, min/maxItems, min/maxLength,
allOf, anyOf, oneOf, if/then/else, local $ref), and jsonschema checks them too where it is installed.
"""

from __future__ import annotations

import json
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from monitor.alerts import Alert, events_for
from monitor.alerts.channels import email, pagerduty, slack, webhook
from monitor.alerts.events import AlertEvent, Member, Transition
from monitor.alerts.impact import STATUSES, FeatureImpact, Impact, impact_source
from monitor.config import parse_config
from monitor.config.alerts import AlertsConfig
from monitor.store.models import AlertOutbox
from tests.monitor.test_alerts_channels import TOKEN, email_config, smtp  # noqa: F401 (a fixture)
from tests.monitor.test_alerts_impact import CONFIG, NOW, OPENED, _store

SCHEMAS = Path(__file__).parent / "schemas"
PAGERDUTY = json.loads((SCHEMAS / "pagerduty_event_v2.json").read_text())
SLACK = json.loads((SCHEMAS / "slack_message.json").read_text())
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def validate(instance: Any, schema: dict, root: dict | None = None, path: str = "$") -> list[str]:
    """The ways ``instance`` breaks ``schema`` (empty: it fits), each naming where."""
    root = root or schema
    if "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        return validate(instance, node, root, path)
    errors: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        ok = (isinstance(instance, int | float) and not isinstance(instance, bool) if kind == "number"
              else isinstance(instance, int) and not isinstance(instance, bool) if kind == "integer"
              else isinstance(instance, _TYPES[kind]))
        if not ok:
            return [f"{path}: not of type {kind}"]
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{path}: {instance!r} not one of {schema['enum']}")
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{path}: {instance!r} is not {schema['const']!r}")
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            errors.append(f"{path}: shorter than {schema['minLength']}")
        if len(instance) > schema.get("maxLength", float("inf")):
            errors.append(f"{path}: {len(instance)} characters, more than {schema['maxLength']}")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        if len(instance) > schema.get("maxItems", float("inf")):
            errors.append(f"{path}: {len(instance)} items, more than {schema['maxItems']}")
        if "items" in schema:
            for i, item in enumerate(instance):
                errors += validate(item, schema["items"], root, f"{path}[{i}]")
    if isinstance(instance, dict):
        errors += [f"{path}: {name!r} is required" for name in schema.get("required", ()) if name not in instance]
        props = schema.get("properties", {})
        for name, value in instance.items():
            if name in props:
                errors += validate(value, props[name], root, f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: {name!r} is not allowed")
    for sub in schema.get("allOf", ()):
        errors += validate(instance, sub, root, path)
    if "anyOf" in schema and all(validate(instance, s, root, path) for s in schema["anyOf"]):
        errors.append(f"{path}: fits none of anyOf")
    if "oneOf" in schema:
        tried = [validate(instance, s, root, path) for s in schema["oneOf"]]
        fits = sum(not e for e in tried)
        if fits != 1:
            errors.append(f"{path}: fits {fits} of oneOf, not exactly 1")
        if fits == 0:  # the nearest branch says what is wrong
            errors += min(tried, key=len)
    if "if" in schema:
        branch = schema.get("then") if not validate(instance, schema["if"], root, path) else schema.get("else")
        if branch is not None:
            errors += validate(instance, branch, root, path)
    return errors


def check(instance: Any, schema: dict) -> None:
    errors = validate(instance, schema)
    assert errors == [], errors
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.Draft202012Validator(schema).validate(instance)


@pytest.fixture
async def http():
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


def channels(*types: dict) -> AlertsConfig:
    return AlertsConfig.model_validate({
        "channels": [{"name": c["type"], **c} for c in types],
        "rules": [{"rule": "down", "channels": [c["type"] for c in types]},
                  {"rule": "recovered", "channels": [c["type"] for c in types]}]})


def store_events(session: Session, cfg: AlertsConfig, cause: dict | None = None) -> list[AlertEvent]:
    """The events of gpt-4o going DOWN (and of it recovering), with the impact from a real store."""
    incident = _store(session)
    config = parse_config(CONFIG, environ={})
    down = Transition("gpt-4o", "openai", "up", "down", OPENED + timedelta(seconds=20), incident_id=incident,
                      region="eu", cause=cause or {"rule": "failures", "kinds": {"server_error": 3}})
    up = Transition("gpt-4o", "openai", "down", "up", NOW, incident_id=incident, region="eu", opened_at=OPENED)
    source = impact_source(config=config, session=session, now=NOW,
                           environ={"AIRISK_DASHBOARD_URL": "https://airisk.example.com"})
    return events_for([down], config=cfg, now=NOW, impact=source) + events_for([up], config=cfg, now=NOW,
                                                                                impact=source)


def nasty(n: int) -> Impact:
    """``n`` features with markup in their names and notes longer than any Slack field."""
    features = tuple(FeatureImpact(
        f"<b>feature {i}</b> & co", ("low", "medium", "high", "critical")[i % 4], "unserved", ("gpt-4o",),
        ("gpt-4o",), notes=("x<y>" * 1500,), serving_status="s" * 2500, cost_minutes=1.0, down_minutes=1.0,
        degraded_minutes=0.0, loss=1.0) for i in range(n))
    return Impact(("gpt-4o",), NOW, OPENED, features, "https://airisk.example.com/providers?target=gpt-4o&incident=1",
                  ("known DOWN targets: OperationalError: <gone>",))


def event_with(impact: Impact, channel: str = "slack") -> AlertEvent:
    member = Member.of(Transition("gpt-4o", "openai", "up", "down", OPENED, incident_id=1, region="eu",
                                  cause={"kinds": {"quota_exhausted": 3}}))
    return AlertEvent(channel, "down", "trigger", f"down:openai:1:{channel}", member.dedup_key, "openai",
                      "openai: " + "a very long title " * 20, "critical", OPENED, (member,), impact=impact)


# --- Slack ---


async def test_slack_renders_one_section_per_feature_with_a_dashboard_button(session, receiver, http):
    cfg = channels({"type": "slack", "url_env": "SLACK_URL"})
    trigger, resolve = store_events(session, cfg)
    await slack.send(Alert(trigger, cfg.channels[0], f"{receiver.url}/slack/{TOKEN}"), client=http)
    await slack.send(Alert(resolve, cfg.channels[0], f"{receiver.url}/slack/{TOKEN}"), client=http)
    got, back = (r.body for r in receiver.accepted("/slack"))
    check(got, SLACK)
    check(back, SLACK)
    sections = [b for b in got["blocks"] if b["type"] == "section" and "fields" in b]
    assert [s["text"]["text"].split("*")[1] for s in sections] == ["support", "chat", "tags", "search"]
    support, chat = sections[:2]
    assert "(critical) — :x: nothing serves it" in support["text"]["text"]
    fields = {f["text"].split("\n")[0]: f["text"].split("\n", 1)[1] for f in chat["fields"]}
    assert fields["*Serving now*"].startswith("served by local (fallback, verified")
    assert fields["*Verified*"].endswith("by drill outage")
    assert "meets min_quality 0.8" in fields["*Quality*"]
    (button,) = next(b for b in got["blocks"] if b["type"] == "actions")["elements"]
    assert button["url"].startswith("https://airisk.example.com/providers?target=gpt-4o&incident=")
    assert "worst criticality critical" in got["blocks"][-1]["elements"][0]["text"]
    assert got["text"].startswith(":red_circle: openai: gpt-4o@eu is DOWN")


async def test_slack_keeps_its_limits_whatever_the_impact(receiver, http):
    cfg = channels({"type": "slack", "url_env": "SLACK_URL"})
    event = event_with(nasty(80))
    await slack.send(Alert(event, cfg.channels[0], f"{receiver.url}/slack/{TOKEN}"), client=http)
    (got,) = (r.body for r in receiver.accepted("/slack"))
    check(got, SLACK)
    assert len(got["blocks"]) == 50
    assert any(b.get("text", {}).get("text", "").startswith("…and ") for b in got["blocks"])
    assert got["blocks"][0]["text"]["text"].endswith("…") and len(got["blocks"][0]["text"]["text"]) == 150
    # Markup in a feature's name is text, not Slack markup.
    assert "&lt;b&gt;feature 0&lt;/b&gt; &amp; co" in json.dumps(got)
    assert "<b>feature" not in json.dumps(got)
    assert any("Runbook" in b.get("text", {}).get("text", "") for b in got["blocks"])  # a spent quota


def test_the_schemas_reject_what_slack_and_pagerduty_refuse():
    body = slack.body(Alert(event_with(nasty(3)), channels({"type": "slack", "url_env": "S"}).channels[0]))
    too_many = {**body, "blocks": body["blocks"] * 20}
    assert any("more than 50" in e for e in validate(too_many, SLACK))
    fat = json.loads(json.dumps(body))
    next(b for b in fat["blocks"] if "fields" in b)["fields"][0]["text"] = "x" * 2001
    assert any("more than 2000" in e for e in validate(fat, SLACK))
    eleven = json.loads(json.dumps(body))
    block = next(b for b in eleven["blocks"] if "fields" in b)
    block["fields"] = block["fields"] * 11
    assert any("more than 10" in e for e in validate(eleven, SLACK))
    (pd,) = pagerduty.events(Alert(event_with(nasty(1), "pd"), channels({"type": "pagerduty",
                                                                         "routing_key_env": "K"}).channels[0]), "key")
    assert validate(pd, PAGERDUTY) == []
    assert validate({**pd, "payload": {**pd["payload"], "severity": "fatal"}}, PAGERDUTY)
    assert validate({**pd, "payload": {**pd["payload"], "summary": "s" * 1025}}, PAGERDUTY)
    assert validate({"routing_key": "k", "event_action": "resolve"}, PAGERDUTY) == ["$: 'dedup_key' is required"]
    assert validate({"routing_key": "k", "event_action": "trigger"}, PAGERDUTY) == ["$: 'payload' is required"]


# --- PagerDuty ---


async def test_pagerduty_gets_the_features_in_custom_details_and_the_severity_from_criticality(session, receiver,
                                                                                               http):
    cfg = channels({"type": "pagerduty", "routing_key_env": "PD_KEY", "events_url": f"{receiver.url}/pd"})
    trigger, resolve = store_events(session, cfg)
    for event in (trigger, resolve):
        await pagerduty.send(Alert(event, cfg.channels[0], TOKEN), client=http)
    got, back = (r.body for r in receiver.accepted("/pd"))
    check(got, PAGERDUTY)
    check(back, PAGERDUTY)
    assert got["payload"]["severity"] == "critical" == trigger.severity  # support: critical, nothing serves it
    details = got["payload"]["custom_details"]
    assert details["worst_criticality"] == "critical"
    assert [f["feature"] for f in details["features"]] == ["support", "chat", "tags", "search"]
    assert details["features"][1]["verified_by"] == "outage" and details["features"][1]["meets_min_quality"] is True
    assert details["impact"][0].startswith("support (critical): nothing serves it; cost so far 30.0 min")
    assert got["links"] == [{"href": details["dashboard"], "text": "airisk dashboard: this incident"}]
    assert got["client_url"] == details["dashboard"]
    assert back["event_action"] == "resolve" and back["dedup_key"] == got["dedup_key"]


async def test_pagerduty_pages_a_spent_quota_with_its_wording_and_runbook(session, receiver, http):
    cfg = channels({"type": "pagerduty", "routing_key_env": "PD_KEY", "events_url": f"{receiver.url}/pd"})
    trigger, _ = store_events(session, cfg, cause={"rule": "failures", "kinds": {"quota_exhausted": 3}})
    await pagerduty.send(Alert(trigger, cfg.channels[0], TOKEN), client=http)
    (got,) = (r.body for r in receiver.accepted("/pd"))
    check(got, PAGERDUTY)
    assert got["payload"]["summary"] == ("openai: quota/credit exhausted — needs a human with a credit card, "
                                         "retrying will not help")
    assert got["payload"]["custom_details"]["runbook"][0].startswith("Spent quota or credit balance")


# --- Email ---


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k == "href"]

    def handle_data(self, data):
        self.text.append(data)


async def test_email_has_a_plain_text_and_an_escaped_html_part(smtp, http):  # noqa: F811 (the fixture)
    sink = smtp()
    cfg = email_config(sink.port)
    event = event_with(nasty(2), "ch")
    await email.send(Alert(event, cfg.channels[0]), client=http)
    (_, _, msg) = sink.messages[0]
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    plain = msg.get_body(("plain",)).get_content()
    assert "feature <b>feature 0</b> & co (low): nothing serves it; cost so far 1.0 min" in plain
    assert "runbook: Spent quota or credit balance" in plain
    page = msg.get_body(("html",)).get_content()
    assert "&lt;b&gt;feature 0&lt;/b&gt; &amp; co" in page and "<b>feature" not in page
    parsed = _Html()
    parsed.feed(page)
    assert "b" in parsed.tags  # our own <b>Runbook:</b>, and only ours
    assert parsed.tags.count("b") == 1 and parsed.tags.count("tr") == 3  # a header row and two features
    assert parsed.links == ["https://airisk.example.com/providers?target=gpt-4o&incident=1"]
    assert "Not known: known DOWN targets: OperationalError: <gone>" in "".join(parsed.text)


# --- Webhook ---


async def test_the_webhook_carries_every_field_and_the_impact_round_trips(session, receiver, http):
    cfg = channels({"type": "webhook", "url_env": "HOOK_URL"})
    trigger, resolve = store_events(session, cfg)
    for event in (trigger, resolve):
        await webhook.send(Alert(event, cfg.channels[0], f"{receiver.url}/hook/{TOKEN}"), client=http)
    got, back = (r.body for r in receiver.accepted("/hook"))
    assert set(got) == {"version", "rule", "action", "event_key", "dedup_key", "title", "severity", "provider",
                        "targets", "at", "members", "details", "worst_criticality", "runbook", "impact"}
    assert Impact.from_dict(got["impact"]) == trigger.impact
    assert got["impact"]["features"][0] == trigger.impact.features[0].to_dict()
    assert got["worst_criticality"] == "critical" and got["runbook"] == []  # a server error has no runbook line
    # The recovery counts the whole incident: 30 minutes of support down.
    assert back["impact"]["features"][0]["cost_minutes"] == pytest.approx(30)
    assert back["severity"] == "info"


# --- Any impact: every channel's payload keeps its schema, and the HTML holds only our markup ---

_words = st.text(st.characters(blacklist_categories=("Cs",)), max_size=3000)
_features = st.builds(
    FeatureImpact, _words, st.sampled_from(("low", "medium", "high", "critical")), st.sampled_from(STATUSES),
    st.lists(_words, max_size=3).map(tuple), st.lists(_words, max_size=3).map(tuple),
    serving=st.none() | _words, serving_status=_words, notes=st.lists(_words, max_size=3).map(tuple),
    cost_minutes=st.none() | st.floats(0, 1e6), pass_rate=st.none() | st.floats(0, 1),
    quality_lower=st.none() | st.floats(0, 1), quality_judged=st.none() | st.integers(0, 10**6))
_impacts = st.builds(Impact, st.just(("gpt-4o",)), st.just(NOW), st.none() | st.just(OPENED),
                     st.lists(_features, max_size=70).map(tuple),
                     st.sampled_from(["", "https://airisk.example.com/providers?target=a&incident=1"]),
                     st.lists(_words, max_size=12).map(tuple))
_OUR_TAGS = {"h2", "ul", "li", "p", "b", "i", "small", "table", "tr", "th", "td", "a", "html", "body"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_impacts, st.sampled_from([{}, {"kinds": {"quota_exhausted": 2}}, {"error_kind": "auth"}]))
def test_any_impact_renders_within_every_schema(impact, cause):
    member = Member.of(Transition("gpt-4o", "openai", "up", "down", OPENED, incident_id=1, cause=cause))
    event = AlertEvent("c", "down", "trigger", "down:openai:1:c", member.dedup_key, "openai", "openai: gpt-4o is DOWN",
                       "critical", OPENED, (member,), impact=impact)
    cfg = channels({"type": "slack", "url_env": "S"}, {"type": "pagerduty", "routing_key_env": "K"})
    check(json.loads(json.dumps(slack.body(Alert(event, cfg.channels[0])))), SLACK)
    for body in pagerduty.events(Alert(event, cfg.channels[1]), "key"):
        check(json.loads(json.dumps(body)), PAGERDUTY)
    parsed = _Html()
    parsed.feed(email.html_body(event))
    assert set(parsed.tags) <= _OUR_TAGS
    text = "".join(parsed.text)
    assert all(f.feature in text for f in impact.features)
    back = AlertEvent.from_row(AlertOutbox(**json.loads(json.dumps(event.to_row()))))
    assert back == event
