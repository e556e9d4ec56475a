"""The `airisk.yaml` model: one pydantic section per part of the file.

Adding a section (``storage``, ``features``, ``alerts``, ``local_model``) is one more
`Section` model and one more field on `AiriskConfig`. Loading, interpolation and the
one-line problem reports live in `monitor.config.loader`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime
from typing import Annotated, Any, Literal, Self

from annotated_types import Ge, Interval
from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.config.alerts import AlertsConfig
from monitor.config.base import (  # noqa: F401 - re-exported: sections import these from here too
    _CREDENTIAL_HEADERS,
    _SECRET_FIELDS,
    DEFER_CROSS_CHECKS,
    EnvName,
    HttpUrl,
    Loc,
    MaxTokens,
    Price,
    Provider,
    Section,
    Text,
    _no_secrets,
    format_path,
)
from monitor.config.detection import DetectionConfig
from monitor.config.features import FeatureConfig, feature_problems
from monitor.config.lifecycle import LifecycleConfig
from monitor.durations import Duration, format_duration
from probes.canary import CANARIES
from probes.target import Deadlines, Target


class DeadlinesConfig(Section):
    """Probe deadlines; each unset one is inherited (target <- defaults <- built-in)."""

    connect: Duration | None = None
    """DNS + TCP + TLS (built-in 5s)."""
    first_token: Duration | None = None
    """Request start to the first byte of answer text (built-in 20s)."""
    total: Duration | None = None
    """Request start to the end of the stream (built-in 60s)."""
    stall: Duration | None = None
    """Longest silence between two chunks once the answer has started (built-in 15s)."""

    def over(self, base: Deadlines) -> Deadlines:
        """``base`` with the deadlines set here replacing its own."""
        return replace(base, **self.model_dump(exclude_none=True))


class ProbeDefaults(Section):
    """Settings every target inherits unless it sets its own."""

    interval: Duration = 60.0
    """Time between two probes of a target."""
    region: str | None = None
    """Where this monitor runs (a label on every result)."""
    max_tokens: MaxTokens = 16
    """Answer length asked for: small, because every probe is paid for."""
    deadlines: DeadlinesConfig = Field(default_factory=DeadlinesConfig)


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token


class TargetConfig(Section):
    """One backend to probe: a catalog provider, with any catalog field overridden."""

    provider: Provider
    """A key of the provider catalog (probes.catalog.CATALOG)."""
    name: Text | None = None
    """Unique name of the target; defaults to the provider."""
    enabled: bool = True
    model: Text | None = None
    base_url: HttpUrl | None = None
    key_env: EnvName | None = None
    """Name of the environment variable holding the API key (the key never goes in this file)."""
    price_in: Price | None = None
    """USD per million input tokens."""
    price_out: Price | None = None
    """USD per million output tokens."""
    status_page: HttpUrl | None = None
    local: bool | None = None
    """Owned (runs on our machines) rather than outsourced."""
    options: dict[str, Any] | None = None
    """Dialect options, merged over the catalog's (e.g. Azure's api_version)."""
    headers: dict[str, str] | None = None
    """Extra request headers; never credentials."""
    region: str | None = None
    interval: Duration | None = None
    max_tokens: MaxTokens | None = None
    deadlines: DeadlinesConfig | None = None
    retires: date | None = None
    """The day the provider stops serving this target's model (YYYY-MM-DD), when you know it and the
    provider's listing does not say (`lifecycle:`); it overrides the listing and airisk's shipped dates."""

    @field_validator("retires", mode="before")
    @classmethod
    def _plain_day(cls, value: Any) -> Any:
        # YAML reads 2027-01-05 as a date already; a string must be exactly YYYY-MM-DD (no week dates,
        # no times: a retirement is a day), within a plausible span.
        if value is None:
            return value
        if isinstance(value, datetime):
            raise ValueError("give a day (YYYY-MM-DD), not a time")
        if isinstance(value, str):
            if not _DAY.fullmatch(value):
                raise ValueError(f"{value[:40]!r} is not a date: write YYYY-MM-DD, e.g. 2027-01-05")
            try:
                value = date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a date: no such day") from None
        if not isinstance(value, date):  # a number would be read as a Unix time: 0 is 1970-01-01
            raise ValueError(f"{str(value)[:40]!r} is not a date: write YYYY-MM-DD, e.g. 2027-01-05")
        if not 2000 <= value.year <= 2200:
            raise ValueError(f"year {value.year} is out of range (2000 to 2200)")
        return value

    @field_validator("headers")
    @classmethod
    def _sendable_headers(cls, headers: dict[str, str] | None) -> dict[str, str] | None:
        # Checked here so `airisk validate` names it; a probe would only find it when building the request.
        for name, value in (headers or {}).items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"header name {name[:40]!r} is not an HTTP token (letters, digits, !#$%&'*+-.^_`|~)")
            if not all(c == "\t" or " " <= c <= "~" for c in value):
                # The value is not echoed: a header may hold something secret.
                raise ValueError(f"header {name}: its value must be printable ASCII on one line")
        return headers

    @field_validator("options")
    @classmethod
    def _known_canary(cls, options: dict[str, Any] | None) -> dict[str, Any] | None:
        canary = (options or {}).get("canary")
        if canary is not None and canary not in CANARIES:
            raise ValueError(f"options.canary {str(canary)[:40]!r} is not a canary (known: {', '.join(CANARIES)})")
        return options

    @property
    def target_name(self) -> str:
        return self.name or self.provider


_CATALOG_OVERRIDES = {"model", "base_url", "key_env", "price_in", "price_out", "status_page", "local",
                      "options", "headers"}
_DEFER_CROSS_CHECKS = DEFER_CROSS_CHECKS


class LocalModelConfig(Section):
    """The open model airisk serves itself (`airisk local serve`, `airisk up`), probed as target "local".

    A model server you already run (Ollama, vLLM, llama.cpp's llama-server, TGI) is a normal
    target instead: ``provider: ollama`` (or vllm, llamacpp, tgi) with its ``base_url``.
    """

    serve: bool = True
    """Serve it and probe it; false leaves the local model to your own targets."""
    model: Text | None = None
    """Path of a GGUF file (a relative one is read from the config file's folder); unset: the bundled Gemma 3
    270M (Q4_K_M)."""
    port: Annotated[int, Interval(ge=1, le=65535)] = 8011
    """Loopback port of its OpenAI-compatible server."""
    threads: Annotated[int, Ge(1)] | None = None
    """Generation threads; unset: every core (llama.cpp's own default, 1, is ~20% slower on 2 cores)."""
    alias: Text = "gemma-3-270m"
    """The model name the server answers to."""
    cost_per_hour: Price | None = None
    """What the machine serving it costs, USD an hour: owned cost per request is this over measured
    throughput (the "Can we own it?" page). Unset: owned cost is not shown."""
    interval: Duration | None = None
    """Time between probes; unset: defaults.interval."""


class JudgeConfig(Section):
    """The backend that judges answers for ``judge`` checks (LLM as judge)."""

    backend: Text
    """A target name or catalog provider: a hosted model with a key, or a bigger local model. Never the
    backend being judged: a model grading its own answers agrees with itself."""
    max_tokens: MaxTokens = 256


class QualityConfig(Section):
    """How `airisk eval` measures answer quality."""

    judge: JudgeConfig | None = None
    """Unset: ``judge`` checks report "unjudged", never a pass or a failure."""
    concurrency: Annotated[int, Interval(ge=1, le=256)] = 4
    """Cases in flight at once, per backend."""


class StorageConfig(Section):
    """How long history is kept. Where it is kept comes from the environment
    (``AIRISK_DATABASE_URL`` for PostgreSQL, else a SQLite file under ``AIRISK_HOME``), because a
    database URL may carry a password."""

    raw_days: Annotated[int, Interval(ge=1, le=3650)] = 14
    """Raw probe results; older windows are answered from the rollups."""
    rollup_minute_days: Annotated[int, Interval(ge=1, le=3650)] = 2
    rollup_hour_days: Annotated[int, Interval(ge=1, le=3650)] = 365
    status_days: Annotated[int, Interval(ge=1, le=3650)] = 30
    """Vendor status-page snapshots."""
    proxy_days: Annotated[int, Interval(ge=1, le=3650)] | None = None
    """The fault proxy's request log (`airisk proxy --store`, drills); unset: as long as raw results."""
    capture_days: Annotated[int, Interval(ge=1, le=3650)] = 7
    """Requests and answers captured for eval sets (`airisk proxy --capture`, opt-in)."""


class AiriskConfig(Section):
    """The whole of `airisk.yaml`.

    Each section is one field with its own `Section` model: storage, features, alerts and local_model
    join as fields like ``defaults`` (and, if a rule spans sections, a clause in `_cross_checks`).
    """

    version: Literal[1] = 1
    defaults: ProbeDefaults = Field(default_factory=ProbeDefaults)
    targets: list[TargetConfig]
    local_model: LocalModelConfig | None = None
    """The bundled open model; absent: not served."""
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    """How results become up / degraded / down (thresholds, confirmation probes, maintenance)."""
    alerts: AlertsConfig | None = None
    """Channels and rules; absent: no alerts are sent."""
    storage: StorageConfig = Field(default_factory=StorageConfig)
    """Retention of history."""
    features: dict[str, FeatureConfig] = Field(default_factory=dict)
    """The product's AI features, each with its chain of backends (primary, then fallbacks)."""
    quality: QualityConfig = Field(default_factory=QualityConfig)
    """Answer quality measurement (`airisk eval`): the judge backend, concurrency."""
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    """Model retirements and removals: how often listings are read, how early to warn."""

    @model_validator(mode="before")
    @classmethod
    def _null_section_is_absent(cls, data: Any) -> Any:
        # A section whose lines are all commented out parses as null; it means "use the defaults".
        if not isinstance(data, dict):
            return data
        optional = {name for name, field in cls.model_fields.items() if not field.is_required()}
        return {k: v for k, v in data.items() if v is not None or k not in optional}

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Self:
        # The loader runs these itself, on the parts that are valid, so that they are reported along
        # with field errors (an after-validator only runs once every field is valid).
        if info.context and info.context.get(_DEFER_CROSS_CHECKS):
            return self
        targets = list(enumerate(self.targets))
        problems = _name_problems((i, t.target_name, t.name is None) for i, t in targets)
        problems += _deadline_problems(self.defaults.deadlines, [(i, t.deadlines) for i, t in targets])
        if self.alerts is not None:
            problems += [(("alerts", *loc), message) for loc, message in self.alerts.problems()]
        problems += feature_problems(self.features, self.backend_names())
        problems += heartbeat_problems(self.detection, self.alerts)
        if self.quality.judge is not None and self.quality.judge.backend not in self.backend_names():
            problems.append((("quality", "judge", "backend"), f"unknown backend {self.quality.judge.backend!r}: "
                             "name a target or a catalog provider"))
        if problems:
            raise ValueError("; ".join(f"{format_path(loc)}: {message}" for loc, message in problems))
        return self

    def resolve_schedule(self) -> list[tuple[Target, float]]:
        """Each enabled target, fully resolved, with its probe interval in seconds, in file order.

        Catalog entry <- the target's catalog overrides (``options`` merged key by key); region,
        max_tokens, interval and each deadline come from the target, else from ``defaults``.
        """
        d = self.defaults
        base_deadlines = d.deadlines.over(Deadlines())
        schedule = []
        for t in self.targets:
            if t.enabled:
                target = Target.from_provider(
                    t.provider,
                    name=t.name,
                    region=_first(t.region, d.region),
                    max_tokens=_first(t.max_tokens, d.max_tokens),
                    deadlines=t.deadlines.over(base_deadlines) if t.deadlines else base_deadlines,
                    **t.model_dump(include=_CATALOG_OVERRIDES, exclude_none=True),
                )
                schedule.append((target, _first(t.interval, d.interval)))
        local = self.local_model
        if local is not None and local.serve and all(t.name != "local" for t, _ in schedule):
            target = Target.from_provider(
                "local", base_url=f"http://127.0.0.1:{local.port}/v1", model=local.alias, region=d.region,
                max_tokens=d.max_tokens, deadlines=base_deadlines,
            )
            schedule.append((target, _first(local.interval, d.interval)))
        return schedule

    def backend_names(self) -> set[str]:
        """What a feature's chain may name: every target name, every catalog provider, and 'local'."""
        from probes.catalog import CATALOG

        return {t.target_name for t in self.targets} | set(CATALOG)

    def backend_provider(self, name: str) -> str:
        """The provider behind a chain's backend name (a target's provider, or the name itself)."""
        return next((t.provider for t in self.targets if t.target_name == name), name)

    def resolve_targets(self) -> list[Target]:
        """The enabled targets as `probes.target.Target` (see `resolve_schedule`), in file order."""
        return [target for target, _ in self.resolve_schedule()]

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON Schema of the file, for editors. It describes values after ``${VAR}`` interpolation."""
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **cls.model_json_schema()}
        schema["title"] = "airisk.yaml"
        return schema


def _first(value: Any, default: Any) -> Any:
    return default if value is None else value


def _name_problems(names: Iterable[tuple[int, str, bool]]) -> list[tuple[Loc, str]]:
    """Target names must be unique; ``names`` holds (index, name, whether it came from the provider)."""
    problems, first_use = [], {}
    for i, name, implicit in names:
        if name in first_use:
            source = " (taken from its provider)" if implicit else ""
            problems.append((("targets", i, "name"), f"name {name!r}{source} is already used by "
                             f"targets[{first_use[name]}]; give each target a distinct name"))
        first_use.setdefault(name, i)
    return problems


def heartbeat_problems(detection: DetectionConfig | None, alerts: AlertsConfig | None) -> list[tuple[Loc, str]]:
    """A monitor is lost when its heartbeat is older than ``detection.heartbeat_timeout``: under two
    heartbeats (``alerts.heartbeat_every``) one late write would call a live monitor lost and page for it."""
    if detection is None:
        return []
    every = (alerts.heartbeat_every if alerts is not None else AlertsConfig().heartbeat_every)
    if detection.heartbeat_timeout >= 2 * every:
        return []
    return [(("detection", "heartbeat_timeout"),
             f"must be at least 2x alerts.heartbeat_every ({format_duration(2 * every)}), else one late heartbeat "
             f"calls a live monitor lost; got {format_duration(detection.heartbeat_timeout)}")]


def _deadline_problems(
    defaults: DeadlinesConfig | None, targets: Iterable[tuple[int, DeadlinesConfig | None]]
) -> list[tuple[Loc, str]]:
    """first_token <= total, for the defaults and for each target once merged over them.

    ``defaults`` is None when it is itself invalid: a target's pair is then judged only if it sets both.
    """
    problems = _deadline_order(("defaults", "deadlines"), defaults, Deadlines()) if defaults else []
    base = defaults.over(Deadlines()) if defaults else Deadlines()
    for i, own in targets:
        if own and (defaults or None not in (own.first_token, own.total)):
            problems += _deadline_order(("targets", i, "deadlines"), own, base)
    return problems


def _deadline_order(loc: Loc, own: DeadlinesConfig, base: Deadlines) -> list[tuple[Loc, str]]:
    merged = own.over(base)
    # Blamed only where first_token or total is set, so a bad default is reported once, not per target.
    if merged.first_token <= merged.total or (own.first_token, own.total) == (None, None):
        return []
    field = "first_token" if own.first_token is not None else "total"
    return [((*loc, field), f"first_token ({format_duration(merged.first_token)}) must not be longer "
                            f"than total ({format_duration(merged.total)})")]


