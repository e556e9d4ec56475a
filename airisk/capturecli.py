"""``airisk eval export``: a feature's captured traffic (``airisk proxy --capture``) as eval cases.

Each capture (the request body the feature sent, redacted, and the answer its provider gave) becomes
one JSONL case: the conversation and parameters read from the body in its provider's format, the
answer as the ``reference``, and the default checks (`monitor.quality.capture.DEFAULT_CHECKS`). Every
line written loads with `monitor.quality.cases.load_cases`; a capture that cannot be a case is skipped
and counted by reason.

Exit statuses: 0 cases written; 1 nothing to write (no captures, or none that makes a case); 2 bad
input (an output file that cannot be written).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import click


def _fail(message: str, status: int) -> None:
    click.echo(f"airisk: {message}", err=True)
    sys.exit(status)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("export")
@click.option("--feature", required=True, help="The feature whose captures become cases.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The JSONL file to write (replaced whole); default: standard output.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the latest N captures.")
def export(feature: str, out: Path | None, limit: int | None) -> None:
    """Write FEATURE's captured requests (airisk proxy --capture) as eval cases, one JSON line each:
    the conversation, the primary's answer as the reference, and checks `similar` and `no_refusal`."""
    from sqlmodel import Session

    from monitor.quality.capture import cases_of
    from monitor.quality.cases import CaseError, parse_cases
    from monitor.store import make_engine, migrate
    from monitor.store.capture import captured

    if out is not None and not out.parent.is_dir():
        _fail(f"--out {str(out)!r}: the folder {str(out.parent)!r} does not exist", 2)
    engine = make_engine()
    try:
        migrate(engine)
        with Session(engine) as session:
            rows = captured(session=session, feature=feature, limit=limit)
    finally:
        engine.dispose()
    if not rows:
        _fail(f"no captures of feature {feature!r}; capture some with `airisk proxy --capture {feature}`", 1)
    cases, skipped = cases_of(rows)
    lines: list[str] = []
    problems: Counter[str] = Counter()
    for case in cases:
        line = json.dumps(case, ensure_ascii=False)
        try:
            parse_cases(line, source=case["id"])  # only what loads is written
        except CaseError as exc:
            problems[exc.problems[0].split(": ", 1)[-1][:120]] += 1
            continue
        lines.append(line)
    skipped += problems
    note = "; ".join(f"{n} {reason}" for reason, n in skipped.most_common())
    if not lines:
        _fail(f"none of the {len(rows)} captures of {feature!r} makes a case ({note})", 1)
    text = "\n".join(lines) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        try:
            _write_atomically(out, text)
        except OSError as exc:
            _fail(f"--out {str(out)!r}: cannot be written ({exc.strerror or exc})", 2)
    where = "" if out is None else f" to {out}"
    click.echo(f"{len(lines)} case(s) of {feature!r}{where}" + (f"; skipped: {note}" if note else ""), err=True)
