"""``airisk proxy`` and ``airisk fault ...``: the fault proxy, and the faults in force at it.

``airisk fault`` talks to a control API (``/_airisk/``): the proxy's by default
(``--at`` or ``AIRISK_PROXY_URL``), or the emulator's, which has the same fault endpoints.
With ``AIRISK_CONTROL_TOKEN`` set it sends ``Authorization: Bearer <token>``, which a proxy or
emulator served with ``--allow-external`` requires (`chaos.controlguard`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from airisk import extras, runtime
from chaos.controlguard import TOKEN_ENV

PROXY_URL_ENV = "AIRISK_PROXY_URL"
DEFAULT_PROXY = "http://127.0.0.1:8480"


def _fail(message: str) -> None:
    click.echo(f"airisk: {message}", err=True)
    sys.exit(2)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8480, show_default=True, type=int)
@click.option("--allow-external", is_flag=True,
              help=f"Allow binding a non-loopback address; the control API then needs {TOKEN_ENV}.")
@click.option("--grace", default=3.0, show_default=True, type=click.FloatRange(0, 3600),
              help="Seconds a stop (Ctrl-C, SIGTERM) waits for requests in flight; a second Ctrl-C quits at once.")
@click.option("--emulator", default=None, metavar="URL",
              help="Send every catalog route to `airisk emulate` at URL instead of the real provider.")
@click.option("--route", "route_specs", multiple=True, metavar="NAME[:DIALECT]=URL",
              help="Add or override a route (repeatable), e.g. local=http://127.0.0.1:8011/v1.")
@click.option("--log-size", default=10_000, show_default=True, type=int, help="Requests kept in memory.")
@click.option("--head-timeout", default=600.0, show_default=True, type=click.FloatRange(1, 86_400),
              help="Seconds to wait for the upstream's response head before answering 504 in its own format.")
@click.option("--max-body", default=32 << 20, show_default=True, type=click.IntRange(1024, 1 << 30),
              help="Largest request body passed on, in bytes (then 413).")
@click.option("--store", is_flag=True,
              help="Also keep the request log in the monitor's database (AIRISK_DATABASE_URL, else the "
                   "SQLite file under AIRISK_HOME).")
@click.option("--capture", "captures", multiple=True, metavar="FEATURE[:N]",
              help="Keep the request bodies and answers of FEATURE (the X-AIRisk-Feature header), redacted, in the "
                   "monitor's database as eval material (`airisk eval export`); at most N stored (default 200). "
                   "Repeatable. Nothing is captured without it.")
@click.option("--redact", "redact", multiple=True, metavar="REGEX",
              help="Also redact what REGEX matches in captures, besides keys, emails, phone, card and IBAN numbers "
                   "(repeatable).")
@click.option("--redact-file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="A file of redaction patterns: one regular expression a line, # for comments.")
@click.option("--relay/--no-relay", default=True, show_default=True,
              help="Relay a request that meets no fault by callbacks, with no task; --no-relay serves every request "
                   "on the ASGI course instead (slower: for comparison and debugging).")
def proxy(host: str, port: int, allow_external: bool, grace: float, emulator: str | None,
          route_specs: tuple[str, ...], log_size: int, head_timeout: float, max_body: int, store: bool,
          captures: tuple[str, ...], redact: tuple[str, ...], redact_file: Path | None, relay: bool) -> None:
    """The fault proxy: http://HOST:PORT/<route>/... forwards to the route's upstream, breaking it on demand."""
    if (message := extras.missing_message("airisk proxy", "chaos")) is not None:
        _fail(message)
    from chaos.run import proxy_routes

    try:
        routes = proxy_routes(host, allow_external=allow_external, emulator=emulator, route_specs=route_specs)
    except ValueError as exc:  # UnsafeBind and ControlGuardError among them
        _fail(str(exc))
    if log_size < 1:
        _fail("--log-size: must be at least 1")
    engine = None
    if store:
        from monitor.store import make_engine

        engine = make_engine()
    capture = _capture(captures, redact, redact_file, engine)
    runtime.run(runtime.proxy_forever(host=host, port=port, routes=routes, log_size=log_size, engine=engine,
                                      allow_external=allow_external, grace=grace, head_timeout_s=head_timeout,
                                      max_body=max_body, fast=relay,
                                      **({"capture": capture} if capture is not None else {})))


def _capture(specs: tuple[str, ...], redact: tuple[str, ...], redact_file: Path | None, engine):
    """The `chaos.proxycapture.Capture` that ``--capture`` asks for (None without it), its redactor built and
    its database migrated before the proxy starts, so a bad pattern or an unreachable database stops here."""
    if not specs:
        if redact or redact_file:
            _fail("--redact and --redact-file apply to captures: add --capture FEATURE[:N]")
        return None
    from chaos.proxycapture import Capture, parse_capture
    from chaos.proxystore import capture_writer, stored_captures
    from monitor.quality.redact import Redactor, parse_patterns
    from monitor.store import make_engine, migrate

    limits: dict[str, int] = {}
    try:
        for spec in specs:
            feature, n = parse_capture(spec)
            limits[feature] = n
        patterns = list(redact)
        if redact_file is not None:
            try:
                patterns += parse_patterns(redact_file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"--redact-file {str(redact_file)!r}: cannot be read ({exc})") from None
        redactor = Redactor(patterns)
    except ValueError as exc:
        _fail(str(exc))
    engine = engine if engine is not None else make_engine()
    migrate(engine)
    stored = stored_captures(engine, limits)
    for feature, n in sorted(limits.items()):
        click.echo(f"capturing {feature}: {stored.get(feature, 0)} of at most {n} already stored", err=True)
    return Capture(limits, write=capture_writer(engine, redactor), stored=stored)


@click.group()
def fault() -> None:
    """Add, list and clear faults at a running fault proxy (or emulator)."""


_at = click.option("--at", "at", default=None, metavar="URL",
                   help=f"Control API to talk to (env {PROXY_URL_ENV}; default {DEFAULT_PROXY}).")


def _call(at: str | None, method: str, path: str, body: dict | None = None):
    """One control request through `chaos.control.client.ControlClient`; a one-line error and exit 2 otherwise."""
    from chaos.control.client import ControlClient, NotJSON, Refused, Unreachable

    base = (at or os.environ.get(PROXY_URL_ENV) or DEFAULT_PROXY).rstrip("/")
    try:
        with ControlClient(base, timeout=10) as client:
            return client.call(method, path, body)
    except Unreachable as exc:
        _fail(f"cannot reach the fault proxy at {base} ({exc}); start it with `airisk proxy`")
    except NotJSON as exc:
        _fail(f"{base}: answered {exc.status} without JSON; is it an airisk proxy or emulator?")
    except Refused as exc:
        _fail(exc.message)


def _param(values: tuple[str, ...]) -> dict:
    params = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            _fail(f"--param {item!r}: expected NAME=VALUE, e.g. --param delay_ms=500")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


@fault.command("add")
@click.argument("route")
@click.argument("fault_type", metavar="TYPE")
@click.option("--probability", type=float, default=1.0, show_default=True, help="Share of matching requests hit.")
@click.option("--for", "lease", default="10m", show_default=True,
              help="Lease: the fault lapses by itself after this long (e.g. 60s, 5m; at most 24h, "
                   "`airisk fault renew` extends it). 'never' gives the longest, 24h.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A fault parameter (repeatable).")
@click.option("--model", default=None, help="Only requests for this model.")
@click.option("--feature", default=None, help="Only requests with this X-AIRisk-Feature header.")
@click.option("--path", default=None, help="Only requests whose path below the route starts so.")
@_at
def fault_add(route: str, fault_type: str, probability: float, lease: str, params: tuple[str, ...],
              model: str | None, feature: str | None, path: str | None, at: str | None) -> None:
    """Break ROUTE (a provider route, or '*' for every route) with fault TYPE."""
    from monitor.durations import parse_duration

    body: dict = {"type": fault_type, "probability": probability, "params": _param(params)}
    if route != "*":
        body["route"] = route
    body.update({k: v for k, v in {"model": model, "feature": feature, "path": path}.items() if v is not None})
    if lease != "never":
        try:
            body["for_s"] = parse_duration(lease)
        except ValueError as exc:
            _fail(f"--for: {exc}")
    added = _call(at, "POST", "faults", body)
    click.echo(f"{added['id']}  {fault_type} on {route}, lapses in {lease if lease != 'never' else '24h'}")


@fault.command("renew")
@click.argument("fault_id")
@click.option("--for", "lease", default="10m", show_default=True, help="The new lease, from now (at most 24h).")
@_at
def fault_renew(fault_id: str, lease: str, at: str | None) -> None:
    """Extend a fault's lease: it lapses LEASE from now."""
    from monitor.durations import parse_duration

    try:
        for_s = parse_duration(lease)
    except ValueError as exc:
        _fail(f"--for: {exc}")
    _call(at, "POST", f"faults/{fault_id}/renew", {"for_s": for_s})
    click.echo(f"{fault_id}  lapses in {lease}")


@fault.command("list")
@click.option("--json", "as_json", is_flag=True)
@_at
def fault_list(as_json: bool, at: str | None) -> None:
    """The faults in force."""
    faults = _call(at, "GET", "faults")
    if as_json:
        click.echo(json.dumps(faults, indent=2))
        return
    if not faults:
        click.echo("no faults in force")
        return
    now = time.time()
    for f in faults:
        scope = " ".join(f"{k}={v}" for k, v in f["scope"].items()) or "every route"
        left = f"{f['expires_at'] - now:.0f}s left" if f["expires_at"] else "no lease"
        params = " ".join(f"{k}={v}" for k, v in f["params"].items())
        click.echo(f"{f['id']:<6} {f['type']:<20} p={f['probability']:<5g} {scope:<30} {left:<12} {params}")


@fault.command("rm")
@click.argument("fault_id")
@_at
def fault_rm(fault_id: str, at: str | None) -> None:
    """Remove one fault by id."""
    _call(at, "DELETE", f"faults/{fault_id}")
    click.echo(f"removed {fault_id}")


@fault.command("clear")
@_at
def fault_clear(at: str | None) -> None:
    """Remove every fault at once."""
    click.echo(f"removed {_call(at, 'DELETE', 'faults')['removed']} fault(s)")


@fault.command("log")
@click.option("--limit", type=int, default=20, show_default=True)
@_at
def fault_log(limit: int, at: str | None) -> None:
    """The latest requests through the proxy, one JSON object per line."""
    for entry in _call(at, "GET", f"log?limit={limit}"):
        click.echo(json.dumps(entry))
