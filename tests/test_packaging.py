"""Packaging: what `pip install airisk` brings, what each extra adds, and what the wheel ships.

- The headless core (probe, monitor, store, alerts over HTTP/SMTP) runs with no extra installed:
  the core commands run in a child process whose imports of any extra's package fail as they
  would on a core-only install (the forbidden set is computed from the installed metadata).
- Every third-party package the code imports is declared in pyproject.toml, in the core or in
  the extra of the part that imports it (import names mapped to distributions mechanically).
- The wheel carries the storefront example and its drills, where `airisk up` looks for them.
- `make` installs only when pyproject.toml (or the Makefile) changed, and says so when pytest ran no test.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from airisk import extras

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FIRST_PARTY = {"airisk", "probes", "monitor", "chaos", "chaosairisk", "dashboard", "examples", "tests", "bench"}
PACKAGES = ("airisk", "probes", "monitor", "chaos", "chaosairisk", "dashboard", "examples")
NOT_EXTRAS = {"all", "dev"}  # `all` gathers the others; `dev` is for this repository only
OPTIONAL = ("uvloop",)  # imported where installed, with a fallback where not (airisk/runtime.py)

# Which extras a file may import from beyond the core; the first matching prefix wins.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dashboard/", ("dashboard",)),
    ("chaos/drill/loadgen.py", ("drills",)),
    ("chaos/history/", ("chaos", "dashboard")),  # the demo's backfill: `airisk up`, which needs both
    ("chaos/run.py", ("chaos", "fast")),  # the emulator and proxy processes: uvloop too, when installed
    ("chaos/", ("chaos",)),
    ("examples/storefront/tests/", ("drills", "pytest")),  # the plugin's example tests
    ("examples/", ("drills",)),
    ("monitor/alerts/channels/apprise_channel.py", ("apprise",)),
    ("monitor/localmodel.py", ("local",)),
    ("monitor/store/queries/compare.py", ("dashboard",)),  # numpy, inside latency_by_target (the dashboard's)
    ("airisk/runtime.py", ("fast",)),  # uvloop when installed, asyncio otherwise
    ("airisk/pytest_plugin.py", ("pytest",)),
    ("chaosairisk/", ("chaostoolkit",)),
    ("", ()),
)


# -- pyproject.toml and the installed metadata ------------------------------------------------------

def _own(extra: str | None) -> list[Requirement]:
    """airisk's own requirements: the core's (``None``) or one extra's, from pyproject.toml (the
    installed metadata of an editable install may predate the last edit)."""
    if extra is None:
        return [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    return [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]]


def _expand(extras_: set[str]) -> set[str]:
    """``extras_`` and every extra they name through ``airisk[...]``."""
    out, todo = set(), list(extras_)
    while todo:
        extra = todo.pop()
        if extra in out:
            continue
        out.add(extra)
        todo += [e for r in _own(extra) if canonicalize_name(r.name) == "airisk" for e in r.extras]
    return out


def _declared(extras_: tuple[str, ...] | set[str]) -> set[str]:
    """Distributions named directly by the core and by ``extras_`` (with the extras they include)."""
    reqs = _own(None) + [r for e in _expand(set(extras_)) for r in _own(e)]
    return {canonicalize_name(r.name) for r in reqs} - {"airisk"}


def _closure(extras_: set[str]) -> set[str]:
    """Every distribution a core install plus ``extras_`` brings, following the installed metadata
    (markers evaluated for this interpreter and the extras asked for)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = _own(None) + [r for e in _expand(extras_) for r in _own(e)]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name == "airisk":
            todo += [r for e in _expand(set(req.extras)) for r in _own(e)]
            continue
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            pytest.fail(f"{name} is required but not installed: `make dev` installs every extra")
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in req.extras | {""}):
                todo.append(sub)
    return {name for name, _ in seen}


@functools.cache
def _dists_of_module() -> dict[str, set[str]]:
    return {module: {canonicalize_name(d) for d in dists} for module, dists in md.packages_distributions().items()}


@functools.cache
def _modules_of_dist() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for module, dists in _dists_of_module().items():
        for dist in dists:
            out.setdefault(dist, set()).add(module)
    return out


def _every_extra() -> set[str]:
    return set(PYPROJECT["project"]["optional-dependencies"]) - NOT_EXTRAS


@functools.cache
def forbidden_modules() -> tuple[str, ...]:
    """Top-level modules that only an extra brings: absent on a core-only install."""
    only_extras = _closure(_every_extra()) - _closure(set())
    modules = {m for d in only_extras for m in _modules_of_dist().get(d, ())}
    return tuple(sorted(modules))


def test_the_forbidden_set_holds_what_the_issue_names() -> None:
    # If a core requirement started pulling one of these in, the core would no longer be small.
    forbidden = set(forbidden_modules())
    assert {"streamlit", "locust", "gevent", "plotly", "apprise", "aiohttp", "llama_cpp", "psycopg",
            "pandas", "uvicorn", "starlette"} <= forbidden
    assert not {"httpx", "httpcore", "sqlalchemy", "sqlmodel", "pydantic", "yaml", "click"} & forbidden


def test_extras_table_names_what_each_extra_installs() -> None:
    assert set(extras.MODULES) == _every_extra() - {"fast"}
    core = _closure(set())
    for extra, modules in extras.MODULES.items():
        brought = _closure({extra})
        for module in modules:
            dists = _dists_of_module().get(module, set())
            assert dists & brought, f"{extra}: {module} is not installed by the {extra} extra"
            assert not dists & core, f"{extra}: {module} comes with the core, so it cannot tell {extra} is missing"


def test_all_gathers_every_extra_but_the_compiled_model() -> None:
    assert _expand({"all"}) - {"all"} == _every_extra() - {"local"}


# -- every import declared -------------------------------------------------------------------------

def _imports(path: Path) -> list[tuple[str, int]]:
    """Top-level names of the absolute imports in ``path`` (lazy ones included), with their lines."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name.partition(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module.partition(".")[0], node.lineno))
    return out


def _area(rel: str) -> tuple[str, ...]:
    return next(allowed for prefix, allowed in AREAS if rel.startswith(prefix))


def test_every_import_is_declared_where_it_is_used() -> None:
    problems = []
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert len(files) > 100
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        allowed = _declared(_area(rel))
        for module, line in _imports(path):
            if module in FIRST_PARTY or module in sys.stdlib_module_names or module == "__future__":
                continue
            dists = _dists_of_module().get(module)
            if not dists:
                problems.append(f"{rel}:{line}: {module}: no installed distribution provides it")
            elif not dists & allowed:
                where = ", ".join(_area(rel)) or "the core"
                problems.append(f"{rel}:{line}: {module} ({', '.join(sorted(dists))}) is not declared in {where}")
    assert not problems, "\n".join(problems)


def test_the_declaration_check_sees_an_undeclared_import(tmp_path: Path) -> None:
    # The check above must fail on what the issue found: pandas imported, declared nowhere.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import pandas\n")
    (module, line), = _imports(bad)
    assert (module, line) == ("pandas", 2)
    assert not _dists_of_module()[module] & _declared(())


# What the code uses privately, beyond what an import line shows (found by reading, see pyproject.toml).
PRIVATE_USE = {
    "httpx": "probes/client.py replaces AsyncHTTPTransport._pool",
    "httpcore": "probes/pool.py stands in for AsyncConnectionPool; probes/client.py reads its _ssl_context",
}


def _private_imports() -> dict[str, str]:
    """Distributions imported through a private or implementation module (``x._y``, ``x.y_impl``)."""
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [
                    a.name for a in node.names] if isinstance(node, ast.Import) else []
                for name in names:
                    parts = name.split(".")
                    if parts[0] not in FIRST_PARTY and any(p.startswith("_") or p.endswith("_impl") for p in parts[1:]):
                        for dist in _dists_of_module().get(parts[0], ()):
                            out[dist] = f"{path.relative_to(ROOT)}: {name}"
    return out


def test_what_is_used_privately_is_capped_below_the_next_minor() -> None:
    private = {**{canonicalize_name(k): v for k, v in PRIVATE_USE.items()}, **_private_imports()}
    assert {"httpx", "httpcore"} <= set(private)
    every = _own(None) + [r for e in PYPROJECT["project"]["optional-dependencies"] for r in _own(e)]
    for dist, why in sorted(private.items()):
        req, = (r for r in every if canonicalize_name(r.name) == dist)
        v = Version(md.version(dist))
        assert v in req.specifier, f"{req}: the installed {v} is outside it"
        assert Version(f"{v.major}.{v.minor + 1}") not in req.specifier, (
            f"{req}: used privately ({why}), so the next minor release must not install unseen")


# -- the core runs with no extra -------------------------------------------------------------------

HOOK = '''
import os, sys, traceback
_F = frozenset(os.environ["AIRISK_TEST_FORBID"].split(","))
_OURS = tuple(os.environ["AIRISK_TEST_OURS"].split(","))
_OPTIONAL = frozenset(os.environ["AIRISK_TEST_OPTIONAL"].split(","))
_before = sorted({m.partition(".")[0] for m in sys.modules} & _F)
if _before:
    sys.stderr.write(f"FORBIDDEN already imported: {_before}\\n")


def _importer():
    f = sys._getframe(2)
    while f is not None and (f.f_code.co_filename.startswith("<frozen") or "importlib" in f.f_code.co_filename):
        f = f.f_back
    return f.f_code.co_filename if f is not None else ""


class _Forbid:
    """Refuses any module only an extra installs, as a core-only install would; an attempt from
    our own code is reported (a library's optional import, which it survives, is not)."""
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _F:
            if name.partition(".")[0] not in _OPTIONAL and _importer().startswith(_OURS):
                where = [line for line in traceback.format_stack()[:-1] if "<frozen" not in line][-4:]
                sys.stderr.write(f"FORBIDDEN import {name}\\n" + "".join(where))
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Forbid())
'''


@pytest.fixture(scope="module")
def core_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a child Python that behaves as a core-only install (a sitecustomize hook)."""
    hook = tmp_path_factory.mktemp("core-only")
    (hook / "sitecustomize.py").write_text(HOOK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRISK_")}
    env.update(PYTHONPATH=os.pathsep.join([str(hook), str(ROOT)]), AIRISK_TEST_FORBID=",".join(forbidden_modules()),
               AIRISK_TEST_OURS=",".join(f"{ROOT / pkg}{os.sep}" for pkg in PACKAGES) + f",{ROOT / 'tests'}{os.sep}",
               AIRISK_TEST_OPTIONAL=",".join(OPTIONAL), AIRISK_HOME=str(hook / "home"), NO_COLOR="1")
    return env


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once closed: probes get "connection refused"


@pytest.fixture(scope="module")
def core_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    port = _closed_port()
    path = tmp_path_factory.mktemp("core-config") / "airisk.yaml"
    path.write_text(textwrap.dedent(f"""\
        defaults: {{interval: 2s}}
        targets:
          - {{name: dead, provider: openai, base_url: "http://127.0.0.1:{port}/v1", key_env: AIRISK_TEST_NO_KEY}}
        features:
          chat: {{criticality: high, chain: [{{backend: dead}}]}}
        alerts:
          channels:
            - {{name: hook, type: webhook, url_env: AIRISK_TEST_HOOK}}
            - {{name: mail, type: email, smtp_host: 127.0.0.1, smtp_port: {port}, from_addr: a@example.com,
               to_addrs: [b@example.com]}}
          rules:
            - {{rule: down, channels: [hook, mail]}}
        """))
    return path


def _airisk(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airisk.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def _clean(proc: subprocess.CompletedProcess) -> None:
    assert "FORBIDDEN" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("args", [[], ["monitor"], ["probe"], ["validate"], ["score"], ["deps"], ["fault", "list"],
                                  ["init"]],
                         ids=["main", "monitor", "probe", "validate", "score", "deps", "fault", "init"])
def test_core_commands_help_without_extras(core_env: dict[str, str], args: list[str]) -> None:
    proc = _airisk(core_env, *args, "--help")
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


def test_the_hook_refuses_an_extra(core_env: dict[str, str]) -> None:
    # Without this, every test here would pass with a hook that forbids nothing.
    proc = subprocess.run([sys.executable, "-c", "import examples.storefront"], env=core_env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert "FORBIDDEN import starlette" in proc.stderr
    assert "ModuleNotFoundError: No module named 'starlette'" in proc.stderr


def test_validate_probe_score_and_deps_run_without_extras(core_env: dict[str, str], core_config: Path) -> None:
    cwd = core_config.parent
    proc = _airisk(core_env, "validate", str(core_config), cwd=cwd)
    _clean(proc)
    assert proc.returncode == 0 and "ok (1 target)" in proc.stdout, proc.stderr
    proc = _airisk(core_env, "probe", "--config", str(core_config), "--json", cwd=cwd)
    _clean(proc)
    assert proc.returncode == 1, proc.stderr  # down: nothing listens there
    assert '"error_kind": "connection_refused"' in proc.stdout
    proc = _airisk(core_env, "score", "--config", str(core_config), cwd=cwd)
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert "chat" in proc.stdout
    proc = _airisk(core_env, "deps", "--config", str(core_config), cwd=cwd)
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert "chat: declared" in proc.stdout


def test_monitor_service_imports_without_extras(core_env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-c", "import monitor.service, monitor.store, airisk.runtime"],
                          env=core_env, capture_output=True, text=True, timeout=60)
    _clean(proc)
    assert proc.returncode == 0, proc.stderr


def _rows(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # not migrated yet, or busy
        return 0


def test_monitor_runs_without_extras(core_env: dict[str, str], core_config: Path, tmp_path: Path) -> None:
    # The real headless monitor: probes a dead target until it is down and an alert is queued
    # (webhook and email channels), on SQLite, with no extra importable.
    env = dict(core_env, AIRISK_HOME=str(tmp_path), AIRISK_TEST_HOOK=f"http://127.0.0.1:{_closed_port()}/hook")
    proc = subprocess.Popen([sys.executable, "-m", "airisk.cli", "monitor", "--config", str(core_config),
                             "--metrics-port", "0"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    db = tmp_path / "airisk.db"
    try:
        give_up = time.monotonic() + 90
        while not (_rows(db, "probe_result") and _rows(db, "alert_outbox")):
            if proc.poll() is not None or time.monotonic() > give_up:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "FORBIDDEN" not in err, err
    assert _rows(db, "probe_result") and _rows(db, "alert_outbox"), err
    assert proc.returncode == 0, err


# -- the one line that names a missing extra ---------------------------------------------------------

def test_missing_extra_message_names_the_extra_and_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    assert extras.missing(*extras.MODULES) == []  # `make test` installs every extra
    assert extras.missing_message("airisk dashboard", "dashboard") is None
    monkeypatch.setattr(extras, "_installed", lambda module: module not in {"streamlit", "aiohttp"})
    assert extras.missing_message("airisk dashboard", "dashboard") == (
        "airisk dashboard needs the dashboard extra: pip install 'airisk[dashboard]'")
    # drills includes chaos: aiohttp missing means drills is missing, and installing drills brings it
    assert extras.missing("drills", "apprise") == ["drills"]
    assert extras.missing_message("airisk up", "dashboard", "drills", "local") == (
        "airisk up needs the dashboard and drills extras: pip install 'airisk[dashboard,drills]'")
    with pytest.raises(ValueError, match="unknown extra 'dashbord'"):
        extras.missing("dashbord")


def test_missing_extra_seen_in_a_core_only_process(core_env: dict[str, str]) -> None:
    code = "from airisk import extras; print(extras.missing_message('airisk emulate', 'chaos'))"
    proc = subprocess.run([sys.executable, "-c", code], env=core_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "airisk emulate needs the chaos extra: pip install 'airisk[chaos]'"


@pytest.fixture
def lacking(core_env: dict[str, str]):
    """Environment for a child where only ``module`` is missing (the rest installed)."""
    return lambda module, **more: dict(core_env, AIRISK_TEST_FORBID=module, **more)


@pytest.mark.parametrize(("args", "module", "line"), [
    (["dashboard"], "streamlit", "airisk dashboard needs the dashboard extra: pip install 'airisk[dashboard]'"),
    (["up", "--config", "missing.yaml"], "streamlit",
     "airisk up needs the dashboard extra: pip install 'airisk[dashboard]'"),
    (["emulate", "--port", "0"], "aiohttp", "airisk emulate needs the chaos extra: pip install 'airisk[chaos]'"),
    (["proxy", "--port", "0"], "httptools", "airisk proxy needs the chaos extra: pip install 'airisk[chaos]'"),
    (["drill", "run", "empty.yaml"], "locust", "airisk drill run needs the drills extra: pip install 'airisk[drills]'"),
], ids=["dashboard", "up", "emulate", "proxy", "drill"])
def test_a_command_names_the_extra_it_lacks(lacking, tmp_path: Path, args: list[str], module: str,
                                             line: str) -> None:
    # Each check comes before anything starts: without it these end at once on the bad file or the
    # missing module (never starting a demo or a drill).
    (tmp_path / "empty.yaml").write_text("")
    proc = _airisk(lacking(module), *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"airisk: {line}"


def test_monitor_names_the_extra_its_config_needs(lacking, core_config: Path, tmp_path: Path) -> None:
    with_apprise = tmp_path / "apprise.yaml"
    with_apprise.write_text(core_config.read_text().replace("type: webhook", "type: apprise"))
    proc = _airisk(lacking("apprise"), "monitor", "--config", str(with_apprise), "--metrics-port", "0", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "airisk: the apprise alert channel needs the apprise extra: pip install 'airisk[apprise]'")
    env = lacking("psycopg", AIRISK_DATABASE_URL=f"postgresql://airisk@127.0.0.1:{_closed_port()}/airisk")
    proc = _airisk(env, "monitor", "--config", str(core_config), "--metrics-port", "0", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "airisk: AIRISK_DATABASE_URL (PostgreSQL) needs the postgres extra: pip install 'airisk[postgres]'")


# -- the wheel -------------------------------------------------------------------------------------

_NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                     ".ruff_cache", ".bench", "node_modules", "*.db", "*.db-*")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built from a copy of the tree (a build in place would leave build/ in the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCE)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(base / "out"),
                           str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built, = (base / "out").glob("airisk-*.whl")
    with zipfile.ZipFile(built) as whl:
        yield whl


def test_wheel_ships_the_storefront_and_its_drills(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    drills = sorted(p.name for p in (ROOT / "examples/storefront/drills").glob("*.yaml"))
    assert len(drills) >= 3
    evals = sorted(p.name for p in (ROOT / "examples/storefront/evals").glob("*.jsonl"))
    assert len(evals) >= 4
    for name in ("__init__.py", "__main__.py", "app.py", "README.md", *(f"drills/{d}" for d in drills),
                 *(f"evals/{e}" for e in evals)):
        assert f"examples/storefront/{name}" in names, name
    # airisk/up.py finds them at REPO / "examples" / ..., REPO being the folder above airisk/
    assert "airisk/up.py" in names
    assert "monitor/store/migrations/script.py.mako" in names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_wheel_core_requirements_hold_no_extra(wheel: zipfile.ZipFile) -> None:
    meta, = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    requires = [Requirement(line.split(":", 1)[1].strip())
                for line in wheel.read(meta).decode().splitlines() if line.startswith("Requires-Dist:")]
    core = {canonicalize_name(r.name) for r in requires if r.marker is None}
    assert core == _declared(())
    for heavy in ("streamlit", "locust", "gevent", "plotly", "apprise", "aiohttp", "psycopg", "pandas"):
        assert heavy not in core


def test_storefront_runs_from_the_unpacked_wheel(wheel: zipfile.ZipFile, tmp_path: Path) -> None:
    site = tmp_path / "site"
    wheel.extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site))
    code = ("import examples.storefront, airisk.up as up; print(examples.storefront.__file__); "
            "print(sorted(p.name for p in (up.REPO / 'examples/storefront/drills').glob('*.yaml')))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    where, found = proc.stdout.splitlines()[-2:]
    assert where.startswith(str(site))
    assert "openai-outage.yaml" in found and "anthropic-overloaded.yaml" in found


# -- make ------------------------------------------------------------------------------------------

def _make(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The Makefile and pyproject.toml, with a stand-in venv whose tools only say they ran."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    bin_ = tmp_path / ".venv" / "bin"
    bin_.mkdir(parents=True)
    for tool, status in (("python", 0), ("pip", 0), ("ruff", 0), ("pytest", 0), ("airisk", 0)):
        script = bin_ / tool
        script.write_text(f'#!/bin/sh\necho "ran {tool} $*"\nexit ${{FAKE_{tool.upper()}_STATUS:-{status}}}\n')
        script.chmod(0o755)
    return tmp_path


def _age(path: Path, seconds_ago: float) -> None:
    t = time.time() - seconds_ago
    os.utime(path, (t, t))


def test_make_installs_once_then_only_when_pyproject_changes(checkout: Path) -> None:
    first = _make(checkout, "-n", "up")
    assert "pip install" in first.stdout, first.stdout  # a fresh venv: install
    done = _make(checkout, "install")
    assert done.returncode == 0 and "ran pip install" in done.stdout, done.stdout + done.stderr
    again = _make(checkout, "-n", "up")
    assert "pip install" not in again.stdout and "airisk up" in again.stdout, again.stdout
    for name in ("Makefile", "pyproject.toml"):
        _age(checkout / name, 3600)
    _age(checkout / "pyproject.toml", -5)  # edited after the install
    assert "pip install" in _make(checkout, "-n", "up").stdout


def test_make_dev_also_counts_as_installed_for_up(checkout: Path) -> None:
    dev = _make(checkout, "dev")
    assert dev.returncode == 0 and "[dev," in dev.stdout, dev.stdout + dev.stderr
    assert "pip install" not in _make(checkout, "-n", "up").stdout
    assert "pip install" not in _make(checkout, "-n", "test").stdout


def test_make_test_says_when_pytest_collected_nothing(checkout: Path) -> None:
    _make(checkout, "dev")
    proc = subprocess.run(["make", "test"], cwd=checkout, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, FAKE_PYTEST_STATUS="5"))
    assert proc.returncode != 0
    assert "pytest collected no tests (exit 5)" in proc.stderr
    ok = subprocess.run(["make", "test"], cwd=checkout, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "collected no tests" not in ok.stderr
