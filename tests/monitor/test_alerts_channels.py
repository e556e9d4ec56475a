"""Each alert channel against a real receiver on loopback: what arrives, and how failures are judged."""

from __future__ import annotations

import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trustme

from monitor.alerts import Alert, DeliveryError, Grouper, Transition, events_for, registry
from monitor.alerts.channels import apprise_channel, email, pagerduty, slack, webhook
from monitor.alerts.redact import redact
from monitor.config.alerts import AlertsConfig, ChannelConfig
from tests.monitor.test_alerts_harness import SmtpSink, free_port

T0 = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)
TOKEN = "tok" + secrets.token_hex(12)


def down(target: str = "gpt-4o", incident: int = 7, at: datetime = T0, provider: str = "openai") -> Transition:
    return Transition(target, provider, "up", "down", at, incident_id=incident, region="eu-west",
                      cause={"error_kind": "overloaded", "http_status": 529, "failed": "3/3"})


def up(target: str = "gpt-4o", incident: int = 7, at: datetime = T0 + timedelta(minutes=12)) -> Transition:
    return Transition(target, "openai", "down", "up", at, incident_id=incident, region="eu-west",
                      opened_at=T0)


def config(channel: dict) -> AlertsConfig:
    return AlertsConfig.model_validate({
        "channels": [{"name": "ch", **channel}],
        "rules": [{"rule": "down", "channels": ["ch"]}, {"rule": "recovered", "channels": ["ch"]}],
    })


def alert_for(cfg: AlertsConfig, transitions: list[Transition], secret: str | None) -> Alert:
    (event,) = events_for(transitions, config=cfg, now=T0 + timedelta(hours=1))
    return Alert(event, cfg.channels[0], secret)


@pytest.fixture
async def http():
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


def test_registry_has_one_module_per_channel_type():
    types = ChannelConfig.model_fields["type"].annotation.__args__
    assert sorted(registry) == sorted(types)
    for module in registry.values():
        assert callable(module.send)
        assert module.SECRET in ChannelConfig.model_fields


def test_redact_masks_a_url_and_the_parts_libraries_print_alone():
    url = f"https://hooks.slack.com/services/T0123/B0456/{TOKEN}?sig=abcdef0123456789"
    said = [url, f"POST /services/T0123/B0456/{TOKEN}", f"json://{url[8:]}", f"token {TOKEN}", "?sig=abcdef0123456789",
            "key abcdef0123456789"]
    assert [redact(text, [url]) for text in said] == [
        "[redacted]", "POST [redacted]", "json://[redacted]", "token [redacted]", "?[redacted]", "key [redacted]"]
    # Words of the URL that are not key material stay readable.
    assert redact("hooks.slack.com services", [url]) == "hooks.slack.com services"


async def test_webhook_posts_the_alert_as_json_with_an_idempotency_key(receiver, http):
    cfg = config({"type": "webhook", "url_env": "HOOK_URL"})
    alert = alert_for(cfg, [down()], f"{receiver.url}/hook/{TOKEN}")
    await webhook.send(alert, client=http)

    (request,) = receiver.accepted()
    assert request.path == f"/hook/{TOKEN}"
    assert request.headers["Idempotency-Key"] == alert.event.event_key == "down:openai:7:ch"
    body = request.body
    assert (body["rule"], body["action"], body["severity"], body["provider"]) == ("down", "trigger", "critical",
                                                                                  "openai")
    assert body["title"] == "openai: gpt-4o@eu-west is DOWN"
    assert body["targets"] == ["gpt-4o@eu-west"]
    assert body["dedup_key"] == "airisk-incident-7"
    assert body["members"][0]["cause"] == {"error_kind": "overloaded", "http_status": 529, "failed": "3/3"}
    assert datetime.fromisoformat(body["at"]) == T0


async def test_slack_gets_text_and_blocks(receiver, http):
    cfg = config({"type": "slack", "url_env": "SLACK_URL"})
    await slack.send(alert_for(cfg, [down()], f"{receiver.url}/slack/services/T0/B0/{TOKEN}"), client=http)

    body = receiver.accepted()[0].body
    assert body["text"] == ":red_circle: openai: gpt-4o@eu-west is DOWN"
    header, section, runbook, context = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "openai: gpt-4o@eu-west is DOWN",
                                                 "emoji": True}}
    assert section["text"]["text"] == ("• gpt-4o@eu-west: up -&gt; down at 12:00:00Z "
                                       "(error_kind=overloaded, http_status=529, failed=3/3)")
    assert runbook["text"]["text"].startswith(":book: *Runbook:* The provider is shedding load")  # overloaded
    assert "critical · down · 2025-03-04 12:00:00Z" in context["elements"][0]["text"]


async def test_pagerduty_trigger_then_resolve_share_the_dedup_key(receiver, http):
    cfg = config({"type": "pagerduty", "routing_key_env": "PD_KEY", "events_url": f"{receiver.url}/pd/v2/enqueue"})
    routing_key = "R" + secrets.token_hex(16)
    await pagerduty.send(alert_for(cfg, [down()], routing_key), client=http)
    await pagerduty.send(alert_for(cfg, [up()], routing_key), client=http)

    trigger, resolve = (r.body for r in receiver.accepted("/pd/v2/enqueue"))
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == "airisk-incident-7"
    assert trigger["routing_key"] == resolve["routing_key"] == routing_key
    payload = trigger["payload"]
    assert payload["summary"] == "openai: gpt-4o@eu-west is DOWN"
    assert (payload["severity"], payload["source"], payload["component"]) == ("critical", "gpt-4o@eu-west", "openai")
    assert payload["custom_details"]["cause"]["error_kind"] == "overloaded"
    assert datetime.fromisoformat(payload["timestamp"]) == T0
    assert "payload" not in resolve


async def test_pagerduty_sends_each_grouped_incident_its_own_dedup_key(receiver, http):
    cfg = config({"type": "pagerduty", "routing_key_env": "PD_KEY", "events_url": f"{receiver.url}/pd/v2/enqueue"})
    group = [down("gpt-4o", 7), down("gpt-4o-mini", 8, T0 + timedelta(seconds=3))]
    await pagerduty.send(alert_for(cfg, group, "key"), client=http)
    bodies = [r.body for r in receiver.accepted()]
    assert [b["dedup_key"] for b in bodies] == ["airisk-incident-7", "airisk-incident-8"]
    assert {b["payload"]["summary"] for b in bodies} == {
        "openai: 2 targets (gpt-4o@eu-west, gpt-4o-mini@eu-west) DOWN"}


async def test_apprise_json_url_reaches_the_receiver(receiver, http):
    cfg = config({"type": "apprise", "url_env": "APPRISE_URL"})
    url = f"json://127.0.0.1:{receiver.port}/apprise/{TOKEN}"
    await apprise_channel.send(alert_for(cfg, [down()], url), client=http)

    (request,) = receiver.accepted()
    assert request.path == f"/apprise/{TOKEN}"
    assert request.body["title"] == "openai: gpt-4o@eu-west is DOWN"
    assert request.body["type"] == "failure"
    assert "gpt-4o@eu-west: up -> down" in request.body["message"]


async def test_apprise_failure_is_retryable_and_an_unknown_url_is_not(receiver, http):
    cfg = config({"type": "apprise", "url_env": "APPRISE_URL"})
    receiver.fail_next.append(503)
    url = f"json://127.0.0.1:{receiver.port}/apprise/{TOKEN}"
    with pytest.raises(DeliveryError) as failed:
        await apprise_channel.send(alert_for(cfg, [down()], url), client=http)
    assert failed.value.retryable
    assert "503" in failed.value.message and TOKEN not in failed.value.message

    with pytest.raises(DeliveryError) as unknown:
        await apprise_channel.send(alert_for(cfg, [down()], f"nosuchservice://{TOKEN}"), client=http)
    assert not unknown.value.retryable


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (404, False), (410, False), (429, True),
                                                   (500, True), (503, True)])
async def test_http_status_decides_whether_to_retry(receiver, http, status, retryable):
    cfg = config({"type": "webhook", "url_env": "HOOK_URL"})
    receiver.fail_next.append(status)
    with pytest.raises(DeliveryError) as caught:
        await webhook.send(alert_for(cfg, [down()], f"{receiver.url}/hook/{TOKEN}"), client=http)
    assert caught.value.retryable is retryable
    assert caught.value.message.startswith(f"HTTP {status}")
    # The receiver quoted the request path back, token included; the message must not.
    assert "rejected [redacted]: {" in caught.value.message
    assert TOKEN not in caught.value.message
    assert caught.value.retry_after == (0.0 if status == 429 else None)


async def test_closed_port_and_timeout_are_retryable(receiver, http):
    cfg = config({"type": "slack", "url_env": "SLACK_URL", "timeout": "200ms"})
    closed = f"http://127.0.0.1:{free_port()}/slack/{TOKEN}"
    with pytest.raises(DeliveryError) as refused:
        await slack.send(alert_for(cfg, [down()], closed), client=http)
    assert refused.value.retryable and "ConnectError" in refused.value.message

    receiver.delay = 1.0
    with pytest.raises(DeliveryError) as slow:
        await slack.send(alert_for(cfg, [down()], f"{receiver.url}/slack/{TOKEN}"), client=http)
    assert slow.value.retryable and slow.value.message.startswith("no answer within 0.2s")


async def test_a_missing_secret_is_retryable(http):
    cfg = config({"type": "webhook", "url_env": "HOOK_URL"})
    with pytest.raises(DeliveryError) as caught:
        await webhook.send(alert_for(cfg, [down()], None), client=http)
    assert caught.value.retryable
    assert caught.value.message == "channel 'ch': its secret environment variable is not set"


# --- email ------------------------------------------------------------------------------------


@pytest.fixture
def smtp():
    sinks: list[SmtpSink] = []

    def start(**kwargs) -> SmtpSink:
        sink = SmtpSink(**kwargs)
        sink.start()
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        sink.stop()


def email_config(port: int, **extra) -> AlertsConfig:
    return config({"type": "email", "smtp_host": "127.0.0.1", "smtp_port": port, "starttls": False,
                   "from_addr": "airisk@example.com", "to_addrs": ["oncall@example.com", "lead@example.com"],
                   **extra})


@pytest.fixture
def ca(tmp_path, monkeypatch):
    """A throwaway CA the SMTP client trusts (through SSL_CERT_FILE, as an operator with a private CA would)."""
    authority = trustme.CA()
    pem = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    return authority


@pytest.mark.parametrize("tls", ["starttls", "smtps"])
async def test_email_is_sent_with_login_over_starttls_and_over_implicit_tls(smtp, http, ca, tls):
    password = "pw-" + secrets.token_hex(8)
    sink = smtp(users={"airisk": password}, tls="starttls" if tls == "starttls" else "implicit", ca=ca)
    cfg = email_config(sink.port, username="airisk", password_env="SMTP_PASSWORD",
                       **({"starttls": True} if tls == "starttls" else {"starttls": None, "smtps": True}))
    alert = alert_for(cfg, [down()], password)
    await email.send(alert, client=http)
    await email.send(alert_for(cfg, [up()], password), client=http)

    assert sink.encrypted == [True, True] and sink.logins == ["airisk", "airisk"]
    (sender, rcpts, msg), (_, _, resolved) = sink.messages
    assert sender == "airisk@example.com"
    assert rcpts == ["oncall@example.com", "lead@example.com"]
    assert msg["Subject"] == "[airisk critical] openai: gpt-4o@eu-west is DOWN"
    assert msg.get_content_type() == "multipart/alternative"
    assert "gpt-4o@eu-west: up -> down at 12:00:00Z (error_kind=overloaded" in msg.get_body(("plain",)).get_content()
    assert "gpt-4o@eu-west: up -&gt; down" in msg.get_body(("html",)).get_content()
    assert msg["X-Airisk-Event-Key"] == "down:openai:7:ch"
    # One incident's messages thread together; each message has its own stable id.
    assert msg["References"] == resolved["References"]
    assert msg["Message-ID"] != resolved["Message-ID"]
    assert resolved["Subject"] == "[airisk info] openai: gpt-4o@eu-west recovered after 12m"


async def test_smtps_is_the_default_on_port_465_and_checks_the_certificate(smtp, http, tmp_path):
    cfg = email_config(465).channels[0].model_copy(update={"starttls": None})
    assert (cfg.use_smtps, cfg.use_starttls, cfg.smtp_port_or_default) == (True, False, 465)
    sink = smtp(tls="implicit", ca=trustme.CA())  # a CA the client was not told to trust
    untrusted = email_config(sink.port, starttls=None, smtps=True)
    with pytest.raises(DeliveryError) as caught:
        await email.send(alert_for(untrusted, [down()], None), client=http)
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message and not sink.messages


async def test_login_over_plain_smtp_is_refused_before_connecting(smtp, http):
    password = "pw-" + secrets.token_hex(8)
    sink = smtp(users={"airisk": password})  # a server offering AUTH in clear
    with pytest.raises(ValueError, match="username: an SMTP login needs TLS"):
        email_config(sink.port, username="airisk", password_env="SMTP_PASSWORD")
    # A config built around the validation is refused at send time too.
    channel = email_config(sink.port).channels[0].model_copy(update={"username": "airisk",
                                                                     "password_env": "SMTP_PASSWORD"})
    alert = alert_for(email_config(sink.port), [down()], password)
    with pytest.raises(DeliveryError) as caught:
        await email.send(Alert(alert.event, channel, password), client=http)
    assert not caught.value.retryable
    assert caught.value.message == ("channel 'ch': refusing to log in to the SMTP server without TLS "
                                    "(set starttls: true, or smtps: true for port 465)")
    assert password not in caught.value.message and not sink.logins and not sink.messages


async def test_email_failures_are_judged_by_the_smtp_reply(smtp, http, ca):
    sink = smtp(users={"airisk": "right"}, tls="starttls", ca=ca)
    cfg = email_config(sink.port, username="airisk", password_env="SMTP_PASSWORD", starttls=True)
    with pytest.raises(DeliveryError) as bad_login:
        await email.send(alert_for(cfg, [down()], "wrong-" + TOKEN), client=http)
    assert not bad_login.value.retryable and bad_login.value.message.startswith("SMTP 535")

    for reply, retryable in (("550 5.1.1 no such user", False), ("450 4.2.1 mailbox busy", True)):
        refusing = smtp(refuse=reply)
        with pytest.raises(DeliveryError) as refused:
            await email.send(alert_for(email_config(refusing.port), [down()], None), client=http)
        assert refused.value.retryable is retryable, reply
        assert "every recipient refused" in refused.value.message

    plain = smtp()
    with pytest.raises(DeliveryError) as no_tls:
        await email.send(alert_for(email_config(plain.port, starttls=True), [down()], None), client=http)
    assert not no_tls.value.retryable and "STARTTLS" in no_tls.value.message

    with pytest.raises(DeliveryError) as closed:
        await email.send(alert_for(email_config(free_port()), [down()], None), client=http)
    assert closed.value.retryable and "ConnectionRefusedError" in closed.value.message


async def test_without_apprise_installed_its_channel_fails_retryably_naming_the_extra(http, monkeypatch):
    monkeypatch.setitem(sys.modules, "apprise", None)  # what a core install (no [apprise] extra) has
    cfg = config({"type": "apprise", "url_env": "APPRISE_URL"})
    with pytest.raises(DeliveryError) as caught:
        await apprise_channel.send(alert_for(cfg, [down()], "json://127.0.0.1:9/x"), client=http)
    assert caught.value.retryable
    assert caught.value.message == "the apprise alert channel needs the apprise extra: pip install 'airisk[apprise]'"


def test_loading_the_channels_does_not_import_apprise():
    code = "import sys, monitor.service, monitor.alerts.channels; print('apprise' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


# --- updates of an open page ------------------------------------------------------------------------


def pagerduty_alerts(bodies: list[dict]) -> tuple[list[str], set[str]]:
    """PagerDuty's alert de-duplication as its Events API v2 documents it
    (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/): a trigger whose dedup_key has
    an open alert is logged on it; any other trigger opens a new alert; a resolve closes the open alert
    of its key, and is dropped when there is none. Returns (the keys of the alerts opened, in order,
    the keys still open)."""
    opened, open_now = [], set()
    for b in bodies:
        if b["event_action"] == "trigger" and b["dedup_key"] not in open_now:
            opened.append(b["dedup_key"])
            open_now.add(b["dedup_key"])
        elif b["event_action"] == "resolve":
            open_now.discard(b["dedup_key"])
    return opened, open_now


async def send_through_grouper(cfg: AlertsConfig, transitions: list[Transition], secret: str, *, http,
                               until: float) -> list:
    """Transitions as the service hands them on: through a Grouper taken every second, to the channel."""
    grouper = Grouper(window=cfg.group_window, config=cfg)
    module = registry[cfg.channels[0].type]
    sent, pending, now = [], sorted(transitions, key=lambda t: t.at), 0.0
    while now <= until:
        at = T0 + timedelta(seconds=now)
        grouper.add([t for t in pending if t.at <= at])
        pending = [t for t in pending if t.at > at]
        for event in events_for(grouper.take(at), config=cfg, now=at):
            await module.send(Alert(event, cfg.channels[0], secret), client=http)
            sent.append(event)
        now += 1
    return sent


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_pagerduty_opens_one_alert_per_outage_and_resolves_it_when_the_last_target_is_back(receiver, http):
    cfg = config({"type": "pagerduty", "routing_key_env": "PD_KEY", "events_url": f"{receiver.url}/pd/v2/enqueue"})
    outage = [down("a", 1, s(0)), down("b", 2, s(15)), down("c", 3, s(25)),
              up("a", 1, s(100)),  # the page's own target is back first: its alert must stay open for b and c
              down("d", 4, s(140)), up("b", 2, s(150)), up("c", 3, s(170)), up("d", 4, s(200)),
              down("a", 5, s(400))]  # a new outage after all were back: a new page
    await send_through_grouper(cfg, outage, "key", http=http, until=450)
    bodies = [r.body for r in receiver.accepted("/pd/v2/enqueue")]
    from tests.monitor.test_alerts_render import PAGERDUTY, validate  # it imports this module

    assert [validate(b, PAGERDUTY) for b in bodies] == [[]] * len(bodies)  # PagerDuty's documented schema
    opened, still_open = pagerduty_alerts(bodies)
    assert opened == ["airisk-incident-1", "airisk-incident-5"]
    assert still_open == {"airisk-incident-5"}
    # While a was back but b, c, d were not, the page's alert was still open, so d's update was logged on it.
    updates = [b for b in bodies if "update_of" in b.get("payload", {}).get("custom_details", {})]
    assert [b["payload"]["custom_details"]["targets"] for b in updates] == [["b@eu-west", "c@eu-west"],
                                                                            ["d@eu-west"]]
    assert pagerduty_alerts(bodies[:bodies.index(updates[1])]) == (["airisk-incident-1"], {"airisk-incident-1"})
    update = updates[0]
    assert update["dedup_key"] == "airisk-incident-1"
    assert update["payload"]["summary"].startswith("UPDATE, not a new page: openai: 2 targets (b@eu-west, "
                                                    "c@eu-west) DOWN")
    assert update["payload"]["class"] == "down (update)"
    assert update["payload"]["custom_details"]["update_of"] == "airisk-incident-1"
    assert update["payload"]["custom_details"]["causes"]["b@eu-west"]["error_kind"] == "overloaded"
    # Exactly: the page, its updates, and one resolve once d (the last) was back; then the next page.
    assert [(b["event_action"], b["dedup_key"]) for b in bodies] == [
        ("trigger", "airisk-incident-1"), ("trigger", "airisk-incident-1"), ("trigger", "airisk-incident-1"),
        ("resolve", "airisk-incident-1"), ("trigger", "airisk-incident-5")]


async def test_pagerduty_before_grouping_knew_pages_opened_an_alert_per_late_target(receiver, http):
    # The same outage without the page memory (events_for straight from the transitions, as before):
    # the scorer above would have counted three alerts. This keeps the model honest.
    cfg = config({"type": "pagerduty", "routing_key_env": "PD_KEY", "events_url": f"{receiver.url}/pd/v2/enqueue"})
    for group in ([down("a", 1, s(0))], [down("b", 2, s(15))], [down("c", 3, s(40))]):
        (event,) = events_for(group, config=cfg, now=s(60))
        await pagerduty.send(Alert(event, cfg.channels[0], "key"), client=http)
    opened, _ = pagerduty_alerts([r.body for r in receiver.accepted("/pd/v2/enqueue")])
    assert opened == ["airisk-incident-1", "airisk-incident-2", "airisk-incident-3"]


async def test_slack_webhook_and_email_say_an_update_is_one(receiver, http, smtp):
    outage = [down("a", 1, s(0)), down("b", 2, s(30))]
    hook = config({"type": "webhook", "url_env": "HOOK_URL"})
    await send_through_grouper(hook, outage, f"{receiver.url}/hook/{TOKEN}", http=http, until=60)
    page, update = (r.body for r in receiver.accepted("/hook/"))
    assert (page["action"], update["action"]) == ("trigger", "update")
    assert update["dedup_key"] == page["dedup_key"] == "airisk-incident-1"
    assert update["details"] == {"update_of": "airisk-incident-1"} and update["targets"] == ["b@eu-west"]

    chat = config({"type": "slack", "url_env": "SLACK_URL"})
    await send_through_grouper(chat, outage, f"{receiver.url}/slack/{TOKEN}", http=http, until=60)
    _, update = (r.body for r in receiver.accepted("/slack/"))
    assert update["text"] == (":red_circle: UPDATE, not a new page: openai: b@eu-west is DOWN (same outage as "
                              "the open page airisk-incident-1)")
    assert update["blocks"][0]["text"]["text"].startswith("UPDATE, not a new page")

    sink = smtp()
    await send_through_grouper(email_config(sink.port), outage, None, http=http, until=60)
    messages = [m for _, _, m in sink.messages]
    assert len(messages) == 2 and messages[1]["Subject"].startswith(
        "[airisk critical] UPDATE, not a new page: openai: b@eu-west is DOWN")
    assert "rule: down (update)" in messages[1].get_body(("plain",)).get_content()
