"""Fuzz every entry point that takes input from outside, with a fixed example budget (issue 13).

Four entry points, each given ``--examples`` inputs (default 10,000) by hypothesis
(``settings(max_examples=N, deadline=None, database=None)``, no shrinking: a failure is counted, the
run goes on, and the first one of each kind is printed):

- probe: `probes.probe()` on provider bytes split at arbitrary points (arbitrary bytes, and valid-looking
  streams and bodies with odd values), every dialect, over `httpx.MockTransport`
  (`tests.probes.strategies`). Goal: 0 exceptions escape, and none reaches the probe's last-resort
  handler (INTERNAL_ERROR); what leaves `probes` is sane (`tests.probes.strategies.check`).
- control: every control API (`/_airisk/...`) of the emulator and the fault proxy over real loopback
  HTTP (`tests.chaos.control_fuzz`): any JSON, any bytes under any content type, any query. Goal: 0
  answers 5xx, 0 requests unanswered, and both servers still serving at the end (health 200 and a
  chat answer through the proxy to the emulator).
- status: the vendor status-page parser `monitor.statuspoll.parse_status` on summary-shaped JSON, any
  JSON and any bytes (`tests.monitor.test_statuspoll_hostile`). Goal: a `VendorStatus` every value of
  which can be stored, or `StatusPageError` with a one-line message; nothing else.
- config: the config loader (`monitor.config.load_config`) on YAML-ish text and JSON-able structures
  written to a file (`tests.monitor.config_fuzz`). Goal: it loads, or raises `ConfigError` printed as
  ``file:line: field: problem`` lines (file and line when it has them); 0 answers in another form, and 0
  reaching the loader's last resort (a validator's own exception, reported as a bug in airisk: escaped).

Per entry point it prints: inputs tried, exceptions escaped, 5xx answers, server still serving, loader
answers not in ``file:line: field: problem`` form, other broken promises, and the time taken.

Usage: .venv/bin/python bench/fuzz.py [--examples 10000] [--only probe,control,status,config] [--seed N]
Exit status 1 if any goal is missed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass
class Tally:
    """What one entry point did with its inputs."""

    name: str
    tried: int = 0
    escaped: int = 0  # exceptions out of the entry point (control: requests that got no answer)
    server_errors: int | None = None  # 5xx answers (control only)
    serving: bool | None = None  # both servers still serving at the end (control only)
    bad_form: int | None = None  # loader answers not in `file:line: field: problem` form (config only)
    broken: int = 0  # any other promise not kept (see each entry point)
    seconds: float = 0.0
    first: dict[str, str] = field(default_factory=dict)  # kind -> the first input that did it, and what

    def note(self, kind: str, case: object, what: str) -> None:
        self.first.setdefault(kind, f"{what}\n      input: {_short(case)}")

    @property
    def ok(self) -> bool:
        return (self.escaped == 0 and not self.server_errors and self.serving is not False and not self.bad_form
                and self.broken == 0)


def _failed(exc: AssertionError) -> str:
    """An assertion's message, or the assertion itself where it has none."""
    if str(exc):
        return str(exc)
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{frame.line} ({Path(frame.filename).name}:{frame.lineno})"


def _short(case: object, limit: int = 400) -> str:
    text = repr(case)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def run(tally: Tally, strategy: st.SearchStrategy, one: Callable[[object], None], examples: int,
        seed_value: int | None) -> None:
    """Feeds ``examples`` inputs drawn from ``strategy`` to ``one``, which counts into ``tally``; an
    exception out of ``one`` itself is counted as escaped, and the run goes on."""

    def each(case: object) -> None:
        tally.tried += 1
        try:
            one(case)
        except Exception as exc:
            tally.escaped += 1
            tally.note("escaped", case, "".join(traceback.format_exception_only(exc)).strip())

    test = settings(max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))(given(strategy)(each))
    if seed_value is not None:
        test = seed(seed_value)(test)
    start = time.perf_counter()
    test()
    tally.seconds = time.perf_counter() - start


# --- the four entry points ----------------------------------------------------------------------


def fuzz_probe(examples: int, seed_value: int | None) -> Tally:
    from probes import ErrorKind
    from tests.probes.strategies import check, probe_inputs, run_probe_bytes

    tally = Tally("probe")

    def one(case: object) -> None:
        result = run_probe_bytes(case)  # an exception out of probe() is counted by `run` as escaped
        if result.error_kind is ErrorKind.INTERNAL_ERROR:  # caught only by the last resort: escaped all the same
            tally.escaped += 1
            tally.note("escaped", case, f"INTERNAL_ERROR: {result.message}")
            return
        try:
            check(result)
        except AssertionError as exc:
            tally.broken += 1
            tally.note("broken", case, f"check: {_failed(exc)}")

    run(tally, probe_inputs(), one, examples, seed_value)
    return tally


def fuzz_control(examples: int, seed_value: int | None) -> Tally:
    import httpx

    from tests.chaos.control_fuzz import ENDPOINTS, ControlServers
    from tests.chaos.test_control_fuzz import bodies, content_types, targets

    any_endpoint = st.sampled_from([(s, m, p) for s, eps in ENDPOINTS.items() for m, p in eps])
    inputs = st.one_of(
        st.tuples(st.just("json"), targets, bodies.map(lambda b: json.dumps(b).encode()), st.just("application/json")),
        st.tuples(st.just("bytes"), targets, st.binary(max_size=300), content_types),
        st.tuples(st.just("query"), any_endpoint, st.text(max_size=20), st.just("application/json")),
    )
    tally = Tally("control", server_errors=0)
    with ControlServers() as servers:

        def one(case: object) -> None:
            kind, (server, method, path), payload, content_type = case  # type: ignore[misc]
            try:
                if kind == "query":
                    status = servers.http.request(method, servers.urls[server] + path,
                                                  params={"limit": payload, "after": payload},
                                                  headers={"content-type": content_type}).status_code
                else:
                    status = servers.send(server, method, path, payload, content_type or None)
            except httpx.HTTPError as exc:
                tally.escaped += 1  # no answer at all: the connection dropped or timed out
                tally.note("escaped", case, f"no answer: {type(exc).__name__}: {exc}")
                return
            if status >= 500:
                tally.server_errors = (tally.server_errors or 0) + 1
                tally.note("5xx", case, f"HTTP {status}")
            elif status < 200:
                tally.broken += 1
                tally.note("broken", case, f"HTTP {status}")
            servers.reset()

        run(tally, inputs, one, examples, seed_value)
        try:
            tally.serving = servers.still_serving()
        except httpx.HTTPError:
            tally.serving = False
    return tally


def fuzz_status(examples: int, seed_value: int | None) -> Tally:
    from monitor.statuspoll import StatusPageError, parse_status
    from tests.monitor.test_statuspoll_hostile import _check, _json, _summary

    inputs = st.one_of(_summary.map(lambda d: json.dumps(d).encode()), _json.map(lambda d: json.dumps(d).encode()),
                       st.binary(max_size=2000),
                       st.integers(1, 200_000).map(lambda n: b'{"incidents": ' + b"[" * n + b"]" * n + b"}"))
    tally = Tally("status")

    def one(case: object) -> None:
        try:
            parse_status(case)  # type: ignore[arg-type]
        except StatusPageError:
            pass  # an answer: its form is judged by _check below
        except Exception as exc:
            tally.escaped += 1
            tally.note("escaped", case, "".join(traceback.format_exception_only(exc)).strip())
            return
        try:
            _check(case)  # a VendorStatus that can be stored, or a one-line StatusPageError
        except AssertionError as exc:
            tally.broken += 1
            tally.note("broken", case, f"check: {_failed(exc)}")

    run(tally, inputs, one, examples, seed_value)
    return tally


def fuzz_config(examples: int, seed_value: int | None) -> Tally:
    from monitor.config import AiriskConfig, ConfigError
    from monitor.config.loader import INTERNAL_ERROR
    from tests.monitor.config_fuzz import as_text, configish, jsonable, judge, load, yamlish

    inputs = st.one_of(yamlish, st.tuples(jsonable | configish, st.sampled_from(["json", "yaml"])).map(
        lambda t: as_text(*t)))
    tally = Tally("config", bad_form=0)
    path = Path(tempfile.mkdtemp(prefix="airisk-fuzz-")) / "airisk.yaml"

    def one(case: object) -> None:
        answer = load(path, case)  # type: ignore[arg-type]
        if not isinstance(answer, AiriskConfig | ConfigError) or INTERNAL_ERROR in str(answer):
            tally.escaped += 1  # the loader's last resort keeps the form, but something escaped a check all the same
            tally.note("escaped", case, f"{type(answer).__name__}: {answer}")
        elif (why := judge(path, case, answer)) is not None:  # type: ignore[arg-type]
            tally.bad_form = (tally.bad_form or 0) + 1
            tally.note("bad form", case, why)

    run(tally, inputs, one, examples, seed_value)
    return tally


ENTRY_POINTS: dict[str, Callable[[int, int | None], Tally]] = {
    "probe": fuzz_probe, "control": fuzz_control, "status": fuzz_status, "config": fuzz_config,
}


# --- the report ---------------------------------------------------------------------------------


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return f"{value:,}" if isinstance(value, int) else str(value)


def report(tallies: list[Tally], examples: int) -> str:
    head = ("entry point", "inputs tried", "exceptions escaped", "5xx answers", "still serving",
            "not file:line: field: problem", "other broken", "time")
    rows = [head, ("(goal)", f"{examples:,}", "0", "0", "yes", "0", "0", "")]
    rows += [(t.name, _cell(t.tried), _cell(t.escaped), _cell(t.server_errors), _cell(t.serving), _cell(t.bad_form),
              _cell(t.broken), f"{t.seconds:,.1f} s") for t in tallies]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for t in tallies:
        for kind, what in t.first.items():
            lines.append(f"{t.name}, first {kind}: {what}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="inputs per entry point (default 10,000)")
    parser.add_argument("--only", default=",".join(ENTRY_POINTS),
                        help=f"comma-separated entry points (default all: {','.join(ENTRY_POINTS)})")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed, to repeat a run exactly")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if unknown := [n for n in names if n not in ENTRY_POINTS]:
        parser.error(f"unknown entry point {', '.join(unknown)} (known: {', '.join(ENTRY_POINTS)})")
    # The servers and the probe log what they refuse; thousands of refusals would bury the table.
    logging.disable(logging.WARNING)
    tallies = []
    for name in names:
        print(f"fuzzing {name} with {args.examples:,} inputs...", file=sys.stderr, flush=True)
        tallies.append(ENTRY_POINTS[name](args.examples, args.seed))
    print(report(tallies, args.examples))
    return 0 if all(t.ok for t in tallies) else 1


if __name__ == "__main__":
    sys.exit(main())
