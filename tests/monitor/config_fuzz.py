"""Hostile config files for the loader, shared by tests/monitor/test_config_fuzz.py and bench/fuzz.py:
hypothesis strategies (YAML-ish text, JSON-able structures, config-shaped ones) and `judge`, which
says whether one answer of the loader keeps its promise."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from hypothesis import strategies as st

from monitor.config import AiriskConfig, ConfigError, load_config
from monitor.config.loader import INTERNAL_ERROR

# Pieces of YAML that reach the loader's corners: anchors, aliases and merges, tags, flow and block
# collections, interpolation, secret-named fields, odd scalars (bad dates, huge numbers, NaN).
TOKENS = [
    "targets:", "\n", "\n  ", "\n    ", "- ", "  - ", "provider: ", "openai", "anthropic", "local", "name: ",
    "model: ", "base_url: ", "http://127.0.0.1:1/v1", "interval: ", "30s", "-1s", "deadlines: ", "first_token: ",
    "total: ", "features:", "chain: ", "backend: ", "degraded: ", "quality: ", "alerts:", "channels:", "rules:",
    "defaults:", "local_model:", "storage:", "detection:", "options: ", "headers: ", "Authorization: ", "api_key: ",
    "key_env: ", "&a ", "&b ", "*a", "*b", "<<: ", "<<: *a", "[", "]", "{", "}", ", ", ": ", "? ", "!!int ",
    "!!float ", "!!str ", "!!binary ", "!!timestamp ", "!!set ", "!!omap ", "!!python/object ", "${X}", "${X:-d}",
    "${", "$${", "${1}", "'", '"', "#", "|", ">", "---", "...", "%YAML 1.1\n", "2024-13-45",
    "9999-12-31T23:59:59-12:00", "~", "null", "true", "1e999", ".nan", "-.inf", "0x", "0o9", "1_000", "\t", "\\",
    "\u2028", "\x00", "\ufeff",
]
ENV = {"X": "x-value-from-the-environment"}

yamlish = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=6)), max_size=60).map("".join)
"""Arbitrary YAML-ish text."""

_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                    st.sampled_from(["openai", "anthropic", "local", "30s", "${X}", "${NOPE}", "http://x/v1"]))
_FIELDS = sorted({*AiriskConfig.model_fields, "provider", "name", "model", "base_url", "interval", "deadlines",
                  "first_token", "total", "chain", "backend", "degraded", "quality", "criticality", "options",
                  "headers", "api_key", "Authorization", "key_env", "max_tokens", "channels", "rules", "port"})
_key = st.one_of(st.sampled_from(_FIELDS), st.text(max_size=10))
jsonable = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_key, inner, max_size=5),
                        max_leaves=40)
"""Arbitrary JSON-able structures (keys drawn mostly from the model's field names)."""

configish = st.fixed_dictionaries(
    {"targets": st.lists(st.dictionaries(_key, jsonable, max_size=6) | jsonable, max_size=4)},
    optional={name: jsonable for name in sorted(AiriskConfig.model_fields) if name != "targets"})
"""Structures shaped like a config, so validation gets past the top level."""


def as_text(data: object, style: str) -> str:
    """``data`` written as JSON (which is YAML too) or as block YAML."""
    if style == "json":
        return json.dumps(data)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


_PROBLEM = re.compile(r"(?P<file>.*?)(?::(?P<line>[1-9]\d*))?: (?P<rest>.+)")


def judge(path: Path, text: str, answer: object) -> str | None:
    """None if ``answer`` (what `load_config` returned or raised for ``text`` at ``path``) keeps the loader's
    promise, else what is wrong with it.

    The promise: a config, or a `ConfigError` whose text is one line per problem, each
    ``<file>[:<line>]: [<field>: ]<problem>``, naming this file, a line the file has, and the field when
    there is one."""
    if isinstance(answer, AiriskConfig):
        return None
    if not isinstance(answer, ConfigError):
        return f"escaped: {type(answer).__name__}: {answer}"
    if not answer.problems:
        return "a ConfigError without a problem"
    lines = str(answer).split("\n")
    if len(lines) != len(answer.problems):
        return f"{len(answer.problems)} problems printed on {len(lines)} lines: {str(answer)!r}"
    n_lines = len(text.splitlines()) + 1
    for p, printed in zip(answer.problems, lines, strict=True):
        m = _PROBLEM.fullmatch(printed)
        if m is None or m["file"] != str(path):
            return f"not 'file:line: field: problem': {printed!r}"
        if p.line is not None and not 1 <= p.line <= n_lines:
            return f"line {p.line} of a {n_lines - 1}-line file: {printed!r}"
        if p.path and not m["rest"].startswith(f"{p.path}: "):
            return f"the field is not named before the problem: {printed!r}"
        if not p.message.strip():
            return f"an empty problem: {printed!r}"
        if INTERNAL_ERROR in p.message:  # the loader's last resort: in form, but a bug all the same
            return f"a bug caught by the last resort: {printed!r}"
    return None


def load(path: Path, text: str) -> object:
    """Writes ``text`` to ``path`` and loads it; the config, or whatever was raised."""
    path.write_text(text, encoding="utf-8")
    try:
        return load_config(path, environ=ENV)
    except Exception as exc:  # everything, so that the caller can judge it
        return exc
