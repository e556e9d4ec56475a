"""`airisk.yaml` as a user meets it: what loads, what it resolves to, and the exact error lines."""

from __future__ import annotations

import re
import textwrap
import traceback
from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.config import AiriskConfig, ConfigError, load_config
from monitor.durations import format_duration, parse_duration
from probes.catalog import CATALOG
from probes.target import Deadlines

KNOWN = ", ".join(sorted(CATALOG))
NO_KEYS = "are not read from the config file: put the key in an environment variable and name it with key_env"


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Writes ./airisk.yaml (in a fresh directory), so messages name it as a user would see it."""
    monkeypatch.chdir(tmp_path)

    def write(text: str) -> str:
        Path("airisk.yaml").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return "airisk.yaml"

    return write


def problems(path: str, **environ: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ)
    assert str(caught.value) == "\n".join(map(str, caught.value.problems))
    return [str(p) for p in caught.value.problems]


# --- what a valid file resolves to -------------------------------------------------------------


def test_resolve_targets_applies_defaults_then_overrides(write):
    path = write("""
        defaults:
          interval: 2m
          region: eu-west
          max_tokens: 8
          deadlines: {total: 90s, stall: 10s}
        targets:
          - provider: azure-openai
            base_url: https://acme.openai.azure.com
            options: {api_version: "2025-01-01"}
            deadlines: {first_token: 500ms}
          - provider: ollama
            name: local-llama
            interval: 1m30s
            max_tokens: 32
            region: rack-3
          - provider: openai
            model: gpt-4.1-nano
            price_in: 0.1
            local: true
            headers: {X-Team: search}
          - provider: gemini
            enabled: false
    """)
    config = load_config(path, environ={})
    schedule = config.resolve_schedule()
    azure, llama, openai = config.resolve_targets()

    assert [(t.name, interval) for t, interval in schedule] == [
        ("azure-openai", 120.0), ("local-llama", 90.0), ("openai", 120.0)
    ]
    # options merge over the catalog's: the azure flag stays, api_version is replaced.
    assert azure.options == {**CATALOG["azure-openai"].options, "api_version": "2025-01-01"}
    assert azure.options["azure"] is True
    assert azure.base_url == "https://acme.openai.azure.com"
    assert azure.key_env == CATALOG["azure-openai"].key_env
    assert (azure.region, azure.max_tokens) == ("eu-west", 8)
    assert azure.deadlines == Deadlines(connect=5.0, first_token=0.5, total=90.0, stall=10.0)

    assert llama.local is True  # from the catalog
    assert (llama.provider, llama.dialect, llama.region, llama.max_tokens) == ("ollama", "ollama", "rack-3", 32)
    assert llama.deadlines == Deadlines(total=90.0, stall=10.0)

    assert openai.local is True  # overridden
    assert (openai.model, openai.price_in, openai.price_out) == ("gpt-4.1-nano", 0.1, CATALOG["openai"].price_out)
    assert openai.headers == {"X-Team": "search"}


def test_a_minimal_file_uses_the_catalog_and_built_in_defaults(write):
    config = load_config(write("targets: [{provider: anthropic}]\n"), environ={})
    [(target, interval)] = config.resolve_schedule()
    assert interval == 60.0
    assert target.model == CATALOG["anthropic"].model
    assert (target.max_tokens, target.region, target.deadlines) == (16, None, Deadlines())


def test_interpolation_with_default_and_escape(write):
    path = write("""
        targets:
          - provider: openai
            model: ${MODEL:-gpt-4o-mini}
            region: ${REGION:-nowhere}
            base_url: http://${HOST}:8000/v1
            headers: {X-Template: "$${not_a_var} costs $5"}
            max_tokens: ${MAX_TOKENS:-12}
            enabled: ${OPENAI_ON:-true}
    """)
    [target] = load_config(path, environ={"HOST": "gpu-box", "REGION": "", "MAX_TOKENS": "24"}).resolve_targets()
    assert target.model == "gpt-4o-mini"
    assert target.region == "nowhere"  # as in the shell, an empty variable takes the default too
    assert target.base_url == "http://gpu-box:8000/v1"
    assert target.headers == {"X-Template": "${not_a_var} costs $5"}
    assert target.max_tokens == 24


def test_interpolation_reads_the_process_environment_by_default(write, monkeypatch):
    monkeypatch.setenv("AIRISK_TEST_MODEL", "llama3.2:3b")
    [target] = load_config(write("targets: [{provider: ollama, model: '${AIRISK_TEST_MODEL}'}]\n")).resolve_targets()
    assert target.model == "llama3.2:3b"


# --- one problem, one exact line ---------------------------------------------------------------


def test_unknown_provider_suggests_the_closest_name(write):
    path = write("""
        targets:
          - provider: openai
          - provider: opneai
          - provider: skynet
    """)
    assert problems(path) == [
        f"airisk.yaml:3: targets[1].provider: unknown provider 'opneai' (did you mean 'openai'? known: {KNOWN})",
        f"airisk.yaml:4: targets[2].provider: unknown provider 'skynet' (known: {KNOWN})",
    ]


def test_unknown_key_is_a_typo_with_a_suggestion(write):
    path = write("""
        target:
          - provider: openai
            intervall: 5m
            colour: blue
    """)
    assert problems(path) == [
        "airisk.yaml: targets: required field is missing",
        "airisk.yaml:1: target: unknown field 'target' (did you mean 'targets'?)",
    ]
    path = write("""
        targets:
          - provider: openai
            intervall: 5m
            deadlines: {totl: 30s}
    """)
    assert problems(path) == [
        "airisk.yaml:3: targets[0].intervall: unknown field 'intervall' (did you mean 'interval'?)",
        "airisk.yaml:4: targets[0].deadlines.totl: unknown field 'totl' (did you mean 'total'?)",
    ]


def test_inline_api_key_is_refused_without_echoing_it(write):
    path = write("""
        targets:
          - provider: openai
            api_key: sk-proj-inline-0123456789
          - provider: anthropic
            name: claude
            options: {Token: abc123456789}
          - provider: gemini
            api-key: ${GEMINI_API_KEY}
    """)
    found = problems(path, GEMINI_API_KEY="AIza-from-env-0123456789")
    assert found == [
        f"airisk.yaml:3: targets[0].api_key: API keys {NO_KEYS}",
        f"airisk.yaml:6: targets[1].options.Token: API keys {NO_KEYS}",
        f"airisk.yaml:8: targets[2].api-key: API keys {NO_KEYS} (here: key_env: GEMINI_API_KEY)",
    ]


def test_credential_headers_are_refused_and_others_kept(write):
    path = write("""
        targets:
          - provider: openai
            headers:
              Authorization: Bearer sk-in-a-header-0123456789
              X-Request-Source: airisk
              x-api-key: abc
    """)
    assert problems(path) == [
        f"airisk.yaml:4: targets[0].headers.Authorization: credential headers {NO_KEYS} "
        "(the probe sends the key itself)",
        f"airisk.yaml:6: targets[0].headers.x-api-key: credential headers {NO_KEYS} (the probe sends the key itself)",
    ]


def test_bad_duration_says_how_to_write_one(write):
    path = write("""
        defaults:
          interval: 5 minutes
        targets:
          - provider: openai
            deadlines: {connect: 0, stall: -1s}
    """)
    assert problems(path) == [
        'airisk.yaml:2: defaults.interval: "5 minutes" is not a duration (use e.g. 500ms, 30s, 5m, 1h, 30d)',
        "airisk.yaml:5: targets[0].deadlines.connect: Input should be greater than 0",
        'airisk.yaml:5: targets[0].deadlines.stall: "-1s" is not a duration (use e.g. 500ms, 30s, 5m, 1h, 30d)',
    ]


def test_first_token_longer_than_total_is_judged_after_merging_defaults(write):
    path = write("""
        defaults:
          deadlines:
            first_token: 5s
            total: 10s
        targets:
          - provider: openai
            deadlines:
              first_token: 30s
          - provider: gemini
            deadlines: {first_token: 2m, total: 1m30s}
          - provider: groq
            deadlines: {stall: 5s}
    """)
    assert problems(path) == [
        "airisk.yaml:8: targets[0].deadlines.first_token: first_token (30s) must not be longer than total (10s)",
        "airisk.yaml:10: targets[1].deadlines.first_token: first_token (2m) must not be longer than total (1m30s)",
    ]


def test_a_bad_default_deadline_is_reported_once_not_per_target(write):
    path = write("""
        defaults:
          deadlines: {first_token: 2m}
        targets: [{provider: openai}, {provider: gemini, deadlines: {stall: 1s}}]
    """)
    assert problems(path) == [
        "airisk.yaml:2: defaults.deadlines.first_token: first_token (2m) must not be longer than total (1m)",
    ]


def test_duplicate_names(write):
    path = write("""
        targets:
          - provider: openai
          - provider: openai
            model: gpt-4.1-nano
          - provider: ollama
            name: local
          - provider: vllm
            name: local
    """)
    assert problems(path) == [
        "airisk.yaml:3: targets[1].name: name 'openai' (taken from its provider) is already used by "
        "targets[0]; give each target a distinct name",
        "airisk.yaml:8: targets[3].name: name 'local' is already used by targets[2]; "
        "give each target a distinct name",
    ]


def test_missing_environment_variable_names_field_and_variable(write):
    path = write("""
        targets:
          - provider: azure-openai
            base_url: ${AZURE_OPENAI_ENDPOINT}
    """)
    # Only the variable: not also "must be an http(s) URL" for the empty string it left behind.
    assert problems(path) == [
        "airisk.yaml:3: targets[0].base_url: environment variable AZURE_OPENAI_ENDPOINT is not set "
        "(give a default with ${AZURE_OPENAI_ENDPOINT:-...})",
    ]


def test_yaml_syntax_error_has_its_line(write):
    path = write("""
        targets:
          - provider: openai
           model: gpt-4o-mini
    """)
    assert problems(path) == [
        "airisk.yaml:3: YAML syntax error: while parsing a block collection (line 2), "
        "expected <block end>, but found '<block mapping start>'"
    ]


def test_empty_file(write):
    assert problems(write("")) == [
        "airisk.yaml: the file is empty; it must be a mapping with at least a 'targets' section"
    ]
    assert problems(write("# everything commented out\n")) == [
        "airisk.yaml: the file is empty; it must be a mapping with at least a 'targets' section"
    ]


def test_top_level_must_be_a_mapping(write):
    assert problems(write("- provider: openai\n")) == [
        "airisk.yaml:1: the file is a list, not a mapping; it must be a mapping with at least a 'targets' section"
    ]


def test_unreadable_file(tmp_path):
    path = tmp_path / "missing.yaml"
    assert problems(path) == [f"{path}: cannot read the file: No such file or directory"]


def test_every_problem_is_reported_at_once_in_file_order(write):
    path = write("""
        version: 1
        defaults:
          interval: often
        targets:
          - provider: opneai
            token: hunter2hunter2
          - provider: openai
            key_env: OPENAI API KEY
            max_tokens: 5000
          - provider: openai
            status_page: ${STATUS_URL}
          - name: nameless
    """)
    assert problems(path) == [
        'airisk.yaml:3: defaults.interval: "often" is not a duration (use e.g. 500ms, 30s, 5m, 1h, 30d)',
        f"airisk.yaml:5: targets[0].provider: unknown provider 'opneai' (did you mean 'openai'? known: {KNOWN})",
        f"airisk.yaml:6: targets[0].token: API keys {NO_KEYS}",
        "airisk.yaml:8: targets[1].key_env: must be the name of an environment variable "
        "(letters, digits and _, e.g. OPENAI_API_KEY), not the key itself",
        "airisk.yaml:9: targets[1].max_tokens: Input should be less than or equal to 4096",
        "airisk.yaml:10: targets[2].name: name 'openai' (taken from its provider) is already used by targets[1]; "
        "give each target a distinct name",
        "airisk.yaml:11: targets[2].status_page: environment variable STATUS_URL is not set "
        "(give a default with ${STATUS_URL:-...})",
        # A missing field has no line of its own: the line of the item that lacks it.
        "airisk.yaml:12: targets[3].provider: required field is missing",
    ]


def test_repeated_key_is_reported_because_yaml_would_drop_the_first(write):
    path = write("""
        targets:
          - provider: openai
        targets:
          - provider: gemini
    """)
    assert problems(path) == ["airisk.yaml:3: targets: repeated key; YAML keeps only this one (first at line 1)"]


# --- secrets -----------------------------------------------------------------------------------


def test_no_message_contains_a_secret_from_the_environment(write):
    secret = "sk-proj-SECRET-4f9a8b7c6d5e"
    path = write("""
        targets:
          - provider: openai
            key_env: ${OPENAI_API_KEY}
            interval: ${OPENAI_API_KEY}
            headers: {Authorization: "Bearer ${OPENAI_API_KEY}"}
          - provider: gemini
            base_url: https://generativelanguage.googleapis.com/v1beta?key=${OPENAI_API_KEY}
            provider_typo: ${OPENAI_API_KEY}
    """)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"OPENAI_API_KEY": secret})
    error = caught.value
    shown = "\n".join([str(error), repr(error.problems), *traceback.format_exception(error)])
    assert secret not in shown
    assert "sk-proj" not in shown
    # Where a value from the environment would have been quoted, its reference is shown instead.
    assert 'airisk.yaml:4: targets[0].interval: "${OPENAI_API_KEY}" is not a duration' in str(error)
    assert len(error.problems) == 5


def test_model_built_in_code_also_refuses_duplicates_without_showing_inputs():
    with pytest.raises(ValidationError) as caught:
        AiriskConfig.model_validate({"targets": [{"provider": "openai"}, {"provider": "openai"}]})
    assert "targets[1].name: name 'openai' (taken from its provider) is already used by targets[0]" in str(
        caught.value
    )
    with pytest.raises(ValidationError) as caught:
        AiriskConfig.model_validate({"targets": [{"provider": "openai", "key_env": "sk-live-0123456789"}]})
    assert "sk-live" not in str(caught.value)


# --- durations and the schema ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [(30, 30.0), (0.25, 0.25), ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0),
     ("1m30s", 90.0), ("1.5s", 1.5), (" 45 ", 45.0), ("30d", 2592000.0)],
)
def test_durations_people_write(written, seconds):
    assert parse_duration(written) == seconds


@pytest.mark.parametrize("written", ["5 minutes", "1w", "30S", "", "1m 30s", True, None, float("nan")])
def test_not_durations(written):
    with pytest.raises(ValueError, match=r"is not a duration \(use e\.g\. 500ms, 30s, 5m, 1h, 30d\)$"):
        parse_duration(written)


@pytest.mark.parametrize(("seconds", "text"), [(0.5, "500ms"), (30, "30s"), (90, "1m30s"), (3600, "1h")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_json_schema_lets_an_editor_check_the_file():
    schema = AiriskConfig.json_schema()
    target = schema["$defs"]["TargetConfig"]
    assert schema["title"] == "airisk.yaml"
    assert schema["additionalProperties"] is False and target["additionalProperties"] is False
    assert schema["required"] == ["targets"]
    assert set(target["properties"]["provider"]["enum"]) == set(CATALOG)
    assert "environment variable" in target["properties"]["key_env"]["description"]
    duration = schema["$defs"]["ProbeDefaults"]["properties"]["interval"]["anyOf"]
    pattern = next(branch["pattern"] for branch in duration if branch.get("type") == "string")
    assert all(re.match(pattern, text) for text in ("500ms", "30s", "1m30s", "60"))
    assert not re.match(pattern, "5 minutes")


def test_local_model_section_adds_the_served_model_as_a_local_target(tmp_path):
    path = tmp_path / "airisk.yaml"
    path.write_text("defaults: {interval: 30s}\ntargets:\n  - provider: openai\n"
                    "local_model:\n  port: 8123\n  alias: tiny\n  interval: 10s\n")
    config = load_config(path)
    schedule = config.resolve_schedule()
    local, interval = schedule[-1]
    assert (local.name, local.base_url, local.model, local.local) == ("local", "http://127.0.0.1:8123/v1", "tiny", True)
    assert local.options["mode"] == "completions"  # the bundled model is a base model
    assert interval == 10


def test_local_model_not_served_adds_nothing(tmp_path):
    path = tmp_path / "airisk.yaml"
    path.write_text("targets:\n  - provider: ollama\n    base_url: http://127.0.0.1:11434\n"
                    "local_model: {serve: false}\n")
    [only] = load_config(path).resolve_targets()
    assert only.provider == "ollama" and only.local is True


def test_local_model_bad_port_names_the_field(tmp_path):
    path = tmp_path / "airisk.yaml"
    path.write_text("targets: []\nlocal_model:\n  port: 70000\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    [problem] = err.value.problems
    assert str(problem).startswith(f"{path}:3: local_model.port: ")


def test_storage_retention_is_configurable_and_checked(tmp_path):
    path = tmp_path / "airisk.yaml"
    path.write_text("targets: []\nstorage:\n  raw_days: 7\n")
    assert load_config(path).storage.raw_days == 7
    assert load_config(path).storage.rollup_hour_days == 365
    path.write_text("targets: []\nstorage:\n  raw_days: 0\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value.problems[0]).startswith(f"{path}:3: storage.raw_days: ")


def test_a_header_a_probe_could_not_send_is_named_when_the_file_loads(write):
    # Found building requests: a non-ASCII or multi-line value gave the probe UnicodeEncodeError (now BAD_CONFIG
    # at probe time); the file should say so first, without echoing the value.
    path = write("""
        targets:
          - provider: openai
            headers: {X-Team: "café-secret", "Bad Name": ok}
    """)
    found = problems(path)
    assert len(found) == 1 and found[0].startswith("airisk.yaml:3: targets[0].headers")
    assert "café" not in found[0]
    path = write("""
        targets:
          - provider: openai
            headers: {"X Team": ok}
    """)
    assert problems(path) == ["airisk.yaml:3: targets[0].headers: header name 'X Team' is not an HTTP token "
                              "(letters, digits, !#$%&'*+-.^_`|~)"]


def test_an_unknown_canary_is_named_when_the_file_loads(write):
    path = write("""
        targets:
          - provider: openai
            options: {canary: riddle}
    """)
    assert problems(path) == ["airisk.yaml:3: targets[0].options: options.canary 'riddle' is not a canary "
                              "(known: arithmetic, completion)"]


# --- vantage points: the heartbeat and the timeout that calls a monitor lost ---------------------------------


def test_a_heartbeat_timeout_under_two_heartbeats_is_one_line_naming_it(write):
    path = write("""
        targets: [{provider: openai}]
        detection: {heartbeat_timeout: 90s}
        alerts: {heartbeat_every: 60s}
        """)
    assert problems(path) == ["airisk.yaml:2: detection.heartbeat_timeout: must be at least 2x "
                              "alerts.heartbeat_every (2m), else one late heartbeat calls a live monitor lost; "
                              "got 1m30s"]
    with pytest.raises(ValueError, match=r"detection\.heartbeat_timeout: must be at least 2x"):
        AiriskConfig.model_validate({"targets": [{"provider": "openai"}], "detection": {"heartbeat_timeout": 30}})
    # Without an alerts section the default heartbeat (60 s) counts; 2 heartbeats exactly is enough.
    ok = load_config(write("""
        targets: [{provider: openai}]
        detection: {heartbeat_timeout: 2m}
        """), environ={})
    assert ok.detection.heartbeat_timeout == 120
