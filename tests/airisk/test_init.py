"""`airisk init` on the storefront and on fixture projects written in different styles: what it finds, the
config it writes, and that the real CLI's `airisk validate` accepts that config."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from airisk.init import propose, scan

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = Path(__file__).parent / "init_projects"
PROXY = "http://127.0.0.1:8480"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airisk.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def _init(tmp_path: Path, source: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run the real `airisk init` on a copy of ``source``, check the file with the real `airisk validate`."""
    project = tmp_path / source.name
    shutil.copytree(source, project, ignore=shutil.ignore_patterns("__pycache__", "airisk.yaml"))
    run = _cli("init", str(project))
    assert run.returncode == 0, run.stderr
    written = project / "airisk.yaml"
    check = _cli("validate", str(written))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ok" in check.stdout
    return run, yaml.safe_load(written.read_text())


def _sites(path: Path) -> set[tuple[str, str | None, str | None, str | None]]:
    return {(s.function, s.provider, s.model.literal, s.base_url.env) for s in scan(path).sites}


def _chains(config: dict) -> dict[str, list[str]]:
    targets = {t["name"]: t for t in config["targets"]}
    return {name: [f"{targets[link['backend']]['provider']}:{targets[link['backend']].get('model')}"
                   if "backend" in link else f"degraded:{link['degraded']}" for link in feature["chain"]]
            for name, feature in config["features"].items()}


def test_storefront(tmp_path: Path) -> None:
    run, config = _init(tmp_path, ROOT / "examples" / "storefront")
    assert _chains(config) == {
        "description": ["openai:gpt-4o-mini"],
        "chat": ["anthropic:claude-haiku-4-5", "local:gemma-3-270m"],
        "tags": ["openai:gpt-4o-mini", "degraded:fallback"],
        "search": ["local:gemma-3-270m"],
    }
    # the same variables the storefront's README sets to put the proxy in front of it
    for line in ("STOREFRONT_OPENAI_BASE_URL=http://127.0.0.1:8480/openai",
                 "STOREFRONT_ANTHROPIC_BASE_URL=http://127.0.0.1:8480/anthropic",
                 "STOREFRONT_LOCAL_BASE_URL=http://127.0.0.1:8480/local"):
        assert line in run.stdout
        assert f"#   {line}" in (tmp_path / "storefront" / "airisk.yaml").read_text()
    assert "feature chat: anthropic -> local" in run.stdout


def test_sdk_clients_passed_around() -> None:
    assert _sites(PROJECTS / "sdk_passed") == {
        # a client built in main.py, handed to a class, kept on self and used in a method
        ("Summarizer.summarize", "openai", "gpt-4.1-mini", "ACME_OPENAI_BASE_URL"),
        # a parameter annotated with the SDK's type
        ("classify", "anthropic", "claude-sonnet-4-5", "ANTHROPIC_BASE_URL"),
        # a module global imported from another module
        ("tagline", "anthropic", "claude-haiku-4-5", "ANTHROPIC_BASE_URL"),
        # the OpenAI SDK pointed at Groq by its base URL
        ("quick", "groq", "llama-3.1-8b-instant", None),
        # ... and at a gateway, read from the environment with a default
        ("routed", "openai", "gpt-4o", "GATEWAY_URL"),
    }
    keys = {s.function: s.key.env for s in scan(PROJECTS / "sdk_passed").sites}
    assert keys["tagline"] == "ACME_CLAUDE_KEY"
    assert keys["classify"] == "ANTHROPIC_API_KEY"


def test_sdk_project_config(tmp_path: Path) -> None:
    run, config = _init(tmp_path, PROJECTS / "sdk_passed")
    assert _chains(config) == {"summarize": ["openai:gpt-4.1-mini"], "classify": ["anthropic:claude-sonnet-4-5"],
                               "tagline": ["anthropic:claude-haiku-4-5"], "quick": ["groq:llama-3.1-8b-instant"],
                               "routed": ["openai:gpt-4o"]}
    gateway = next(t for t in config["targets"] if t.get("model") == "gpt-4o")
    assert gateway["base_url"] == "https://llm-gateway.acme.internal/v1"
    assert "`airisk proxy --route openai=https://llm-gateway.acme.internal/v1`" in run.stdout
    assert "Change in code: acme/fast.py:10 (quick): base URL https://api.groq.com/openai/v1 -> " \
           "http://127.0.0.1:8480/groq" in run.stdout
    tagline_target = next(t for t in config["targets"] if t.get("model") == "claude-haiku-4-5")
    assert tagline_target["key_env"] == "ACME_CLAUDE_KEY"
    assert "ACME_OPENAI_BASE_URL=http://127.0.0.1:8480/openai" in run.stdout


def test_litellm_router_with_fallbacks(tmp_path: Path) -> None:
    sites = scan(PROJECTS / "litellm_router").sites
    primary = next(s for s in sites if s.function == "answer_question" and s.provider == "openai")
    assert primary.route == "/v1/answer/{user}"
    assert primary.base_url.env == "PRIMARY_API_BASE"
    _, config = _init(tmp_path, PROJECTS / "litellm_router")
    assert _chains(config) == {
        "answer": ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"],  # Router fallbacks=, named from the route
        "summarize": ["groq:llama-3.1-8b-instant", "deepseek:deepseek-chat"],  # completion(fallbacks=...)
    }
    backup = next(t for t in config["targets"] if t["provider"] == "anthropic")
    assert backup["key_env"] == "BACKUP_KEY"


def test_langchain(tmp_path: Path) -> None:
    run, config = _init(tmp_path, PROJECTS / "langchain_app")
    assert _chains(config) == {"answer": ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"],  # with_fallbacks
                               "draft": ["ollama:llama3.2:1b"]}
    assert "OLLAMA_URL=http://127.0.0.1:8480/ollama" in run.stdout
    assert "OPENAI_BASE_URL=http://127.0.0.1:8480/openai" in run.stdout


def test_raw_http(tmp_path: Path) -> None:
    sites = {s.function: s for s in scan(PROJECTS / "raw_http").sites}
    assert set(sites) == {"translate", "rewrite"}  # not weather(): example.com is no provider
    assert (sites["translate"].provider, sites["translate"].model.literal, sites["translate"].key.env) == \
        ("gemini", "gemini-2.5-flash", "GEMINI_API_KEY")
    assert (sites["rewrite"].provider, sites["rewrite"].model.literal, sites["rewrite"].base_url.env) == \
        ("mistral", "mistral-small-latest", "MISTRAL_BASE")
    run, _ = _init(tmp_path, PROJECTS / "raw_http")
    assert "MISTRAL_BASE=http://127.0.0.1:8480/mistral" in run.stdout
    # the Gemini URL is a literal in the code: the report says to change it there
    assert "Change in code: calls.py:11 (translate)" in run.stdout
    assert "http://127.0.0.1:8480/gemini/v1beta" in run.stdout


def test_try_except_fallback(tmp_path: Path) -> None:
    run, config = _init(tmp_path, PROJECTS / "try_fallback")
    assert _chains(config) == {
        "reply": ["openai:gpt-4o", "anthropic:claude-haiku-4-5"],  # the except branch calls Anthropic
        "caption": ["openai:gpt-4o-mini", "degraded:fallback"],  # the except branch lets it go on without AI
        "moderate": ["openai:None"],  # the except branch re-raises: no fallback
    }
    assert "Not decided: bot.py:28 (moderate): openai: the model is not a literal" in run.stdout


def test_never_overwrites_without_force(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(PROJECTS / "try_fallback", project)
    (project / "airisk.yaml").write_text("# mine\n")
    run = _cli("init", str(project))
    assert run.returncode == 2
    assert "airisk.yaml: exists; add --force" in run.stderr
    assert (project / "airisk.yaml").read_text() == "# mine\n"
    forced = _cli("init", str(project), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "reply" in yaml.safe_load((project / "airisk.yaml").read_text())["features"]


def test_nothing_found_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import httpx\n\ndef f():\n    return httpx.get('https://example.com/x')\n")
    (tmp_path / "broken.py").write_bytes(b"def f(:\n")
    run = _cli("init", str(tmp_path))
    assert run.returncode == 1
    assert "Skipped: broken.py: cannot parse: line 1" in run.stdout
    assert not (tmp_path / "airisk.yaml").exists()


def test_feature_names_deduplicated() -> None:
    result = scan(PROJECTS / "try_fallback")
    result.features += result.features[:1]
    names = [f.name for f in propose(result, PROXY).features]
    assert names == ["reply", "caption", "moderate", "reply-2"]


@pytest.mark.parametrize("dialect", ["openai", "anthropic", "gemini", "cohere"])
def test_sdk_suffixes_match_the_proxy(dialect: str) -> None:
    from airisk.init.families import SDK_SUFFIX
    from chaos.speakers import SPEAKERS

    assert SDK_SUFFIX[dialect] == SPEAKERS[dialect].sdk_suffix


def test_secrets_in_code_never_reach_the_output(tmp_path: Path) -> None:
    (tmp_path / "leaky.py").write_text(
        "import httpx\nfrom openai import OpenAI\n"
        "client = OpenAI(api_key='sk-live-SECRET1', base_url='https://bob:SECRET2@api.openai.com/v1')\n"
        "def ask():\n    return client.chat.completions.create(model='gpt-4o')\n"
        "def tr():\n    return httpx.post('https://api.mistral.ai/v1/chat/completions?key=SECRET3',\n"
        "                      headers={'authorization': 'Bearer SECRET4'}, json={'model': 'mistral-small-latest'})\n")
    run = _cli("init", str(tmp_path))
    assert run.returncode == 0, run.stderr
    everything = run.stdout + run.stderr + (tmp_path / "airisk.yaml").read_text()
    assert "SECRET" not in everything
    assert "Not decided: leaky.py:5 (ask): the API key is written in the code" in run.stdout
    assert "Not decided: leaky.py:7 (tr): the API key is written in the code" in run.stdout
    assert "base URL https://api.mistral.ai/v1 -> http://127.0.0.1:8480/mistral " in run.stdout
    assert _cli("validate", str(tmp_path / "airisk.yaml")).returncode == 0


def test_public_names_sorted() -> None:
    import airisk.init

    assert airisk.init.__all__ == sorted(airisk.init.__all__)
    assert all(hasattr(airisk.init, name) for name in airisk.init.__all__)


def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    shutil.copytree(PROJECTS / "try_fallback", tmp_path / "p")
    run = _cli("init", str(tmp_path / "p"), "--output", str(tmp_path / "missing" / "airisk.yaml"))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"airisk: {tmp_path / 'missing' / 'airisk.yaml'}: cannot write: "
                                               "No such file or directory"]
