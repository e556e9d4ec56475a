"""chaos/README.md's map, checked against the code by listing each registry it names.

If one of these fails, either the code grew a place the map does not name, or the map names a
place the code no longer has: fix whichever is wrong, so the map stays the way in.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
import re
from pathlib import Path

import pytest

import chaos.faults.types
from chaos import asks, control, proxycontrol
from chaos.emulator import Emulator
from chaos.faults import FAULT_TYPES, Fault, known_fault_types
from chaos.faults.catalogue import CATEGORIES, FaultType, response_effect, stream_effect
from chaos.faults.wire import Break, DelayHead, Drop, Hold, Pace, Respond, Synthesize, Unterminated
from chaos.proxy import FaultProxy
from chaos.routes import _SDK_ADDS, catalog_routes
from chaos.speakers import SPEAKERS, Ask
from probes.catalog import CATALOG
from probes.classify import _BY_TYPE
from probes.dialects import DIALECTS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "chaos" / "README.md").read_text()
TYPE_MODULES = sorted(m.name for m in pkgutil.iter_modules(chaos.faults.types.__path__) if not m.name.startswith("_"))
# The verbs both control APIs answer (the README's list), as (method, path under /_airisk/).
COMMON_VERBS = [("GET", "health"), ("GET", "fault-types"), ("GET", "faults"), ("POST", "faults"),
                ("DELETE", "faults"), ("POST", "faults/f1/renew"), ("DELETE", "faults/f1"), ("POST", "reset"),
                ("GET", "log")]


def test_every_path_the_map_names_exists():
    paths = set(re.findall(r"`((?:chaos|probes|tests|airisk)/[\w/.<>-]+)`", README))
    assert len(paths) > 15
    missing = [p for p in sorted(paths) if "<" not in p and not (ROOT / p).exists()]
    assert missing == []


# -- faults -----------------------------------------------------------------------------------------

def test_one_module_a_fault_type_registered_under_its_own_name():
    assert sorted(FAULT_TYPES) == TYPE_MODULES
    for name in TYPE_MODULES:
        module = importlib.import_module(f"chaos.faults.types.{name}")
        registered = [v for v in vars(module).values()
                      if isinstance(v, type) and issubclass(v, FaultType) and v.__module__ == module.__name__
                      and getattr(v, "name", None) in FAULT_TYPES]
        assert [cls.name for cls in registered] == [name], name


def test_the_catalogue_lists_every_type_in_category_order():
    assert [t["type"] for t in known_fault_types()] == list(FAULT_TYPES)
    assert [t.category for t in FAULT_TYPES.values()] == sorted((t.category for t in FAULT_TYPES.values()),
                                                                 key=CATEGORIES.index)


@pytest.mark.parametrize("dialect", sorted(SPEAKERS))
@pytest.mark.parametrize("name", sorted(FAULT_TYPES))
def test_each_fault_has_the_effect_its_category_promises_in_each_protocol(name, dialect):
    """The hook the README's table names for the category returns a `chaos.faults.wire` value."""
    ftype, speaker = FAULT_TYPES[name], SPEAKERS[dialect]
    fault = Fault.from_dict({"type": name})
    ask = Ask(model="m", prompt="[probe 1] What is 2 plus 3?", stream=True)
    if ftype.category in ("error", "connection"):
        effect = response_effect(fault, speaker, ask)
        assert isinstance(effect, Respond if ftype.category == "error" else (Drop, Hold)), effect
    elif ftype.category == "stream":
        effect = stream_effect(fault, speaker, ask)
        if name in getattr(speaker, "unsupported", ()):
            assert effect is None
        else:
            assert isinstance(effect, (Break, Unterminated) if ftype.edits else Synthesize), effect
    else:
        assert isinstance(ftype.timing(fault, random.Random(1)), DelayHead | Pace)


def test_every_fault_type_has_a_test_that_names_it():
    here = Path(__file__).name
    fuzzers = {"test_fault_input.py", "test_control_fuzz.py", "control_fuzz.py"}
    texts = " ".join(p.read_text() for p in (ROOT / "tests").rglob("*.py") if p.name not in fuzzers | {here})
    untested = [name for name in FAULT_TYPES if f'"{name}"' not in texts and f"'{name}'" not in texts]
    assert untested == []


# -- protocols --------------------------------------------------------------------------------------

def test_each_protocol_is_in_every_registry_the_map_lists():
    dialects = set(DIALECTS)
    assert set(SPEAKERS) == dialects
    assert set(asks.READERS) == dialects
    assert set(_BY_TYPE) <= dialects and set(_SDK_ADDS) <= dialects
    assert {p.dialect for p in CATALOG.values()} <= dialects
    for name in ("DIALECTS", "_BY_TYPE", "SPEAKERS", "READERS", "_add_provider_routes", "_SDK_ADDS", "CATALOG"):
        assert f"`{name}`" in README, name


def test_each_provider_is_served_by_the_emulator():
    app = Emulator().app()
    paths = {r.resource.canonical for r in app.router.routes() if r.method == "POST"}
    for provider in CATALOG.values():
        if provider.emulator_prefix:
            assert any(p.startswith(provider.emulator_prefix + "/") for p in paths), provider.name


# -- control verbs ----------------------------------------------------------------------------------

def test_both_control_apis_answer_the_common_verbs():
    app = Emulator().app()
    emulator = {(r.method, r.resource.canonical.removeprefix(control.PREFIX + "/"))
                for r in app.router.routes() if r.resource.canonical.startswith(control.PREFIX + "/")}
    for method, path in COMMON_VERBS:
        assert (method, re.sub(r"faults/f1", "faults/{id}", path)) in emulator, (method, path)
    proxy = FaultProxy(catalog_routes("http://127.0.0.1:9"))
    proxy.faults.add(Fault.from_dict({"type": "hang", "id": "f1"}))
    for method, path in COMMON_VERBS:
        body = b'{"type": "hang"}' if (method, path) == ("POST", "faults") else b""
        status, data = proxycontrol._dispatch(proxy, method, path, body, {})
        assert not (status == 404 and "no such control endpoint" in str(data)), (method, path)
        if (method, path) == ("DELETE", "faults/f1"):
            proxy.faults.add(Fault.from_dict({"type": "hang", "id": "f1"}))
    assert "`add_routes`" in README and "`_dispatch`" in README
