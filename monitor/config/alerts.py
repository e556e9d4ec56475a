"""The ``alerts`` section of `airisk.yaml`: where alerts go (channels) and when (rules).

```yaml
alerts:
  channels:
    - {name: oncall, type: pagerduty, routing_key_env: PD_ROUTING_KEY}
    - {name: team, type: slack, url_env: SLACK_WEBHOOK_URL}
  rules:
    - {rule: down, channels: [oncall, team]}
    - {rule: recovered, channels: [oncall, team]}
    - {rule: slo_burn, channels: [team], objective: 0.995, window: 1h}
  group_window: 10s
  reminder_every: 30m
```

Secrets are never in the file: a channel names the environment variable that holds its URL,
routing key or password (``*_env``), and a Slack or Discord webhook URL counts as a secret.
Every problem message names the field it is about; none quotes a value read from the environment.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Literal, Self

from annotated_types import Ge, Gt, Interval, Lt, MinLen
from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from monitor.config.base import DEFER_CROSS_CHECKS, EnvName, HttpUrl, Loc, Section, Text, format_path
from monitor.config.detection import MaintenanceWindow
from monitor.durations import Duration, format_duration

# One maintenance model for the whole file: detection.maintenance stops state changes being
# announced; alerts.maintenance only silences alerts (history and incidents still record them).
MaintenanceConfig = MaintenanceWindow

ChannelType = Literal["webhook", "slack", "pagerduty", "email", "apprise"]
RuleKind = Literal["down", "degraded", "recovered", "slo_burn", "feature_slo", "vantage_lost", "model_lifecycle"]
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

# Per channel type: the fields it needs, and the optional ones that only it may set.
_OWN_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "webhook": ({"url_env"}, set()),
    "slack": ({"url_env"}, set()),
    "apprise": ({"url_env"}, set()),
    "pagerduty": ({"routing_key_env"}, {"events_url"}),
    "email": ({"smtp_host", "from_addr", "to_addrs"}, {"smtp_port", "starttls", "smtps", "username", "password_env"}),
}
_WHAT = {
    "url_env": "the name of the environment variable holding the URL",
    "routing_key_env": "the name of the environment variable holding the integration's routing key",
    "smtp_host": "the SMTP server to send through",
    "from_addr": "the sender address",
    "to_addrs": "the recipient addresses",
}
_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+")


def _address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"{value!r} is not an email address (write user@example.com)")
    return value


Address = Annotated[str, AfterValidator(_address)]


class ChannelConfig(Section):
    """One place alerts are delivered to. Which fields apply depends on ``type``."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    """Unique name; rules refer to the channel by it."""
    type: ChannelType
    timeout: Duration = 10.0
    """Longest wait for the receiver to accept one alert."""
    url_env: EnvName | None = None
    """webhook, slack, apprise: environment variable holding the URL (a webhook URL is a secret)."""
    routing_key_env: EnvName | None = None
    """pagerduty: environment variable holding the Events API v2 integration (routing) key."""
    events_url: HttpUrl | None = None
    """pagerduty: the Events API v2 endpoint (default https://events.pagerduty.com/v2/enqueue)."""
    smtp_host: Text | None = None
    """email: the SMTP server."""
    smtp_port: Annotated[int, Interval(ge=1, le=65535)] | None = None
    """email: the SMTP port (default 465 with smtps, 587 with STARTTLS, else 25)."""
    starttls: bool | None = None
    """email: upgrade the connection with STARTTLS before sending (default true, unless smtps)."""
    smtps: bool | None = None
    """email: TLS from the first byte (SMTPS, "implicit TLS", RFC 8314) instead of STARTTLS
    (default true on port 465, else false)."""
    username: Text | None = None
    """email: the SMTP login, if the server wants one (with password_env); only over TLS (starttls or
    smtps), so the password never crosses the network in clear."""
    password_env: EnvName | None = None
    """email: environment variable holding the SMTP password."""
    from_addr: Address | None = None
    """email: the sender address."""
    to_addrs: Annotated[list[Address], MinLen(1)] | None = None
    """email: the recipient addresses."""

    @model_validator(mode="after")
    def _fields_fit_the_type(self) -> Self:
        required, optional = _OWN_FIELDS[self.type]
        others = set().union(*(r | o for t, (r, o) in _OWN_FIELDS.items() if t != self.type)) - required - optional
        a = "an" if self.type[0] in "aeiou" else "a"
        problems = [f"{f}: required for {a} {self.type} channel ({_WHAT[f]})"
                    for f in sorted(required) if getattr(self, f) is None]
        problems += [f"{f}: does not apply to {a} {self.type} channel" for f in sorted(others & self.model_fields_set)]
        if self.type == "email" and (self.username is None) != (self.password_env is None):
            missing = "password_env" if self.password_env is None else "username"
            problems.append(f"{missing}: username and password_env go together (SMTP login)")
        if self.type == "email" and self.smtps and self.starttls:
            problems.append("starttls: does not apply with smtps (that connection is TLS from its first byte)")
        elif self.type == "email" and self.username is not None and not self.tls:
            problems.append("username: an SMTP login needs TLS (set starttls: true, or smtps: true for port 465), "
                            "else the password crosses the network in clear")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def pagerduty_url(self) -> str:
        return self.events_url or PAGERDUTY_EVENTS_URL

    @property
    def smtp_port_or_default(self) -> int:
        return self.smtp_port or (465 if self.use_smtps else 587 if self.use_starttls else 25)

    @property
    def use_smtps(self) -> bool:
        return self.smtp_port == 465 if self.smtps is None else self.smtps

    @property
    def use_starttls(self) -> bool:
        return not self.use_smtps if self.starttls is None else self.starttls

    @property
    def tls(self) -> bool:
        """The SMTP connection is encrypted before anything is sent over it (smtps or STARTTLS)."""
        return self.use_smtps or self.use_starttls


class RuleConfig(Section):
    """When to alert, and where."""

    rule: RuleKind
    """down / degraded: a target enters that state; recovered: it is up again; slo_burn: its
    availability over ``window`` falls below ``objective`` (and, once, when it is back above);
    feature_slo: a feature burns its error budget (``features.<name>.slo``) at a multi-window rate;
    vantage_lost: a monitor (region) stopped writing its heartbeat; model_lifecycle: a model a
    target or feature uses is retiring or has left its provider's listing."""
    channels: Annotated[list[Text], MinLen(1)]
    """Names of the channels to alert."""
    targets: Annotated[list[Text], MinLen(1)] | None = None
    """Only these targets (by name); unset: every target."""
    criticality: Annotated[list[Literal["low", "medium", "high", "critical"]], MinLen(1)] | None = None
    """Only when a feature of one of these criticalities is hit (a feature whose chain uses the
    target); unset: whatever the features hit."""
    covered: Literal["page", "warn", "skip"] = "warn"
    """down / degraded: what to do when every feature the target's outage hits is still served, by its primary
    or by a fallback the risk model counts (drill-verified; see `monitor.alerts.impact`): ``page`` as usual
    (severity from the features), ``warn`` send it at severity warning, ``skip`` send nothing."""
    regional: bool = False
    """down / degraded / recovered: also alert for a regional incident (a target DOWN from fewer
    regions than ``detection.quorum``); by default only global incidents alert."""
    objective: Annotated[float, Gt(0), Lt(1)] | None = None
    """slo_burn: the availability objective, e.g. 0.995."""
    window: Duration | None = None
    """slo_burn: the period availability is measured over, e.g. 1h."""

    @model_validator(mode="after")
    def _slo_fields(self) -> Self:
        slo = self.rule == "slo_burn"
        problems = [f"{f}: required for a slo_burn rule" for f in ("objective", "window")
                    if slo and getattr(self, f) is None]
        problems += [f"{f}: only a slo_burn rule has one" for f in ("objective", "window")
                     if not slo and getattr(self, f) is not None]
        if "covered" in self.model_fields_set and self.rule not in ("down", "degraded"):
            problems.append("covered: only a down or degraded rule has one (it says whether an outage all of "
                            "whose features are covered pages)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def matches(self, target: str, criticalities: Iterable[str] | None = None) -> bool:
        """Whether the rule covers ``target``, whose outage hits features of ``criticalities``.

        ``criticalities`` None means not known (no impact was computed, or it failed): a rule that asks
        for criticalities then matches, since a page sent in doubt is better than one lost. Known and
        empty (no feature uses the target) does not match a rule asking for criticalities.
        """
        if self.targets is not None and target not in self.targets:
            return False
        if self.criticality is None or criticalities is None:
            return True
        return bool(set(self.criticality) & set(criticalities))

    @property
    def slo_id(self) -> str:
        """A stable name for a slo_burn rule ("slo99.5%/1h"), independent of its place in the file."""
        return f"slo{(self.objective or 0) * 100:g}%/{format_duration(self.window or 0)}"


class RetryConfig(Section):
    """How failed deliveries are retried: capped exponential backoff, then given up on."""

    first_delay: Duration = 10.0
    """Wait after the first failure; each further failure doubles it."""
    max_delay: Duration = 300.0
    """The longest wait between two tries (so a channel back up gets its alerts within this)."""
    max_attempts: Annotated[int, Ge(1)] = 200
    """Tries before an alert is given up on (state dead)."""
    max_age: Duration = 86400.0
    """An alert not delivered this long after it was raised is given up on."""

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``attempts`` failed tries; a receiver's Retry-After is honoured up to
        ``max_delay``."""
        backoff = self.first_delay * 2 ** min(max(attempts - 1, 0), 32)
        return min(max(backoff, retry_after or 0.0), self.max_delay)


class AlertsConfig(Section):
    """Channels, rules and how alerts are grouped, repeated and retried."""

    channels: list[ChannelConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    group_window: Duration = 10.0
    """Transitions of targets of one provider this close together make one alert."""
    reminder_every: Duration | None = 1800.0
    """Repeat the alert for an incident still open this long after it opened, and every period
    after (not to PagerDuty, which escalates on its own); null: never."""
    maintenance: list[MaintenanceConfig] = Field(default_factory=list)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    heartbeat_url: HttpUrl | None = None
    """A dead man's switch for the whole installation: every monitor GETs this URL every
    ``heartbeat_every`` (the Healthchecks.io convention), so someone notices when every monitor
    is gone. Write it as ``${ENV_NAME}``: the URL is a secret."""
    heartbeat_every: Duration = 60.0
    """How often the heartbeat URL is pinged, and each monitor's heartbeat row written."""

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Self:
        # Inside a file load the loader reports these itself, with their lines (see loader).
        if info.context and info.context.get(DEFER_CROSS_CHECKS):
            return self
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(f"{format_path(loc)}: {message}" for loc, message in problems))
        return self

    def problems(self) -> list[tuple[Loc, str]]:
        """Checks spanning fields: unique channel names, rules naming known channels, and each
        PagerDuty channel that gets triggers also getting the resolves (else its alerts stay open)."""
        problems: list[tuple[Loc, str]] = []
        first: dict[str, int] = {}
        for i, channel in enumerate(self.channels):
            if channel.name in first:
                problems.append((("channels", i, "name"), f"name {channel.name!r} is already used by "
                                 f"channels[{first[channel.name]}]; give each channel a distinct name"))
            first.setdefault(channel.name, i)
        for i, rule in enumerate(self.rules):
            for j, name in enumerate(rule.channels):
                if name not in first:
                    close = difflib.get_close_matches(name, first, n=1, cutoff=0.6)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    known = ", ".join(first) or "none defined"
                    problems.append((("rules", i, "channels", j), f"unknown channel {name!r} ({hint}known: {known})"))
        resolved = {n for r in self.rules if r.rule == "recovered" for n in r.channels}
        for i, rule in enumerate(self.rules):
            for j, name in enumerate(rule.channels):
                channel = self.channel(name)
                if rule.rule in ("down", "degraded") and channel and channel.type == "pagerduty" \
                        and name not in resolved:
                    problems.append((("rules", i, "channels", j), f"PagerDuty channel {name!r} gets triggers but "
                                     "no recovered rule sends it the resolves: add it to a recovered rule"))
        return problems

    def channel(self, name: str) -> ChannelConfig | None:
        return next((c for c in self.channels if c.name == name), None)

    def in_maintenance(self, target: str, at: datetime) -> bool:
        return any(m.covers(target, at) for m in self.maintenance)
