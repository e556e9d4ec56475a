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
from chaos import asks, proxycontrol
from chaos.control.api import ControlAPI, Request
from chaos.control.emulatorside import emulator_api
from chaos.emulator import Emulator
from chaos.faults import FAULT_TYPES, Fault, known_fault_types
from chaos.faults.catalogue import CATEGORIES, FaultType, response_effect, stream_effect
from chaos.faults.wire import Break, DelayHead, Drop, Hold, Pace, Respond, Synthesize, Unterminated
from chaos.proxy import FaultProxy
from chaos.routes import catalog_routes, sdk_base
from chaos.speakers import SPEAKERS, Ask, EmulatorRoute, Paging, routes_for
from probes.catalog import CATALOG
from probes.dialects import DIALECTS
from probes.result import ErrorKind

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


def test_each_fault_types_choices_name_its_own_parameters_and_allow_their_defaults():
    for name, ftype in FAULT_TYPES.items():
        for param, allowed in ftype.choices.items():
            assert param in ftype.params and ftype.params[param] in allowed, (name, param)
        Fault.from_dict({"type": name})  # the defaults pass every check


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
        if name in speaker.unsupported:
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
    assert {p.dialect for p in CATALOG.values()} <= dialects
    for name in ("DIALECTS", "errors", "SPEAKERS", "READERS", "ask_of", "routes", "paging", "sdk_suffix",
                 "unsupported", "refusal_voice", "routes_for", "sdk_base", "CATALOG"):
        assert f"`{name}`" in README, name


def test_each_dialect_declares_its_error_table():
    """`probes.classify` reads a dialect's own vocabulary from its ``errors`` table, and nowhere else."""
    for name, dialect in DIALECTS.items():
        assert all(isinstance(k, str) and isinstance(v, ErrorKind) for k, v in dialect.errors.items()), name


def test_each_speaker_declares_its_place_in_the_servers():
    for name, speaker in SPEAKERS.items():
        assert speaker.routes and all(isinstance(r, EmulatorRoute) for r in speaker.routes), name
        assert {r.kind for r in routes_for(speaker.routes, {})} == {"generate", "listing"}, name
        assert isinstance(speaker.paging, Paging), name
        assert isinstance(speaker.sdk_suffix, str), name
        assert isinstance(speaker.unsupported, frozenset) and speaker.unsupported <= set(FAULT_TYPES), name
        assert sdk_base(name, "https://example.test" + speaker.sdk_suffix) == "https://example.test", name
        voice = speaker.refusal_voice(Ask(model="m", prompt="p"))
        assert voice is None or voice.name == name, name


def test_each_provider_is_served_by_the_emulator_at_its_speakers_routes():
    app = Emulator().app()
    served = {(r.method, r.resource.canonical) for r in app.router.routes()}
    for provider in CATALOG.values():
        if provider.emulator_prefix:
            declared = routes_for(SPEAKERS[provider.dialect].routes, provider.options)
            assert declared, provider.name
            for route in declared:
                assert (route.method, route.at(provider.emulator_prefix)) in served, (provider.name, route)


# -- control verbs ----------------------------------------------------------------------------------

def test_both_control_apis_answer_the_common_verbs():
    proxy = FaultProxy(catalog_routes("http://127.0.0.1:9"))
    apis: dict[str, ControlAPI] = {"emulator": emulator_api(Emulator()), "proxy": proxycontrol.control_api(proxy)}
    for side, api in apis.items():
        api.faults.add(Fault.from_dict({"type": "hang", "id": "f1"}))
        for method, path in COMMON_VERBS:
            body = b'{"type": "hang"}' if (method, path) == ("POST", "faults") else b""
            reply = api.dispatch(Request(method, path, {}, body))
            assert not (reply.status == 404 and "no such control endpoint" in str(reply.body)), (side, method, path)
            assert reply.status != 405, (side, method, path)
            if (method, path) == ("DELETE", "faults/f1"):
                api.faults.add(Fault.from_dict({"type": "hang", "id": "f1"}))
    for name in ("ControlAPI", "emulator_api", "proxy_api", "ControlClient"):
        assert f"`{name}`" in README, name
