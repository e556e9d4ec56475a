"""`airisk.yaml`: the configuration model, and a loader that reports every problem at once.

The loader works in passes; a problem found in one pass does not stop the others:

1. YAML: parse once, keeping each node's line so that any later problem can name its line. The file
   is bounded before anything walks it: at most `MAX_BYTES`, nested at most `MAX_DEPTH` deep, and at
   most `MAX_ALIAS_NODES` nodes repeated through aliases (a "billion laughs" document of a few hundred
   bytes would otherwise unfold into billions of nodes). Every later pass visits a node shared through
   aliases once (memoized), so an allowed file costs time in proportion to its size.
2. Secrets: API keys come only from the environment (named by ``key_env``), so a key-like field
   or a credential header is removed and reported, never with its value.
3. ``${VAR}`` / ``${VAR:-default}`` interpolation in string values (``$${`` is a literal ``${``).
4. pydantic validation, then the checks that span fields (unique names, deadline order).

Every problem prints as one line: ``<file>:<line>: <field path>: <what is wrong>``. A problem of the
file as a whole has no field (``<file>:<line>: <what is wrong>``), and no line where none can be named
(an empty or unreadable file: ``<file>: <what is wrong>``).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from monitor.config.alerts import AlertsConfig
from monitor.config.detection import DetectionConfig
from monitor.config.features import FeatureConfig, feature_problems
from monitor.config.model import (
    _CREDENTIAL_HEADERS,
    _DEFER_CROSS_CHECKS,
    _SECRET_FIELDS,
    AiriskConfig,
    DeadlinesConfig,
    Loc,
    _deadline_problems,
    _name_problems,
    _no_secrets,
    format_path,
    heartbeat_problems,
)

# --- problems ----------------------------------------------------------------------------------


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


MAX_BYTES = 1 << 20
"""The largest file read: a config is a few kilobytes, and parsing YAML in Python costs ~1 s a megabyte."""
MAX_DEPTH = 64
"""The deepest nesting of lists and mappings, aliases unfolded (the file's own is under ten). Every
pass over the data recurses, and a deeper document would end in `RecursionError`."""
MAX_ALIAS_NODES = 10_000
"""How many nodes the file may produce through aliases: an alias counts every node of what it repeats,
aliases within it unfolded. A config that shares a deadlines block among 500 targets uses 2,500."""


def read_text(path: str | os.PathLike[str]) -> str:
    """The file's text, or `ConfigError` naming the file and why it cannot be read (missing, not UTF-8,
    larger than `MAX_BYTES`)."""
    source = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            why = f"larger than {MAX_BYTES // 1024} KiB (a config is a few KiB)"
        else:
            return data.decode("utf-8")
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
    except UnicodeDecodeError as exc:
        why = f"not UTF-8 text (bad byte at offset {exc.start})"
    raise ConfigError([Problem(source, None, "", f"cannot read the file: {why}")])


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> AiriskConfig:
    """The validated configuration in the YAML file at ``path``.

    ``${VAR}`` references are filled from ``environ`` (default ``os.environ``). Raises `ConfigError`
    listing every problem found, an unreadable, empty or malformed file included. No message ever
    holds the value of a secret-named field or header, nor a long value taken from the environment.
    """
    return parse_config(read_text(path), source=os.fspath(path), environ=environ)


def parse_config(text: str, *, source: str = "<string>", environ: Mapping[str, str] | None = None
                 ) -> AiriskConfig:
    """`load_config` for YAML text already in memory; ``source`` names it in messages."""
    return parse_model(text, AiriskConfig, source=source, environ=environ, cross_check=_cross_check_raw,
                       what="at least a 'targets' section")


M = TypeVar("M", bound=BaseModel)
INTERNAL_ERROR = "airisk could not check this file: a bug in airisk, please report it"


def parse_model(text: str, model: type[M], *, source: str = "<string>", environ: Mapping[str, str] | None = None,
                cross_check: Callable[[dict[str, Any], _Report], None] | None = None, what: str = "its fields",
                ) -> M:
    """Any YAML file read into ``model`` the way `airisk.yaml` is: secrets refused, ``${VAR}`` filled,
    every problem reported at once as ``file:line: path: problem`` (`ConfigError`).

    ``cross_check`` adds checks spanning fields, run on the raw data so they are reported with the rest."""
    report = _Report(source, model)
    if len(text) > MAX_BYTES:
        raise ConfigError([Problem(source, None, "", f"the file is larger than {MAX_BYTES // 1024} KiB")])
    data = _parse_yaml(text, report)
    result = None
    if isinstance(data, dict):
        data = _strip_secrets(data, (), report)
        data = _interpolate(data, (), os.environ if environ is None else environ, report)
        try:
            result = model.model_validate(data, context={_DEFER_CROSS_CHECKS: True})
        except ValidationError as exc:
            # Collected, not re-raised from here: a chained ValidationError would print the inputs.
            for err in exc.errors(include_url=False, include_input=False, include_context=False):
                if err["loc"] not in report.unresolved:  # already reported: a ${VAR} that is not set
                    report.add(err["loc"], _pydantic_message(err, model))
        except Exception as exc:  # a validator's bug must still read as a problem with the file, not a trace
            report.add((), f"{INTERNAL_ERROR} ({type(exc).__name__} while validating)", line=1)
        if cross_check is not None:
            try:
                cross_check(data, report)
            except Exception as exc:
                report.add((), f"{INTERNAL_ERROR} ({type(exc).__name__} in the checks across fields)", line=1)
    elif data is not None or not report.items:
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        report.add((), f"the file is {kind}; it must be a mapping with {what}", line=None if data is None else 1)
    if report.items or result is None:
        raise ConfigError(report.problems())
    return result


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
    try:
        alerts = (AlertsConfig.model_validate(data["alerts"], context={_DEFER_CROSS_CHECKS: True})
                  if data.get("alerts") else None)
    except ValidationError:
        alerts = None  # its field errors are reported already
    if alerts is not None:
        report.extend((("alerts", *loc), message) for loc, message in alerts.problems())
    detection = None
    with contextlib.suppress(ValidationError):  # its field errors are reported already
        detection = DetectionConfig.model_validate(data.get("detection") or {})
    if data.get("alerts") is None or alerts is not None:
        report.extend(heartbeat_problems(detection, alerts))
    raw_features = data.get("features")
    if isinstance(raw_features, dict):
        features = {}
        for name, raw in raw_features.items():
            with contextlib.suppress(ValidationError):  # its field errors are reported already
                features[name] = FeatureConfig.model_validate(raw)
        from probes.catalog import CATALOG

        names = [t.get("name") or t.get("provider") for t in targets]  # any YAML value: a list is not hashable
        report.extend(feature_problems(features, {n for n in names if isinstance(n, str)} | set(CATALOG)))


class _Report:
    """Problems as they are found, and what printing them needs: lines, values to hide."""

    def __init__(self, source: str, model: type[BaseModel] = AiriskConfig) -> None:
        self.source = source
        self.model = model
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


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, bounded: composing refuses nesting deeper than `MAX_DEPTH` (the composer
    recurses once per level), and a scalar its constructor cannot read (``!!int x``, the date
    ``2024-13-45``) is a marked YAML error, not whatever the constructor happened to raise."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        # Where each alias is written: the node it yields is its anchor's, with the anchor's marks.
        self.alias_marks: dict[tuple[int, int], yaml.Mark] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if parent is not None and index is not None and self.check_event(yaml.AliasEvent):
            self.alias_marks[_slot(parent, index)] = self.peek_event().start_mark
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception:  # ValueError, OverflowError, even AttributeError (``!!timestamp x``)
            # The exception's text is not used: it quotes the value, which may be a key.
            tag = node.tag.rpartition(":")[2] or node.tag
            raise yaml.constructor.ConstructorError(
                problem=f"cannot read this value as {tag}", problem_mark=node.start_mark) from None


def _parse_yaml(text: str, report: _Report) -> Any:
    try:
        loader = _Loader(text)  # it checks every character first
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        what = f"character #x{exc.character:04x}" if isinstance(exc.character, int) else "a byte"
        report.add((), f"YAML syntax error: {what} is not allowed ({exc.reason})", line=line)
        return None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, loader.alias_marks)
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
    except _TooBig as exc:
        report.add(exc.loc, exc.message, line=exc.line)
        return None
    except yaml.YAMLError:
        report.add((), "YAML syntax error")
        return None
    finally:
        loader.dispose()
    # After construction, so that `<<: *anchor` merges (flattened in place) get their lines too.
    _index_lines(node, (), report.lines, set())
    return data


class _TooBig(Exception):
    def __init__(self, loc: Loc, line: int, message: str) -> None:
        self.loc, self.line, self.message = loc, line, message


def _children(node: yaml.Node) -> list[tuple[Any, yaml.Node]]:
    """(path part, node) of each child: list items, and mapping values named by their (scalar) key."""
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    if isinstance(node, yaml.MappingNode):
        return [(k.value if isinstance(k, yaml.ScalarNode) else "?", v) for k, v in node.value]
    return []


def _slot(parent: yaml.Node, index: int | yaml.Node) -> tuple[int, int]:
    """A child's place: its parent, and its index in a list or its key node in a mapping."""
    return id(parent), index if isinstance(index, int) else id(index)


def _check_size(root: yaml.Node, alias_marks: dict[tuple[int, int], yaml.Mark]) -> None:
    """Refuses (`_TooBig`) a document that unfolds, through aliases, beyond `MAX_ALIAS_NODES` repeated
    nodes or `MAX_DEPTH` levels, or that holds an alias inside the node it refers to.

    One walk over the composed nodes, each visited once: a node met again is an alias, and counts the
    size of what it repeats, known by then (an anchor comes before its aliases in the file)."""
    size: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth), aliases unfolded
    active: set[int] = set()
    repeated = 0

    def walk(node: yaml.Node, loc: Loc, mark: yaml.Mark) -> tuple[int, int]:
        nonlocal repeated
        if id(node) in active:
            raise yaml.MarkedYAMLError(problem="an alias inside the node it refers to", problem_mark=mark)
        if (known := size.get(id(node))) is not None:
            repeated += known[0]
            if repeated > MAX_ALIAS_NODES:
                raise _TooBig(loc, mark.line + 1, f"aliases repeat more than {MAX_ALIAS_NODES:,} nodes (an "
                              "alias counts all it repeats); write the repeated part out, or repeat less")
            return known
        active.add(id(node))
        parts: list[tuple[Any, yaml.Node, tuple[int, int] | None]] = []
        if isinstance(node, yaml.SequenceNode):
            parts = [(i, child, _slot(node, i)) for i, child in enumerate(node.value)]
        elif isinstance(node, yaml.MappingNode):
            parts = [(k.value if isinstance(k, yaml.ScalarNode) else "?", v, _slot(node, k)) for k, v in node.value]
            # Keys too: a list as a key is refused only once constructed.
            parts += [("?", k, None) for k, _ in node.value if not isinstance(k, yaml.ScalarNode)]
        nodes, depth = 1, 0
        for part, child, slot in parts:
            n, d = walk(child, (*loc, part), alias_marks.get(slot, child.start_mark) if slot else child.start_mark)
            nodes, depth = nodes + n, max(depth, d)
        active.discard(id(node))
        if depth + 1 > MAX_DEPTH:
            raise _TooBig(loc, mark.line + 1, f"nested more than {MAX_DEPTH} levels deep (aliases unfolded)")
        size[id(node)] = (nodes, depth + 1)
        return size[id(node)]

    walk(root, (), root.start_mark)


def _scan_keys(node: yaml.Node, loc: Loc, report: _Report, done: set[int]) -> None:
    """Reports repeated keys (YAML silently keeps the last), once per node however often it is aliased."""
    if id(node) in done:
        return
    done.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):  # a list as a key is not hashable (nor a field)
                continue
            name, line = key.value, key.start_mark.line + 1
            if name in first and key.tag != "tag:yaml.org,2002:merge":
                message = f"repeated key; YAML keeps only this one (first at line {first[name]})"
                report.add((*loc, name), message, line=line)
            first.setdefault(name, line)
    for part, child in _children(node):
        _scan_keys(child, (*loc, part), report, done)


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


def _strip_secrets(data: Any, loc: Loc, report: _Report, memo: dict[int, tuple[Any, Any]] | None = None) -> Any:
    """``data`` less its secret-named fields and credential headers, each reported without its value.

    The whole file, not only targets: no section may hold a secret. A part shared through aliases is
    stripped (and reported) once, where it first appears, and stays shared.
    """
    memo = {} if memo is None else memo
    if not isinstance(data, list | dict):
        return data
    if (done := memo.get(id(data))) is not None:
        return done[1]
    if isinstance(data, list):
        out: Any = [_strip_secrets(item, (*loc, i), report, memo) for i, item in enumerate(data)]
    else:
        out = {}
        for key, value in data.items():
            if str(key).lower().replace("-", "_") in _SECRET_FIELDS:
                ref = re.fullmatch(r"\$\{(\w+)\}", value) if isinstance(value, str) else None
                report.add((*loc, key), _no_secrets("API keys") + (f" (here: key_env: {ref[1]})" if ref else ""))
                continue
            if key == "headers" and isinstance(value, dict):
                for header in [h for h in value if str(h).lower() in _CREDENTIAL_HEADERS]:
                    report.add((*loc, key, header),
                               _no_secrets("credential headers") + " (the probe sends the key itself)")
                value = {h: v for h, v in value.items() if str(h).lower() not in _CREDENTIAL_HEADERS}
            out[key] = _strip_secrets(value, (*loc, key), report, memo)
    memo[id(data)] = (data, out)  # ``data`` held, so that its id is not reused by a later object
    return out


_REFERENCE = re.compile(r"\$\$\{|\$\{([^{}]*)\}|\$\{")


def _interpolate(data: Any, loc: Loc, environ: Mapping[str, str], report: _Report,
                 memo: dict[int, tuple[Any, Any, Loc]] | None = None) -> Any:
    """``data`` with ``${VAR}``, ``${VAR:-default}`` and ``$${`` expanded in every string value.

    A list or mapping shared through aliases is expanded once and stays shared; a reference that could
    not be filled is reported where it first appears, and its field is marked unresolved at every
    place the alias repeats it (so that no second error is reported for the empty value left there).
    """
    memo = {} if memo is None else memo
    if isinstance(data, list | dict):
        if (done := memo.get(id(data))) is not None:
            _, out, first = done
            for u in [u for u in report.unresolved if u[:len(first)] == first]:
                report.unresolved.add((*loc, *u[len(first):]))
            return out
        if isinstance(data, list):
            out = [_interpolate(item, (*loc, i), environ, report, memo) for i, item in enumerate(data)]
        else:
            out = {key: _interpolate(value, (*loc, key), environ, report, memo) for key, value in data.items()}
        memo[id(data)] = (data, out, loc)
        return out
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


def _pydantic_message(err: Any, root: type[BaseModel] = AiriskConfig) -> str:
    if err["type"] != "extra_forbidden":
        return _MESSAGES.get(err["type"]) or err["msg"].removeprefix("Value error, ")
    *parent, key = err["loc"]
    model = _model_at(tuple(parent), root)
    known = sorted(model.model_fields) if model else []
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    return f"unknown field {key!r} ({hint})"


def _model_at(loc: Loc, root: type[BaseModel] = AiriskConfig) -> type[BaseModel] | None:
    """The model that validates the mapping at ``loc`` (to list its fields), if there is one."""
    tp: Any = root
    for part in (*loc, None):
        if get_origin(tp) in (Union, UnionType):  # `X | None`
            tp = next(arg for arg in get_args(tp) if arg is not type(None))
        if part is None:
            break
        if isinstance(part, int) and get_origin(tp) is list:
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return None
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
