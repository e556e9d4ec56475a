"""The ``alerts`` section: what it defaults to, and the exact message for each mistake."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from monitor.config import format_path
from monitor.config.alerts import PAGERDUTY_EVENTS_URL, AlertsConfig, ChannelConfig, RetryConfig

SLACK = {"name": "team", "type": "slack", "url_env": "SLACK_URL"}
PD = {"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY"}


def problems(data: dict[str, Any]) -> list[str]:
    """Each problem as ``path: message`` (the loader prefixes the file and line)."""
    with pytest.raises(ValidationError) as caught:
        AlertsConfig.model_validate(data)
    out = []
    for e in caught.value.errors():
        path, message = format_path(e["loc"]), e["msg"].removeprefix("Value error, ")
        out.append(f"{path}: {message}" if path else message)
    return out


def test_defaults():
    config = AlertsConfig.model_validate({
        "channels": [PD, SLACK, {"name": "mail", "type": "email", "smtp_host": "smtp.example.com",
                                 "from_addr": "a@example.com", "to_addrs": ["b@example.com"]},
                     {"name": "mail25", "type": "email", "smtp_host": "mx", "starttls": False,
                      "from_addr": "a@example.com", "to_addrs": ["b@example.com"]}],
        "rules": [{"rule": "down", "channels": ["pd"]}, {"rule": "recovered", "channels": ["pd"]}],
    })
    assert (config.group_window, config.reminder_every) == (10.0, 1800.0)
    pd, slack, mail, mail25 = config.channels
    assert pd.pagerduty_url == PAGERDUTY_EVENTS_URL
    assert (mail.use_starttls, mail.smtp_port_or_default) == (True, 587)
    assert (mail25.use_starttls, mail25.smtp_port_or_default) == (False, 25)
    assert not mail25.tls and mail.tls
    assert slack.timeout == 10.0
    assert AlertsConfig().channels == [] and AlertsConfig.model_json_schema()["title"] == "AlertsConfig"


def test_retry_backoff_doubles_up_to_the_cap_and_honours_retry_after():
    retry = RetryConfig.model_validate({"first_delay": "10s", "max_delay": "5m"})
    assert [retry.delay(n) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]
    assert retry.delay(1, retry_after=60) == 60
    assert retry.delay(1, retry_after=3600) == 300
    assert retry.delay(10_000) == 300


def test_a_rule_naming_an_unknown_channel():
    assert problems({"channels": [SLACK, PD], "rules": [{"rule": "down", "channels": ["team", "slak"]}]}) == [
        "rules[0].channels[1]: unknown channel 'slak' (known: team, pd)"
    ]
    assert problems({"channels": [SLACK], "rules": [{"rule": "down", "channels": ["teem"]}]}) == [
        "rules[0].channels[0]: unknown channel 'teem' (did you mean 'team'? known: team)"
    ]


def test_channel_names_are_unique():
    assert problems({"channels": [SLACK, {**PD, "name": "team"}]}) == [
        "channels[1].name: name 'team' is already used by channels[0]; give each channel a distinct name"
    ]


def test_pagerduty_triggers_need_a_recovered_rule():
    assert problems({"channels": [PD], "rules": [{"rule": "down", "channels": ["pd"]}]}) == [
        "rules[0].channels[0]: PagerDuty channel 'pd' gets triggers but no recovered rule sends it the "
        "resolves: add it to a recovered rule"
    ]


@pytest.mark.parametrize(("channel", "message"), [
    ({"type": "slack"}, "url_env: required for a slack channel (the name of the environment variable holding the URL)"),
    ({"type": "webhook", "url_env": "U", "smtp_host": "mx"}, "smtp_host: does not apply to a webhook channel"),
    ({"type": "pagerduty"}, "routing_key_env: required for a pagerduty channel (the name of the environment "
                            "variable holding the integration's routing key)"),
    ({"type": "email", "smtp_host": "mx", "from_addr": "a@example.com", "to_addrs": ["b@example.com"],
      "username": "bot"}, "password_env: username and password_env go together (SMTP login)"),
    ({"type": "email", "smtp_host": "mx", "from_addr": "a@example.com"},
     "to_addrs: required for an email channel (the recipient addresses)"),
    ({"type": "email", "smtp_host": "mx", "from_addr": "a@example.com", "to_addrs": ["b@example.com"],
      "starttls": False, "username": "bot", "password_env": "SMTP_PASSWORD"},
     "username: an SMTP login needs TLS (set starttls: true, or smtps: true for port 465), else the password "
     "crosses the network in clear"),
    ({"type": "email", "smtp_host": "mx", "from_addr": "a@example.com", "to_addrs": ["b@example.com"],
      "smtp_port": 25, "starttls": False, "smtps": False, "username": "bot", "password_env": "SMTP_PASSWORD"},
     "username: an SMTP login needs TLS (set starttls: true, or smtps: true for port 465), else the password "
     "crosses the network in clear"),
    ({"type": "email", "smtp_host": "mx", "from_addr": "a@example.com", "to_addrs": ["b@example.com"],
      "smtps": True, "starttls": True}, "starttls: does not apply with smtps (that connection is TLS from its "
                                        "first byte)"),
    ({"type": "webhook", "url_env": "U", "smtps": True}, "smtps: does not apply to a webhook channel"),
])
def test_channel_fields_must_fit_its_type(channel, message):
    assert problems({"channels": [{"name": "c", **channel}]}) == [f"channels[0]: {message}"]


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, (False, True, 587)),
    ({"smtp_port": 465}, (True, False, 465)),  # port 465 is SMTPS (RFC 8314) unless told otherwise
    ({"smtps": True}, (True, False, 465)),
    ({"smtps": True, "smtp_port": 2465}, (True, False, 2465)),
    ({"smtp_port": 465, "smtps": False}, (False, True, 465)),
    ({"starttls": False}, (False, False, 25)),
])
def test_email_tls_defaults(fields, expected):
    channel = ChannelConfig.model_validate({"name": "m", "type": "email", "smtp_host": "mx",
                                           "from_addr": "a@example.com", "to_addrs": ["b@example.com"], **fields})
    assert (channel.use_smtps, channel.use_starttls, channel.smtp_port_or_default) == expected


def test_a_pasted_secret_is_refused_without_being_quoted():
    url = "https://hooks.slack.com/services/T0/B0/abcdefghijklmnop1234"
    (problem,) = problems({"channels": [{"name": "c", "type": "slack", "url_env": url}]})
    assert problem.startswith("channels[0].url_env: must be the name of an environment variable")
    assert "abcdefghijklmnop1234" not in problem


def test_field_level_mistakes_name_the_field():
    assert problems({"channels": [{"name": "c", "type": "sms", "url_env": "U"}]}) == [
        "channels[0].type: Input should be 'webhook', 'slack', 'pagerduty', 'email' or 'apprise'"
    ]
    assert problems({"channels": [{"name": "c", "type": "email", "smtp_host": "mx", "from_addr": "nobody",
                                   "to_addrs": ["b@example.com"]}]}) == [
        "channels[0].from_addr: 'nobody' is not an email address (write user@example.com)"
    ]
    assert problems({"channels": [{**PD, "events_url": "ftp://x"}]}) == [
        "channels[0].events_url: must be an http:// or https:// URL"
    ]


def test_slo_fields_belong_to_slo_burn_rules_only():
    assert problems({"channels": [SLACK], "rules": [{"rule": "slo_burn", "channels": ["team"]}]}) == [
        "rules[0]: objective: required for a slo_burn rule; window: required for a slo_burn rule"
    ]
    assert problems({"channels": [SLACK], "rules": [{"rule": "down", "channels": ["team"], "window": "1h"}]}) == [
        "rules[0]: window: only a slo_burn rule has one"
    ]
    (bad_objective,) = problems({"channels": [SLACK], "rules": [
        {"rule": "slo_burn", "channels": ["team"], "objective": 99.5, "window": "1h"}]})
    assert bad_objective == "rules[0].objective: Input should be less than 1"


def test_maintenance_must_end_after_it_starts_and_carry_a_zone():
    assert problems({"maintenance": [{"start": "2025-01-02T00:00:00Z", "end": "2025-01-01T00:00:00Z"}]}) == [
        "maintenance[0]: end (2025-01-01T00:00:00Z) must be after start (2025-01-02T00:00:00Z)"
    ]
    (naive,) = problems({"maintenance": [{"start": "2025-01-01T00:00:00", "end": "2025-01-02T00:00:00Z"}]})
    assert naive.startswith("maintenance[0].start: needs a time zone")
