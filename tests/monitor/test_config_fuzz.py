"""The loader on any file: it loads, or raises `ConfigError` printed as ``file:line: field: problem``
lines; never another exception (hypothesis: YAML-ish text, and JSON-able structures written as files)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.monitor.config_fuzz import as_text, configish, jsonable, judge, load, yamlish

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(text=yamlish)
@example("targets: [{provider: openai, max_tokens: !!int abc}]\n")
@example("targets: [{provider: openai, model: 2024-13-45}]\n")
@example("targets: [{provider: openai, name: [1]}]\nfeatures: {chat: {chain: [{backend: openai}]}}\n")
@example("targets: " + "[" * 400 + "]" * 400 + "\n")
@example("a: &a [*a]\n")
@example("\x00")
def test_any_text_loads_or_is_refused_line_by_line(tmp_path: Path, text: str):
    path = tmp_path / "airisk.yaml"
    assert judge(path, text, load(path, text)) is None


@FUZZ
@given(data=jsonable | configish, style=st.sampled_from(["json", "yaml"]))
def test_any_structure_loads_or_is_refused_line_by_line(tmp_path: Path, data: object, style: str):
    path = tmp_path / "airisk.yaml"
    text = as_text(data, style)
    assert judge(path, text, load(path, text)) is None
