"""Showing probe results to people (a rich table) and to programs (JSON lines)."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

from probes.result import ProbeResult, Status

_STYLE = {Status.UP: "green", Status.DEGRADED: "yellow", Status.DOWN: "bold red"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def print_table(results: list[ProbeResult], console: Console | None = None) -> None:
    table = Table(header_style="bold")
    for column in ("target", "model", "status", "kind", "http", "ttft ms", "total ms", "tok/s", "canary", "note"):
        table.add_column(column, justify="right" if column.endswith(("ms", "s", "http")) else "left",
                         no_wrap=column != "note")
    for r in results:
        canary = "-" if r.canary_pass is None else ("pass" if r.canary_pass else "FAIL")
        label = r.target + (" (local)" if r.local and "local" not in r.target else "")
        table.add_row(
            label, r.model, f"[{_STYLE[r.status]}]{r.status}[/]",
            str(r.error_kind), str(r.http_status or "-"), _ms(r.ttft_ms), _ms(r.total_ms),
            "-" if r.tokens_per_s is None else f"{r.tokens_per_s:.0f}", canary, r.message[:60],
        )
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: do not squeeze into 80 columns
            console = Console(width=200)
    console.print(table)


def print_json_lines(results: list[ProbeResult]) -> None:
    for r in results:
        data = r.to_dict()
        data.pop("answer", None)
        sys.stdout.write(json.dumps(data) + "\n")
