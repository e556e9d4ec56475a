"""The loader is bounded: `airisk validate` runs on files from pull requests, so a few hundred bytes must
not cost minutes or gigabytes (alias bombs, deep nesting, huge files), and odd YAML is a one-line problem."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config
from monitor.config import loader as config_loader

BILLION_LAUGHS = textwrap.dedent("""\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    """)
REFUSED = "aliases repeat more than 10,000 nodes (an alias counts all it repeats); write the repeated part out, or " \
          "repeat less"


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)

    def write(text: str) -> str:
        Path("airisk.yaml").write_text(text, encoding="utf-8")
        return "airisk.yaml"

    return write


def problems(path: str, **environ: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ)
    return [str(p) for p in caught.value.problems]


def bomb(levels: int) -> str:
    return "".join(BILLION_LAUGHS.splitlines(keepends=True)[:levels]) + "targets: [{provider: openai}]\n"


def test_the_billion_laughs_is_refused_with_one_line_naming_the_alias(write):
    path = write(BILLION_LAUGHS + "targets: [{provider: openai, options: {x: *i}}]\n")
    said: list[list[str]] = []
    # In a thread, so that a loader that unfolds the aliases fails this test instead of hanging it.
    worker = threading.Thread(target=lambda: said.append(problems(path)), daemon=True)
    worker.start()
    worker.join(60)
    assert said, "still loading after 60 s: the aliases are being unfolded"
    assert said[0] == [f"airisk.yaml:5: e[0]: {REFUSED}"]


def test_a_small_bomb_that_used_to_be_unfolded_is_refused(write):
    # Five levels (232 bytes, 59,000 nodes unfolded): loaded in ~0.3 s before, and then only its top-level
    # keys were found wrong; six levels took ~2 s, and each level nine times more.
    assert problems(write(bomb(5))) == [f"airisk.yaml:5: e[0]: {REFUSED}"]


def test_a_merge_key_bomb_is_refused(write):
    text = "a: &a {x: 1, y: 2, z: 3, w: 4, v: 5, u: 6, t: 7, s: 8, r: 9}\n" + "".join(
        f"m{i}: &m{i} {{<<: [{', '.join(['*' + ('a' if i == 0 else f'm{i - 1}')] * 9)}]}}\n" for i in range(4))
    assert problems(write(text + "targets: []\n")) == [f"airisk.yaml:5: m3['<<'][0]: {REFUSED}"]


def test_a_config_with_a_few_aliases_still_loads(write):
    config = load_config(write(textwrap.dedent("""\
        defaults:
          deadlines: &quick {first_token: 5s, total: 30s}
        targets:
          - &hosted {provider: openai, interval: 30s, deadlines: *quick}
          - {<<: *hosted, provider: anthropic}
          - {provider: gemini, deadlines: *quick, options: &opts {a: 1, b: [1, 2]}}
          - {provider: mistral, options: *opts}
        features:
          chat: {chain: &chain [{backend: openai}, {backend: anthropic}]}
          tags: {chain: *chain, criticality: low}
        """)), environ={})
    names = [t.name for t in config.resolve_targets()]
    assert names == ["openai", "anthropic", "gemini", "mistral"]
    assert all(t.deadlines.first_token == 5.0 for t in config.resolve_targets()[:3])
    assert [link.backend for link in config.features["tags"].chain] == ["openai", "anthropic"]


def test_each_pass_visits_a_shared_part_once(write, monkeypatch: pytest.MonkeyPatch):
    """A block shared by 200 aliases is stripped of secrets and interpolated once, not 200 times."""
    calls = {"strip": 0, "interpolate": 0}
    for name, fn in (("strip", config_loader._strip_secrets), ("interpolate", config_loader._interpolate)):
        def counted(*args, _fn=fn, _name=name, **kwargs):
            calls[_name] += 1
            return _fn(*args, **kwargs)
        monkeypatch.setattr(config_loader, f"_{'strip_secrets' if name == 'strip' else 'interpolate'}", counted)
    block = "{" + ", ".join(f"k{i}: [v, '${{X:-x}}']" for i in range(20)) + "}"  # 61 nodes
    targets = "".join(f"  - {{provider: openai, name: t{i}, options: *o}}\n" for i in range(200))
    with pytest.raises(ConfigError):  # x-shared is no field; every pass still runs
        load_config(write(f"x-shared: &o {block}\ntargets:\n{targets}"), environ={})
    # Unfolded, each pass would visit 200 x 61 nodes of the shared block.
    assert calls["strip"] < 2_000 and calls["interpolate"] < 2_000, calls


def test_a_secret_in_a_shared_block_is_reported_once_where_it_is_written(write):
    path = write("targets:\n  - &t {provider: openai, api_key: sk-live-123}\n  - *t\n  - *t\n")
    said = problems(path)
    assert [p for p in said if "api_key" in p] == [
        "airisk.yaml:2: targets[0].api_key: API keys are not read from the config file: put the key in an "
        "environment variable and name it with key_env"]
    assert not any("sk-live-123" in p for p in said)


def test_an_unset_variable_in_a_shared_block_is_reported_once_and_nothing_else_about_it(write):
    path = write("targets:\n  - &t {provider: openai, base_url: '${NOPE}'}\n  - {<<: *t, name: b}\n"
                 "  - {provider: anthropic, options: {u: *t}}\n")
    assert problems(path) == [
        "airisk.yaml:2: targets[0].base_url: environment variable NOPE is not set (give a default with "
        "${NOPE:-...})",
        # A merge copies the block: a field of its own, at the line where the value is written.
        "airisk.yaml:2: targets[1].base_url: environment variable NOPE is not set (give a default with "
        "${NOPE:-...})",
    ]


def test_nesting_deeper_than_the_limit_is_refused_with_its_line(write):
    path = write("targets:\n  - provider: openai\n    options: " + "[" * 500 + "]" * 500 + "\n")
    assert problems(path) == [f"airisk.yaml:3: YAML syntax error: nested more than {config_loader.MAX_DEPTH} "
                              "levels deep"]


def test_a_chain_of_aliases_deeper_than_the_limit_is_refused(write):
    chain = "".join(f"a{i}: &a{i} [{f'*a{i - 1}' if i else 1}]\n" for i in range(200))
    assert problems(write(chain + "targets: []\n")) == [
        f"airisk.yaml:{config_loader.MAX_DEPTH}: a{config_loader.MAX_DEPTH - 1}: nested more than "
        f"{config_loader.MAX_DEPTH} levels deep (aliases unfolded)"]


def test_an_alias_inside_its_own_anchor_is_refused(write):
    assert problems(write("targets: &a [*a]\n")) == [
        "airisk.yaml:1: YAML syntax error: an alias inside the node it refers to"]


@pytest.mark.parametrize(("value", "tag"), [("!!int sk-live-123", "int"), ("2024-13-45", "timestamp"),
                                            ("!!timestamp sk-live-123", "timestamp"), ("!!float x1", "float")])
def test_a_scalar_yaml_cannot_read_is_a_line_not_a_crash(write, value: str, tag: str):
    said = problems(write(f"targets:\n  - provider: openai\n    model: {value}\n"))
    assert said == [f"airisk.yaml:3: YAML syntax error: cannot read this value as {tag}"]


def test_a_character_yaml_refuses_is_named_with_its_line(write):
    assert problems(write("targets:\n  - provider: openai\x00\n")) == [
        "airisk.yaml:2: YAML syntax error: character #x0000 is not allowed (special characters are not allowed)"]


def test_a_list_as_a_target_name_does_not_break_the_feature_checks(write):
    path = write("targets: [{provider: openai, name: [1]}]\nfeatures: {chat: {chain: [{backend: openai}]}}\n")
    assert problems(path) == ["airisk.yaml:1: targets[0].name: Input should be a valid string"]


def test_a_file_over_the_size_limit_is_refused_unread(write, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(config_loader, "MAX_BYTES", 1024)
    path = write("targets: []\n" + "#" * 2000 + "\n")
    assert problems(path) == ["airisk.yaml: cannot read the file: larger than 1 KiB (a config is a few KiB)"]


def test_a_bug_in_a_validator_still_reads_as_one_line(write, monkeypatch: pytest.MonkeyPatch):
    def broken(data, report):
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr(config_loader, "_cross_check_raw", broken)
    assert problems(write("targets: [{provider: openai}]\n")) == [
        f"airisk.yaml:1: {config_loader.INTERNAL_ERROR} (TypeError in the checks across fields)"]


def test_airisk_validate_refuses_the_billion_laughs_in_one_line(tmp_path: Path):
    from click.testing import CliRunner

    from airisk.cli import main

    path = tmp_path / "pr.yaml"
    path.write_text(BILLION_LAUGHS + "targets: [{provider: openai}]\n")
    result = CliRunner().invoke(main, ["validate", str(path)], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"{path}:5: e[0]: {REFUSED}"]
