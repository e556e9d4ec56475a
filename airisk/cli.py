"""The ``airisk`` command line: the composition root above probes, monitor and chaos.

Exit statuses follow one rule: 0 all good, 1 the thing checked is not good (a target
is not up, a config is invalid), 2 bad usage or a config that cannot be used.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from airisk import extras, runtime
from probes.addresses import is_loopback as _loopback

EMULATOR_URL_ENV = "AIRISK_EMULATOR_URL"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="airisk")
def main() -> None:
    """What happens to each feature when an outsourced AI provider goes down, and how fast you would know."""


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="airisk.yaml to read (default: ./airisk.yaml when present).")
@click.option("--target", "target_names", multiple=True, help="Probe only this target (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
@click.option("--emulator", default=None, help=f"Emulator URL when no config is used (env {EMULATOR_URL_ENV}).")
def probe(config_path: Path | None, target_names: tuple[str, ...], as_json: bool, emulator: str | None) -> None:
    """Probe each target once, concurrently. Exit 0 when every target is up, 1 otherwise."""
    from probes.report import print_json_lines, print_table

    targets, note = _targets(config_path, emulator)
    if target_names:
        missing = sorted(set(target_names) - {t.name for t in targets})
        if missing:
            known = ", ".join(t.name for t in targets)
            _fail(f"--target: no target named {', '.join(map(repr, missing))} (known: {known})")
        targets = [t for t in targets if t.name in target_names]
    if not targets:
        _fail("no targets to probe: every target in the config is disabled")
    if note and not as_json:
        click.echo(note, err=True)
    results = runtime.run(runtime.probe_all(targets))
    if as_json:
        print_json_lines(results)
    else:
        print_table(results)
    sys.exit(0 if all(r.status == "up" for r in results) else 1)


def _targets(config_path: Path | None, emulator: str | None):

    if config_path is None and Path("airisk.yaml").is_file():
        config_path = Path("airisk.yaml")
    if config_path is not None:
        return _config_or_exit(config_path).resolve_targets(), None
    url = (emulator or os.environ.get(EMULATOR_URL_ENV) or f"http://127.0.0.1:{runtime.EMULATOR_PORT}").rstrip("/")
    if not runtime.run(runtime.emulator_running(url)):
        _fail(f"no config: pass --config FILE (or create ./airisk.yaml), or start `airisk emulate` so its "
              f"providers can be probed (nothing answers at {url})")
    targets = runtime.emulator_targets(url)
    return targets, f"No config given: probing the {len(targets)} emulated providers at {url}."


def _config_or_exit(path: Path, *, status: int = 2):
    """The loaded config, or every problem on stderr (one line each) and exit ``status``."""
    from monitor.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(status)


def _fail(message: str) -> None:
    click.echo(f"airisk: {message}", err=True)
    sys.exit(2)


def _need(what: str, *names: str) -> None:
    """Exit 2 with one line naming the extras ``what`` needs, when any is not installed."""
    if (message := extras.missing_message(what, *names)) is not None:
        _fail(message)


def _need_database_driver(url: str) -> None:
    if url.startswith("postgresql"):
        _need("AIRISK_DATABASE_URL (PostgreSQL)", "postgres")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=runtime.EMULATOR_PORT, show_default=True, type=int)
@click.option("--allow-external", is_flag=True,
              help="Allow binding a non-loopback address; the control API then needs AIRISK_CONTROL_TOKEN.")
@click.option("--seed", type=int, default=None, help="Seed for latency jitter and fault dice.")
@click.option("--ttft-ms", type=float, default=None, help="Default time to first token.")
@click.option("--token-gap-ms", type=float, default=None, help="Default gap between tokens.")
@click.option("--timeline", "timeline_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A JSON or YAML fault script to run from the start (see the control API's /timeline).")
def emulate(host: str, port: int, allow_external: bool, seed: int | None, ttft_ms: float | None,
            token_gap_ms: float | None, timeline_path: Path | None) -> None:
    """Serve every catalog provider's protocol on one port, with faults on demand."""
    _need("airisk emulate", "chaos")
    if not _loopback(host) and not allow_external:
        _fail(f"--host {host}: not a loopback address; add --allow-external to expose the emulator")
    timeline = None
    if timeline_path is not None:
        timeline = _read_timeline(timeline_path)
    runtime.run(runtime.emulate_forever(host=host, port=port, seed=seed, ttft_ms=ttft_ms,
                                        token_gap_ms=token_gap_ms, timeline=timeline, allow_external=allow_external))


def _read_timeline(path: Path) -> dict:
    import yaml

    from chaos.control import validate_timeline

    try:
        data = yaml.safe_load(path.read_text())
        validate_timeline(data)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        _fail(f"{path}: {str(exc).splitlines()[0]}")
    return data


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--schema", is_flag=True, help="Print the config's JSON Schema instead (for editors).")
def validate(file: Path | None, schema: bool) -> None:
    """Check a config file: one line per problem (file:line: field: what is wrong)."""
    from monitor.config import AiriskConfig

    if schema:
        click.echo(json.dumps(AiriskConfig.json_schema(), indent=2))
        return
    if file is None:
        _fail("validate: give the config FILE to check (or --schema)")
    config = _config_or_exit(file, status=1)
    targets = config.resolve_targets()
    click.echo(f"{file}: ok ({len(targets)} target{'s' if len(targets) != 1 else ''})")


# monitor.logsetup's LEVELS and FORMATS, written out so that --help imports nothing of the monitor (a test
# holds them equal).
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def _log_options(command):
    """``--log-level`` and ``--log-format`` (env AIRISK_LOG_LEVEL, AIRISK_LOG_FORMAT): what the monitor logs."""
    command = click.option("--log-format", type=click.Choice(LOG_FORMATS, case_sensitive=False), default="text",
                           show_default=True, envvar="AIRISK_LOG_FORMAT", show_envvar=True,
                           help="text: one readable line a record; json: one object a line (journald, Loki, "
                                "Vector).")(command)
    return click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default="info",
                        show_default=True, envvar="AIRISK_LOG_LEVEL", show_envvar=True,
                        help="The least severe records logged: state changes, incidents and alerts are info.")(command)


def _configure_logging(level: str, fmt: str) -> None:
    from monitor.logsetup import configure

    configure(level.lower(), fmt.lower())


_EXTERNAL_HELP = ("Allow the dashboard on a non-loopback address; it must be protected (AIRISK_DASHBOARD_PASSWORD, or "
                  "AIRISK_DASHBOARD_AUTH=oidc for Streamlit's OIDC login) unless --allow-unprotected is given too.")
_UNPROTECTED_HELP = ("With --allow-external: serve the dashboard with no password and no OIDC login (only behind a "
                     "proxy that authenticates).")


def _dashboard_address_or_exit(host: str, allow_external: bool, allow_unprotected: bool) -> None:
    """Exit 2 unless the dashboard may listen on ``host``: loopback, or an address allowed on purpose and
    protected (or, said separately, left open). The same rule as ``python -m dashboard`` (`dashboard.serve`)."""
    from dashboard.serve import refusal

    if not _loopback(host) and not allow_external:
        _fail(f"--host {host}: not a loopback address; add --allow-external to expose the dashboard")
    if (why := refusal(host, allow_unprotected, flag="--allow-unprotected")) is not None:
        _fail(why)


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="airisk.yaml to watch (default: ./airisk.yaml; with neither, a labelled demo).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the dashboard listens.")
@click.option("--port", default=8501, show_default=True, type=int, help="The dashboard's port.")
@click.option("--allow-external", is_flag=True, help=_EXTERNAL_HELP)
@click.option("--allow-unprotected", is_flag=True, help=_UNPROTECTED_HELP)
@click.option("--demo", is_flag=True, help="Run the demo even when ./airisk.yaml exists.")
@_log_options
def up(config_path: Path | None, host: str, port: int, allow_external: bool, allow_unprotected: bool,
       demo: bool, log_level: str, log_format: str) -> None:
    """The main job: the monitor, the local model and the dashboard (a labelled demo with no airisk.yaml).

    Runs until Ctrl-C or SIGTERM (exit 0). If anything it needs does not start or stops (the monitor,
    the dashboard, the local model, the demo's emulator, proxy or storefront), it says what and why,
    stops the rest and exits 1.
    """
    _dashboard_address_or_exit(host, allow_external, allow_unprotected)
    if config_path is None and not demo and Path("airisk.yaml").exists():
        config_path = Path("airisk.yaml")
    # The demo also runs the emulator, the fault proxy, the storefront and its drills.
    _need("airisk up", "dashboard", *(("drills",) if demo or config_path is None else ()))
    from airisk.up import Ports, UpError, run_up

    if config_path is not None:
        _config_or_exit(config_path)  # every problem, one line each, before anything starts
        config_path = config_path.resolve()
    _configure_logging(log_level, log_format)  # the monitor runs in this process
    try:
        runtime.run(run_up(config_path=None if demo else config_path, ports=Ports(dashboard=port), host=host))
    except UpError as exc:
        click.echo(f"airisk up: {exc}; everything it started is stopped", err=True)
        sys.exit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8501, show_default=True, type=int)
@click.option("--allow-external", is_flag=True, help=_EXTERNAL_HELP)
@click.option("--allow-unprotected", is_flag=True, help=_UNPROTECTED_HELP)
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="airisk.yaml with the features (default: AIRISK_CONFIG, else ./airisk.yaml).")
def dashboard(host: str, port: int, allow_external: bool, allow_unprotected: bool, config_path: Path | None) -> None:
    """The Streamlit dashboard alone, over the monitor's database (it only reads)."""
    import subprocess

    from airisk.up import dashboard_command

    _need("airisk dashboard", "dashboard")
    _dashboard_address_or_exit(host, allow_external, allow_unprotected)
    env = dict(os.environ)
    if config_path is not None:
        env["AIRISK_CONFIG"] = str(config_path.resolve())
    sys.exit(subprocess.call(dashboard_command(host, port), env=env))


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="airisk.yaml to read (default: ./airisk.yaml).")
@click.option("--region", default="", help="Where this monitor runs; several regions can share one PostgreSQL.")
@click.option("--metrics-port", type=int, default=9464, show_default=True, help="Prometheus /metrics; 0: off.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@_log_options
def monitor(config_path: Path | None, region: str, metrics_port: int, metrics_host: str, log_level: str,
            log_format: str) -> None:
    """Probe every target on schedule, detect outages, keep history, send alerts (headless).

    History goes to AIRISK_DATABASE_URL (PostgreSQL) or else a SQLite file under AIRISK_HOME. What
    happens (state changes, incidents, alerts sent, retried or given up) is logged to stderr.
    """
    from monitor.store import database_url, make_engine
    from monitor.store.db import MONITOR_SQLITE_CACHE_KIB

    config = _config_or_exit(config_path or Path("airisk.yaml"))
    if not _loopback(metrics_host):
        _fail(f"--metrics-host {metrics_host}: not a loopback address")
    url = database_url()
    _need_database_driver(url)
    if config.alerts and any(channel.type == "apprise" for channel in config.alerts.channels):
        _need("the apprise alert channel", "apprise")
    click.echo(f"airisk monitor: {len(config.resolve_schedule())} targets, region {region or '-'}, "
               f"history in {url.split('@')[-1]}", err=True)
    _configure_logging(log_level, log_format)
    engine = make_engine(url, sqlite_cache_kib=MONITOR_SQLITE_CACHE_KIB)
    runtime.run(runtime.monitor_forever(config=config, engine=engine, region=region,
                                        metrics_port=metrics_port, metrics_host=metrics_host))


@main.group()
def local() -> None:
    """The bundled open model: a fallback that no vendor outage can take away."""


@local.command("serve")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Take model, port, threads and alias from this file's local_model section.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A GGUF file (default: the bundled Gemma 3 270M, Q4_K_M).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Port to listen on  [default: 8011]")
@click.option("--threads", type=int, default=None, help="Threads for generation (default: every core).")
@click.option("--alias", default=None, help="Model name the server answers to  [default: gemma-3-270m]")
@click.option("--allow-external", is_flag=True, help="Allow binding a non-loopback address.")
def local_serve(config_path: Path | None, model_path: Path | None, host: str, port: int | None,
                threads: int | None, alias: str | None, allow_external: bool) -> None:
    """Serve a local model behind an OpenAI-compatible API until Ctrl-C or SIGTERM."""
    from airisk.up import model_path as config_model_path
    from monitor.config import LocalModelConfig

    section = LocalModelConfig()
    if config_path is not None:
        section = _config_or_exit(config_path).local_model or section
    model_path = model_path or config_model_path(section, config_path.resolve().parent if config_path else None)
    port = port or section.port
    threads = threads or section.threads
    alias = alias or section.alias
    import signal
    import threading

    from monitor.localmodel import LocalModelError, LocalModelServer, default_model_path

    if not _loopback(host) and not allow_external:
        _fail(f"--host {host}: not a loopback address; add --allow-external to expose the model")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before the child exists, so no signal is missed
        signal.signal(sig, lambda *_: stop.set())
    server = None
    try:
        model = model_path or default_model_path()
        server = LocalModelServer(model=model, host=host, port=port, alias=alias,
                                  **({"threads": threads} if threads else {}))
        server.start()
        took = server.wait_ready()
        click.echo(f"local model {alias} ({model.name}) ready at {server.url}/v1 in {took:.1f}s "
                   f"with {server.threads} threads (log: {server.log_path}); Ctrl-C stops", err=True)
        while not stop.wait(0.5):
            if not server.running():
                _fail(f"local serve: the model server exited (log: {server.log_path})")
    except LocalModelError as exc:
        _fail(f"local serve: {exc}")
    finally:
        if server is not None:
            server.stop()


def _register() -> None:
    from airisk.drillcli import deps, drill
    from airisk.evalcli import eval_group
    from airisk.faultcli import fault, proxy
    from airisk.init.command import init
    from airisk.scorecli import score

    for command in (proxy, fault, drill, deps, score, eval_group, init):
        main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
