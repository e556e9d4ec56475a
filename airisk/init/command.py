"""``airisk init [PATH]``: propose an airisk.yaml from a product's source tree."""

from __future__ import annotations

import sys
from pathlib import Path

import click

DEFAULT_PROXY = "http://127.0.0.1:8480"  # airisk.faultcli.DEFAULT_PROXY, without importing the proxy's CLI


@click.command("init")
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=".", required=False)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the config (default: airisk.yaml in PATH, or beside PATH when it is a file).")
@click.option("--force", is_flag=True, help="Overwrite an existing config.")
@click.option("--proxy", default=DEFAULT_PROXY, show_default=True,
              help="The fault proxy's URL, for the environment variables that route the product through it.")
def init(path: Path, output: Path | None, force: bool, proxy: str) -> None:
    """Find the product's AI calls under PATH and write a commented airisk.yaml proposing its targets and
    features. Exit 0 when written, 1 when no AI call was found, 2 when the file exists (use --force)."""
    from airisk.init.scanner import scan
    from airisk.init.writer import propose, render_report, render_yaml

    if output is None:
        output = (path if path.is_dir() else path.parent) / "airisk.yaml"
    if output.exists() and not force:
        click.echo(f"airisk: {output}: exists; add --force to overwrite it", err=True)
        sys.exit(2)
    result = scan(path)
    proposal = propose(result, proxy)
    for line in render_report(result, proposal):
        click.echo(line)
    if not proposal.targets:
        click.echo(f"airisk: no AI call with a known provider under {path}; nothing written", err=True)
        sys.exit(1)
    try:
        output.write_text(render_yaml(result, proposal, proxy), encoding="utf-8")
    except OSError as exc:
        click.echo(f"airisk: {output}: cannot write: {exc.strerror or exc}", err=True)
        sys.exit(2)
    click.echo(f"Wrote {output}; check it with `airisk validate {output}`.")
