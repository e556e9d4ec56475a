"""A drill file: what to break, for how long, under what load, and what each feature should do.

Validated before anything runs, with the loader `airisk.yaml` uses, so each problem is one
line naming its file, line and field. Example (examples/storefront/drills/ has real ones)::

    name: openai-outage
    product:
      base_url: http://127.0.0.1:8600
      start: {command: [python, -m, examples.storefront, --port, "8600"], health: /healthz}
    proxy: {url: http://127.0.0.1:8480, start: true, emulator: true}
    features:
      description:
        request: {method: POST, path: /api/description, json: {product: blue mug}}
        expect: {status: 200, field: text}
        degraded_when: {field: degraded, equals: true}
        outcome: may_fail            # survives | degrades | may_fail
    load: {users: 10, spawn_rate: 10, wait: 50ms}
    phases:
      - {name: baseline, duration: 5s}
      - {name: openai-down, duration: 10s, faults: [{route: openai, type: overloaded}]}
      - {name: recovery, duration: 5s}
    guards: {min_success_rate: 0.1, for: 5s, max_duration: 5m}
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, Self

from annotated_types import Ge, Interval
from pydantic import Field, model_validator

from chaos.faults import Fault, FaultError
from monitor.config.base import Section, Text
from monitor.config.loader import ConfigError, parse_model, read_text
from monitor.durations import Duration

Outcome = Literal["survives", "degrades", "may_fail"]


class RequestSpec(Section):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: Text
    """Below the product's base URL, e.g. /api/description."""
    json_body: dict[str, Any] | list[Any] | None = Field(default=None, alias="json")
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _path(self) -> Self:
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', got {self.path!r}")
        return self


class Expect(Section):
    """What a good answer is."""

    status: Annotated[int, Interval(ge=100, le=599)] = 200
    field: Text | None = None
    """A top-level JSON field that must be present and not empty."""


class DegradedWhen(Section):
    """How the product says it answered in a degraded mode (a good answer, but not the real one)."""

    field: Text
    equals: Any = True


class FeatureSpec(Section):
    request: RequestSpec
    expect: Expect = Field(default_factory=Expect)
    degraded_when: DegradedWhen | None = None
    weight: Annotated[float, Interval(gt=0, le=1000)] = 1.0
    """Share of the load (relative to the other features)."""
    rate: Annotated[float, Interval(gt=0, le=100_000)] | None = None
    """Requests per second for this feature instead of a share of the users' requests (then every
    feature needs one; the users are split among the features by rate)."""
    outcome: Outcome = "may_fail"
    """What this feature must do while the faults are in force: survives (resilient), degrades
    (resilient or degraded) or may_fail (anything)."""


class Load(Section):
    users: Annotated[int, Interval(ge=1, le=10_000)] = 10
    spawn_rate: Annotated[float, Interval(gt=0, le=10_000)] = 10.0
    wait: Duration | Literal[0] = 0.05
    """Pause of each simulated user between requests."""
    workers: Annotated[int, Interval(ge=0, le=64)] = 0
    """0: one Locust process; N: one master and N worker processes."""


class FaultStep(Section):
    """A fault of the catalogue (`airisk fault add` takes the same fields)."""

    type: Text
    route: Text | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    probability: Annotated[float, Interval(ge=0, le=1)] = 1.0
    model: Text | None = None
    feature: Text | None = None

    @model_validator(mode="after")
    def _known(self) -> Self:
        try:
            Fault.from_dict(self.fault_dict())
        except FaultError as exc:
            raise ValueError(str(exc).removeprefix("fault.").removeprefix("fault: ")) from None
        return self

    def fault_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Phase(Section):
    name: Text
    duration: Duration
    faults: list[FaultStep] = Field(default_factory=list)


class Guards(Section):
    min_success_rate: Annotated[float, Interval(ge=0, le=1)] = 0.0
    """Abort when the product's success rate (all features) stays below this..."""
    for_: Duration = Field(default=5.0, alias="for")
    """...for this long."""
    max_duration: Duration = 600.0
    """Abort when the drill runs longer than this."""


class StartProduct(Section):
    command: Annotated[list[str], Field(min_length=1)]
    """The command line; ``{python}`` is this Python, ``{proxy}`` the fault proxy's URL."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment; values may use ``{proxy}`` and ``{emulator}`` (e.g. ``{proxy}/openai``)."""
    pass_env: list[Text] = Field(default_factory=list)
    """Names of the runner's own environment variables the product gets (shell patterns allowed, e.g.
    ``OPENAI_API_KEY`` to drill the real provider through the proxy). Besides these it gets only
    PATH, HOME, the locale, TMPDIR and PYTHON*: a key in the runner's environment does not reach
    a product that was not told to take it."""
    health: Text = "/healthz"
    startup_timeout: Duration = 30.0
    cwd: Text | None = None
    """Where to start it, relative to the drill file (default: the current directory)."""


class Product(Section):
    base_url: Text
    start: StartProduct | None = None
    """Start the product for the drill (and stop it after); absent: it is already running."""


class ProxySpec(Section):
    url: Text = "http://127.0.0.1:8480"
    start: bool = True
    """Start `airisk proxy` at url when none answers there."""
    emulator: bool = False
    """Also start `airisk emulate` and send every route there (no real provider is called)."""
    routes: dict[str, Text] = Field(default_factory=dict)
    """Extra or overriding routes for a started proxy: name (or name:dialect) -> upstream URL."""


class Thresholds(Section):
    resilient: Annotated[float, Interval(gt=0, le=1)] = 0.95
    """Resilient: at least this share of requests got a full (not degraded) answer during the faults."""
    broken: Annotated[float, Interval(ge=0, lt=1)] = 0.5
    """Broken: fewer than this share got any good answer (full or degraded)."""


class DrillSpec(Section):
    name: Text
    product: Product
    proxy: ProxySpec = Field(default_factory=ProxySpec)
    features: Annotated[dict[str, FeatureSpec], Field(min_length=1)]
    load: Load = Field(default_factory=Load)
    phases: Annotated[list[Phase], Field(min_length=1)]
    guards: Guards = Field(default_factory=Guards)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    allow_hosts: list[Text] = Field(default_factory=list)
    """Hosts besides loopback the drill may send traffic to (the product, the proxy)."""
    lease: Annotated[float, Ge(1)] = 5.0
    """Seconds each fault lives unless renewed: a killed runner leaves no fault behind for longer."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError("phases: each phase needs its own name")
        rated = [name for name, f in self.features.items() if f.rate is not None]
        if rated and len(rated) != len(self.features):
            missing = sorted(set(self.features) - set(rated))
            raise ValueError(f"features: {', '.join(missing)} need a rate too (give every feature one, or none)")
        if rated and self.load.users < len(rated):
            raise ValueError(f"load.users: at least one user per rated feature ({len(rated)})")
        if not any(p.faults for p in self.phases):
            raise ValueError("phases: no phase has faults; a drill breaks something")
        for phase in self.phases:
            for step in phase.faults:
                if step.feature is not None and step.feature not in self.features:
                    raise ValueError(f"phases: fault scoped to unknown feature {step.feature!r}")
        return self

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.phases)


def load_drill(path: str | os.PathLike[str]) -> DrillSpec:
    """The validated drill file; `ConfigError` lists every problem, one line each."""
    return parse_model(read_text(path), DrillSpec, source=os.fspath(path),
                       what="at least 'name', 'product', 'features' and 'phases'")


__all__ = ["ConfigError", "DrillSpec", "FeatureSpec", "Phase", "load_drill"]
