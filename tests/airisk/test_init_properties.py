"""Property tests: whatever bytes a source tree holds, `airisk init`'s scanner never crashes, and a file it
cannot parse is reported in one line that names the file."""

from __future__ import annotations

import ast
import tempfile
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airisk.init import propose, render_report, render_yaml, scan
from monitor.config import load_config

FRAGMENTS = [
    "import os\n", "import openai\n", "from anthropic import Anthropic\n", "import litellm\n", "import httpx\n",
    "from litellm import Router\n", "from langchain_openai import ChatOpenAI\n",
    "c = openai.OpenAI(base_url=os.getenv('B', 'https://api.openai.com/v1'))\n",
    "a = Anthropic(api_key=os.environ['K'])\n", "r = Router(model_list=[{'model_name': 'x'}], fallbacks=[{'x': 1}])\n",
    "def f(x):\n    return c.chat.completions.create(model=x)\n",
    "def g():\n    try:\n        a.messages.create(model='claude-haiku-4-5')\n    except Exception:\n        pass\n",
    "def h(u=f'{B}/chat/completions'):\n    return httpx.post(u, json={'model': m})\n",
    "class K:\n    def __init__(self, c):\n        self.c = c\n"
    "    def m(self):\n        return self.c.chat.completions.create()\n",
    "K(K(c))\n", "def r1():\n    return r1()\n", "x = x\n", "def q(c: 'openai.OpenAI'):\n    c.x.create()\n",
    "litellm.completion(model=f'{1}', fallbacks=[None, 'openai/gpt'])\n", "llm = ChatOpenAI().with_fallbacks(3)\n",
    "s = ('a_b', 'ENV')\n", "@app.post('/x')\ndef p():\n    return f()\n", "(\n", "def bad(:\n", "\x00", "é",
]


def _check(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory(prefix="airisk-init-") as tmp:
        root = Path(tmp)
        for name, data in files.items():
            (root / name).write_bytes(data)
        result = scan(root)  # must not raise
    assert result.files == len(files)
    for line in result.unreadable:
        assert "\n" not in line
        assert any(line.startswith(f"{name}: ") for name in files)
    for name, data in files.items():
        try:
            ast.parse(data)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            assert sum(line.startswith(f"{name}: cannot parse") for line in result.unreadable) == 1
    proposal = propose(result, "http://127.0.0.1:8480")
    text = render_yaml(result, proposal, "http://127.0.0.1:8480")
    assert all("\n" not in line for line in render_report(result, proposal))
    assert isinstance(yaml.safe_load(text), dict)
    if proposal.targets:  # what `airisk validate` loads: whatever the source, the written config is valid
        with tempfile.TemporaryDirectory(prefix="airisk-init-") as tmp:
            (Path(tmp) / "airisk.yaml").write_text(text)
            load_config(Path(tmp) / "airisk.yaml")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["a.py", "b.py", "c.py"]),
                       st.lists(st.sampled_from(FRAGMENTS), max_size=12).map(lambda xs: "".join(xs).encode()),
                       min_size=1))
def test_python_like_source_never_crashes(files: dict[str, bytes]) -> None:
    _check(files)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["x.py", "y.py"]), st.binary(max_size=400) | st.text(max_size=400).map(
    lambda t: t.encode("utf-8", "surrogatepass")), min_size=1))
def test_arbitrary_bytes_never_crash(files: dict[str, bytes]) -> None:
    _check(files)


def test_unparsable_files_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("def f(:\n    pass\n")
    (tmp_path / "latin.py").write_bytes(b"# coding: utf-8\nx = '\xff\xfe'\n")
    (tmp_path / "deep.py").write_text("x = " + "(" * 5000 + ")" * 5000 + "\n")
    (tmp_path / "huge.py").write_bytes(b"#" * 2_100_000)
    result = scan(tmp_path)
    by_file = {line.split(":")[0]: line for line in result.unreadable}
    assert set(by_file) == {"bad.py", "latin.py", "deep.py", "huge.py"}
    assert by_file["bad.py"].startswith("bad.py: cannot parse: line 1:")
    assert "larger than" in by_file["huge.py"]
    assert all("\n" not in line for line in result.unreadable)


def test_long_file_with_many_calls(tmp_path: Path) -> None:
    body = "import openai\nc = openai.OpenAI()\n" + "".join(
        f"def f{i}():\n    return c.chat.completions.create(model='gpt-4o-mini')\n" for i in range(2000))
    (tmp_path / "big.py").write_text(body)
    result = scan(tmp_path)
    assert len(result.sites) == 2000
    assert len({f.name for f in propose(result, "http://127.0.0.1:8480").features}) == 2000


def test_call_graph_blowup_is_bounded(tmp_path: Path) -> None:
    # each function calls the two before it with arguments: 2**200 paths if followed naively
    lines = ["import openai\nc = openai.OpenAI()\n", "def f0(m):\n    return c.chat.completions.create(model=m)\n",
             "def f1(m):\n    return f0(m)\n"]
    lines += [f"def f{i}(m):\n    return f{i - 1}(m) or f{i - 2}(m)\n" for i in range(2, 200)]
    lines += ["def main():\n    return f199('gpt-4o-mini')\n"]
    (tmp_path / "graph.py").write_text("".join(lines))
    started = time.monotonic()
    result = scan(tmp_path)
    assert time.monotonic() - started < 60
    # calls are followed 6 deep: the one call site is found, from the functions close enough to it
    assert {s.where for s in result.sites} == {"graph.py:4"}
    assert result.features and all(f.chain[0].site.where == "graph.py:4" for f in result.features)
