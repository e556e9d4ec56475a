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
      chat:
        cases: ../evals/chat.jsonl   # each request drawn from the cases' `http`; answers checked
        quality: {sample: 20, min_pass: 0.8}
        outcome: survives
    load: {users: 10, spawn_rate: 10, wait: 50ms}
    phases:
      - {name: baseline, duration: 5s}
      - {name: openai-down, duration: 10s, faults: [{route: openai, type: overloaded}]}
      - {name: recovery, duration: 5s}
    guards: {min_success_rate: 0.1, for: 5s, max_duration: 5m}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from annotated_types import Ge, Interval
from pydantic import Field, PrivateAttr, model_validator

from chaos.faults import Fault, FaultError
from monitor.config.base import Section, Text
from monitor.config.loader import ConfigError, Problem, parse_model, read_text
from monitor.durations import Duration
from monitor.quality.cases import Case, CaseError, load_cases

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


class QualitySpec(Section):
    """How the drill judges the answers of a feature that has ``cases``."""

    sample: Annotated[int, Interval(ge=1, le=1000)] = 20
    """Full answers judged at most per phase, spread over the phase."""
    min_pass: Annotated[float, Interval(ge=0, le=1)] = 0.8
    """Resilient needs at least this share of the judged answers during the faults to pass their checks;
    below it the feature is broken, however many requests it answered."""


class FeatureSpec(Section):
    request: RequestSpec | None = None
    """One fixed request; with ``cases`` too, it is one more input among the cases' (and never judged)."""
    cases: Text | None = None
    """An eval set (JSONL, `monitor.quality.cases`), relative to the drill file: each request is drawn
    from its cases' ``http`` (cases without one are skipped), and a sample of the answers is checked."""
    quality: QualitySpec | None = None
    """Default with ``cases``: ``{sample: 20, min_pass: 0.8}``."""
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

    @model_validator(mode="after")
    def _something_to_send(self) -> Self:
        if self.request is None and self.cases is None:
            raise ValueError("give 'request' (one fixed request), 'cases' (an eval set to draw requests from), or both")
        if self.quality is not None and self.cases is None:
            raise ValueError("quality: judging answers needs 'cases' (the checks come from the eval set)")
        return self

    @property
    def judging(self) -> QualitySpec | None:
        """How its answers are judged; None: not at all (no cases)."""
        return None if self.cases is None else self.quality or QualitySpec()


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


@dataclass(frozen=True, slots=True)
class EvalSet:
    """The cases of a feature's eval set that a drill can send (those with ``http``)."""

    path: str
    cases: tuple[Case, ...]
    skipped: int
    """Cases without ``http`` (an eval of the model alone): a drill cannot send them."""


MAX_CASE_PROBLEMS = 10  # lines of a bad eval file quoted in the drill's error; the rest are counted


def read_eval_set(path: str, base_dir: str | os.PathLike[str] | None = None) -> EvalSet:
    """The eval set at ``path`` (relative to ``base_dir``); ValueError, one problem a line, if it cannot
    be read, has a bad case, or has no case with ``http``."""
    full = Path(base_dir or ".") / path
    try:
        cases = load_cases(full)
    except CaseError as exc:
        lines = exc.problems[:MAX_CASE_PROBLEMS]
        if len(exc.problems) > MAX_CASE_PROBLEMS:
            lines.append(f"{full}: {len(exc.problems) - MAX_CASE_PROBLEMS} more problems")
        raise ValueError("\n".join(lines)) from None
    sendable = tuple(c for c in cases if c.http is not None)
    if not sendable:
        raise ValueError(f"{full}: none of its {len(cases)} cases has 'http' (the product's own request), "
                         "which is what a drill sends")
    return EvalSet(str(full), sendable, len(cases) - len(sendable))


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
    lease: Annotated[float, Ge(2)] = 5.0
    """Seconds each fault lives unless renewed: a killed runner leaves no fault behind for longer.
    At least 2: the runner renews every second, and a lease no longer than that would lapse between
    renewals (`chaos.drill.leases`)."""
    _eval_sets: dict[str, EvalSet] | None = PrivateAttr(default=None)

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

    def eval_sets(self, base_dir: str | os.PathLike[str] | None = None) -> dict[str, EvalSet]:
        """Each feature's eval set, by feature (those with ``cases``): as `load_drill` read them, or read
        now relative to ``base_dir`` (default: the current directory). `ConfigError` if one is bad."""
        if self._eval_sets is None:
            problems: list[Problem] = []
            sets = {}
            for name, feature in self.features.items():
                if feature.cases is not None:
                    try:
                        sets[name] = read_eval_set(feature.cases, base_dir)
                    except ValueError as exc:
                        problems += [Problem(f"drill {self.name}", None, f"features.{name}.cases", line)
                                     for line in str(exc).splitlines()]
            if problems:
                raise ConfigError(problems)
            self._eval_sets = sets
        return self._eval_sets


def load_drill(path: str | os.PathLike[str]) -> DrillSpec:
    """The validated drill file, its eval sets read (``cases`` is relative to the file); `ConfigError`
    lists every problem, one line each (a bad eval set's own ``file:line: field: problem`` lines
    under the drill's ``features.NAME.cases``)."""
    base = Path(path).parent
    sets: dict[str, EvalSet] = {}

    def read_cases(data: dict[str, Any], report) -> None:
        features = data.get("features")
        for name, raw in (features.items() if isinstance(features, dict) else ()):
            cases = raw.get("cases") if isinstance(raw, dict) else None
            if isinstance(cases, str) and cases:
                try:
                    sets[name] = read_eval_set(cases, base)
                except ValueError as exc:
                    for line in str(exc).splitlines():
                        report.add(("features", name, "cases"), line)

    spec = parse_model(read_text(path), DrillSpec, source=os.fspath(path), cross_check=read_cases,
                       what="at least 'name', 'product', 'features' and 'phases'")
    spec._eval_sets = sets
    return spec


__all__ = ["ConfigError", "DrillSpec", "EvalSet", "FeatureSpec", "Phase", "QualitySpec", "load_drill",
           "read_eval_set"]
