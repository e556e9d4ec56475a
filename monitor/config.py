"""`airisk.yaml`: the configuration model, and a loader that reports every problem at once.

The loader works in passes; a problem found in one pass does not stop the others:

1. YAML: parse once, keeping each node's line so that any later problem can name its line.
2. Secrets: API keys come only from the environment (named by ``key_env``), so a key-like field
   or a credential header is removed and reported, never with its value.
3. ``${VAR}`` / ``${VAR:-default}`` interpolation in string values (``$${`` is a literal ``${``).
4. pydantic validation, then the checks that span fields (unique names, deadline order).

Every problem prints as one line: ``<file>:<line>: <field path>: <what is wrong>``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import UnionType
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin
from urllib.parse import parse_qsl, urlsplit

import yaml
from annotated_types import Ge, Interval, MinLen
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from monitor.durations import Duration, format_duration
from probes.catalog import CATALOG
from probes.target import Deadlines, Target

Loc = tuple[str | int, ...]

# Field names (lower case, "-" as "_") that can only mean a secret typed into the file.
_SECRET_FIELDS = {"api_key", "apikey", "key", "token", "access_token", "auth_token", "secret",
                  "client_secret", "password"}
_CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key",
                       "cookie"}


def _no_secrets(what: str) -> str:
    where = "put the key in an environment variable and name it with key_env"
    return f"{what} are not read from the config file: {where}"


# --- field types -------------------------------------------------------------------------------


def _known_provider(name: str) -> str:
    if name in CATALOG:
        return name
    close = difflib.get_close_matches(name.lower(), CATALOG, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown provider {name!r} ({hint}known: {', '.join(sorted(CATALOG))})")


def _http_url(url: str) -> str:
    # The value is never quoted back: a URL can carry a key (`?key=` is Gemini's own style).
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # e.g. a port that is not a number
        ok = False
    if not ok:
        raise ValueError("must be an http:// or https:// URL")
    query_names = {name.lower().replace("-", "_") for name, _ in parse_qsl(parts.query)}
    if parts.username or parts.password or query_names & _SECRET_FIELDS:
        raise ValueError(_no_secrets("credentials in a URL"))
    return url


def _env_name(name: str) -> str:
    # Not quoted back either: the likeliest mistake here is pasting the key itself.
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError("must be the name of an environment variable (letters, digits and _, "
                         "e.g. OPENAI_API_KEY), not the key itself")
    return name


Text = Annotated[str, MinLen(1)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
EnvName = Annotated[str, AfterValidator(_env_name)]
Price = Annotated[float, Ge(0), Field(allow_inf_nan=False)]
MaxTokens = Annotated[int, Interval(ge=1, le=4096)]
Provider = Annotated[str, AfterValidator(_known_provider), Field(json_schema_extra={"enum": sorted(CATALOG)})]

# --- the model ---------------------------------------------------------------------------------


class Section(BaseModel):
    """Base of every model in the file."""

    # Unknown keys are errors because they are nearly always typos; field docstrings become the JSON
    # Schema's descriptions; pydantic's own error text never shows the input, which may be a secret.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, hide_input_in_errors=True)


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

    @property
    def target_name(self) -> str:
        return self.name or self.provider


_CATALOG_OVERRIDES = {"model", "base_url", "key_env", "price_in", "price_out", "status_page", "local",
                      "options", "headers"}
_DEFER_CROSS_CHECKS = "airisk.defer_cross_checks"


class AiriskConfig(Section):
    """The whole of `airisk.yaml`.

    Each section is one field with its own `Section` model: storage, features, alerts and local_model
    join as fields like ``defaults`` (and, if a rule spans sections, a clause in `_cross_checks`).
    """

    version: Literal[1] = 1
    defaults: ProbeDefaults = Field(default_factory=ProbeDefaults)
    targets: list[TargetConfig]

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
        return schedule

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


# --- problems ----------------------------------------------------------------------------------


def format_path(loc: Loc) -> str:
    """``("targets", 0, "deadlines", "total")`` -> ``targets[0].deadlines.total``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][\w-]*", str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{str(part)!r}]"
    return out


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the file. ``line`` (1-based) is None where no line can be named."""

    file: str
    line: int | None
    path: str  # "targets[1].provider"; "" for the file as a whole
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used. ``problems`` lists all that was found, in file order;
    ``str()`` is one line per problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


# --- the loader --------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> AiriskConfig:
    """The validated configuration in the YAML file at ``path``.

    ``${VAR}`` references are filled from ``environ`` (default ``os.environ``). Raises `ConfigError`
    listing every problem found, an unreadable, empty or malformed file included. No message ever
    holds the value of a secret-named field or header, nor a long value taken from the environment.
    """
    source = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
    except UnicodeDecodeError as exc:
        why = f"not UTF-8 text (bad byte at offset {exc.start})"
    else:
        return parse_config(text, source=source, environ=environ)
    raise ConfigError([Problem(source, None, "", f"cannot read the file: {why}")])


def parse_config(text: str, *, source: str = "<string>", environ: Mapping[str, str] | None = None
                 ) -> AiriskConfig:
    """`load_config` for YAML text already in memory; ``source`` names it in messages."""
    report = _Report(source)
    data = _parse_yaml(text, report)
    config = None
    if isinstance(data, dict):
        data = _strip_secrets(data, (), report)
        data = _interpolate(data, (), os.environ if environ is None else environ, report)
        try:
            config = AiriskConfig.model_validate(data, context={_DEFER_CROSS_CHECKS: True})
        except ValidationError as exc:
            # Collected, not re-raised from here: a chained ValidationError would print the inputs.
            for err in exc.errors(include_url=False, include_input=False, include_context=False):
                if err["loc"] not in report.unresolved:  # already reported: a ${VAR} that is not set
                    report.add(err["loc"], _pydantic_message(err))
        _cross_check_raw(data, report)
    elif data is not None or not report.items:
        what = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        report.add((), f"the file is {what}; it must be a mapping with at least a 'targets' section",
                   line=None if data is None else 1)
    if report.items or config is None:
        raise ConfigError(report.problems())
    return config


def _cross_check_raw(data: dict[str, Any], report: _Report) -> None:
    """`AiriskConfig._cross_checks` on whichever parts are valid on their own."""

    def valid(raw: Any) -> DeadlinesConfig | None:
        try:
            return DeadlinesConfig.model_validate({} if raw is None else raw)
        except ValidationError:
            return None

    raw_targets = data.get("targets")
    targets = [t if isinstance(t, dict) else {} for t in raw_targets] if isinstance(raw_targets, list) else []
    named = [(i, t.get("name") or t.get("provider"), not t.get("name")) for i, t in enumerate(targets)]
    report.extend(_name_problems(item for item in named if isinstance(item[1], str)))
    defaults = data.get("defaults") or {}
    report.extend(_deadline_problems(valid(defaults.get("deadlines")) if isinstance(defaults, dict) else None,
                                     [(i, valid(t.get("deadlines"))) for i, t in enumerate(targets)]))


class _Report:
    """Problems as they are found, and what printing them needs: lines, values to hide."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Loc, int] = {}
        self.items: list[tuple[Loc, str, int | None]] = []
        self.unresolved: set[Loc] = set()  # fields with a ${VAR} that could not be filled
        self.hidden: dict[str, str] = {}  # a value taken from the environment -> "${NAME}"

    def add(self, loc: Loc, message: str, line: int | None = None) -> None:
        self.items.append((tuple(loc), message, line))

    def extend(self, problems: Iterable[tuple[Loc, str]]) -> None:
        for loc, message in problems:
            self.add(loc, message)

    def line_of(self, loc: Loc) -> int | None:
        # A missing field has no line of its own: name the line of the nearest enclosing one.
        while loc and loc not in self.lines:
            loc = loc[:-1]
        return self.lines.get(loc)

    def problems(self) -> list[Problem]:
        out = []
        for loc, message, line in self.items:
            for value, name in self.hidden.items():  # last guard: a value from the environment may be a key
                message = message.replace(value, name)
            out.append(Problem(self.source, line or self.line_of(loc), format_path(loc), message))
        return sorted(out, key=lambda p: p.line or 0)


def _parse_yaml(text: str, report: _Report) -> Any:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _scan_keys(node, (), report, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        # Built from its parts: str(exc) quotes the offending line, which may hold a key.
        mark, start = exc.problem_mark or exc.context_mark, exc.context_mark
        context = exc.context or ""
        if context and start and mark and start.line != mark.line:
            context += f" (line {start.line + 1})"
        what = ", ".join(part for part in (context, exc.problem) if part)
        report.add((), f"YAML syntax error: {what}", line=mark.line + 1 if mark else None)
        return None
    except yaml.YAMLError:
        report.add((), "YAML syntax error")
        return None
    finally:
        loader.dispose()
    # After construction, so that `<<: *anchor` merges (flattened in place) get their lines too.
    _index_lines(node, (), report.lines, set())
    return data


def _scan_keys(node: yaml.Node, loc: Loc, report: _Report, active: set[int]) -> None:
    """Reports repeated keys (YAML silently keeps the last); refuses an alias inside its own anchor."""
    if id(node) in active:
        raise yaml.MarkedYAMLError(problem="an alias inside the node it refers to", problem_mark=node.start_mark)
    active.add(id(node))
    children: list[tuple[Any, yaml.Node]] = []
    if isinstance(node, yaml.SequenceNode):
        children = list(enumerate(node.value))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key, value in node.value:
            scalar = isinstance(key, yaml.ScalarNode)  # a list as a key is not hashable (nor a field)
            name, line = key.value if scalar else "?", key.start_mark.line + 1
            if scalar and name in first and key.tag != "tag:yaml.org,2002:merge":
                message = f"repeated key; YAML keeps only this one (first at line {first[name]})"
                report.add((*loc, name), message, line=line)
            first.setdefault(name, line)
            children.append((name, value))
    for part, child in children:
        _scan_keys(child, (*loc, part), report, active)
    active.discard(id(node))


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int], done: set[int]) -> None:
    if id(node) in done:  # an alias: its inner lines are its anchor's, indexed where first seen
        return
    done.add(id(node))
    children: list[tuple[Any, yaml.Node, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        children = [(k.value, k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
    elif isinstance(node, yaml.SequenceNode):
        children = [(i, item, item) for i, item in enumerate(node.value)]
    for part, where, child in children:
        lines[(*loc, part)] = where.start_mark.line + 1
        _index_lines(child, (*loc, part), lines, done)


def _strip_secrets(data: Any, loc: Loc, report: _Report) -> Any:
    """``data`` less its secret-named fields and credential headers, each reported without its value.

    The whole file, not only targets: no section may hold a secret.
    """
    if isinstance(data, list):
        return [_strip_secrets(item, (*loc, i), report) for i, item in enumerate(data)]
    if not isinstance(data, dict):
        return data
    kept = {}
    for key, value in data.items():
        if str(key).lower().replace("-", "_") in _SECRET_FIELDS:
            ref = re.fullmatch(r"\$\{(\w+)\}", value) if isinstance(value, str) else None
            report.add((*loc, key), _no_secrets("API keys") + (f" (here: key_env: {ref[1]})" if ref else ""))
            continue
        if key == "headers" and isinstance(value, dict):
            for header in [h for h in value if str(h).lower() in _CREDENTIAL_HEADERS]:
                report.add((*loc, key, header), _no_secrets("credential headers") + " (the probe sends the key itself)")
            value = {h: v for h, v in value.items() if str(h).lower() not in _CREDENTIAL_HEADERS}
        kept[key] = _strip_secrets(value, (*loc, key), report)
    return kept


_REFERENCE = re.compile(r"\$\$\{|\$\{([^{}]*)\}|\$\{")


def _interpolate(data: Any, loc: Loc, environ: Mapping[str, str], report: _Report) -> Any:
    """``data`` with ``${VAR}``, ``${VAR:-default}`` and ``$${`` expanded in every string value."""
    if isinstance(data, list):
        return [_interpolate(item, (*loc, i), environ, report) for i, item in enumerate(data)]
    if isinstance(data, dict):
        return {key: _interpolate(value, (*loc, key), environ, report) for key, value in data.items()}
    if not isinstance(data, str) or "${" not in data:
        return data

    def expand(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        name, has_default, default = (match[1] or "").partition(":-")
        value = environ.get(name)
        if match[1] is None or not re.fullmatch(r"[A-Za-z_]\w*", name, re.ASCII):
            problem = "malformed reference: write ${VAR} or ${VAR:-default} (and $${ for a literal ${)"
        elif has_default and not value:  # as in the shell, the default also stands in for an empty value
            return default
        elif value is None:
            problem = f"environment variable {name} is not set (give a default with ${{{name}:-...}})"
        else:
            if len(value) >= 8:  # shorter ones are no credential, and hiding them would garble messages
                report.hidden[value] = "${" + name + "}"
            return value
        report.add(loc, problem)
        report.unresolved.add(loc)
        return ""

    return _REFERENCE.sub(expand, data)


_MESSAGES = {"missing": "required field is missing", "model_type": "must be a mapping of fields"}


def _pydantic_message(err: Any) -> str:
    if err["type"] != "extra_forbidden":
        return _MESSAGES.get(err["type"]) or err["msg"].removeprefix("Value error, ")
    *parent, key = err["loc"]
    model = _model_at(tuple(parent))
    known = sorted(model.model_fields) if model else []
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    return f"unknown field {key!r} ({hint})"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model that validates the mapping at ``loc`` (to list its fields), if there is one."""
    tp: Any = AiriskConfig
    for part in (*loc, None):
        if get_origin(tp) in (Union, UnionType):  # `X | None`
            tp = next(arg for arg in get_args(tp) if arg is not type(None))
        if part is None:
            break
        if isinstance(part, int) and get_origin(tp) is list:
            tp = get_args(tp)[0]
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return None
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
