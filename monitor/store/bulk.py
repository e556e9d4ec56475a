"""Writing history in bulk: raw results and rollups made all at once, not measured one batch at a time.

`monitor.store.results.write_results` is the monitor's path: a batch of `ProbeResult` objects, each
row built, bound and added into its rollups by SQLAlchemy. Emulated history (`chaos.history`: 30
days of 50 targets, 4.3 million results for the dashboard's scale benchmark) cannot afford that per
row, so it computes the rollups itself and writes here. The schema stays the store's: the column
list comes from `ProbeRow`, missing columns take the model's defaults, and the time column's stored
form is `UTCDateTime`'s. What stays fast is the caller's to keep: values given column by column,
already what the driver binds, one ``executemany`` of one INSERT per call (the caller chunks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.store.models import ProbeRow, RollupHour, RollupMinute
from monitor.store.results import Agg, _aware

RAW_COLUMNS: tuple[str, ...] = tuple(c.name for c in ProbeRow.__table__.columns if not c.primary_key)
"""`ProbeRow`'s columns as `write_raw_bulk` takes them (``id`` is the database's)."""

_REQUIRED = frozenset(name for name in RAW_COLUMNS if ProbeRow.model_fields[name].is_required()) | {"at"}
_ROLLUPS = {"minute": RollupMinute.__table__, "hour": RollupHour.__table__}


def stored_times(engine: Engine, iso: Sequence[str]) -> list[str]:
    """What to bind for `UTCDateTime` values given as naive UTC ISO 8601 text to the microsecond
    (``YYYY-MM-DDTHH:MM:SS.ffffff``, as numpy's ``datetime_as_string(..., unit="us")`` writes them).

    SQLite: SQLAlchemy's storage text for ``DateTime`` (``YYYY-MM-DD HH:MM:SS.ffffff``, the default
    ``storage_format`` of `sqlalchemy.dialects.sqlite.DATETIME`), which the column reads back.
    PostgreSQL: the text with its UTC offset, which the server parses into ``timestamptz`` whatever the
    session's time zone: psycopg sends a ``str`` untyped (``StrDumperUnknown``, its default dumper for
    strings, psycopg/types/string.py), so the server casts it to the column's type. Building a
    datetime per row instead costs twice as long as the rest of this. Text of another shape raises
    ``ValueError``: on SQLite it would be stored as given and sort wrongly against the monitor's rows.
    """
    for text in iso:  # every one: three checks a value, small beside its insert
        if len(text) != 26 or text[10] != "T" or text[19] != ".":
            raise ValueError(f"time {text!r}: expected naive UTC ISO 8601 to the microsecond")
    if engine.dialect.name == "sqlite":
        return [text.replace("T", " ", 1) for text in iso]
    return [f"{text}+00:00" for text in iso]


def write_raw_bulk(*, engine: Engine, columns: Mapping[str, Sequence[Any]]) -> int:
    """Inserts raw results given column by column, in one transaction; returns how many.

    ``columns`` maps `RAW_COLUMNS` names to equally long sequences of what the driver binds: None for
    NULL, bool, int, float, str, and for ``at`` what `stored_times` gives. A column left out takes the
    model's default (``region`` "", ``confirm`` False: scheduled probes of a single-region monitor);
    ``target``, ``status``, ``error_kind`` and ``at`` are required. Rows go in in the order given
    (give them in time order, so the ``at`` indexes are appended to, not split).
    """
    unknown = sorted(columns.keys() - set(RAW_COLUMNS))
    missing = sorted(_REQUIRED - columns.keys())
    if unknown or missing:
        raise ValueError(f"raw columns: unknown {unknown}, missing {missing}")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"raw columns of different lengths: {sorted(lengths)}")
    n = lengths.pop()
    if not n:
        return 0
    names = list(RAW_COLUMNS)
    values = [columns[c] if c in columns else [ProbeRow.model_fields[c].default] * n for c in names]
    quote = engine.dialect.identifier_preparer.quote
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    # The driver's executemany of one plain INSERT: SQLAlchemy's per-row processing of 20 columns
    # is what the backfill cannot afford, and every value is already what it would have bound.
    sql = (f"INSERT INTO {quote(ProbeRow.__tablename__)} ({', '.join(quote(c) for c in names)}) "
           f"VALUES ({', '.join([mark] * len(names))})")
    with engine.begin() as conn:
        conn.exec_driver_sql(sql, list(zip(*values, strict=True)))
    return n


def write_rollups_bulk(*, engine: Engine, table: str, rows: Iterable[tuple[str, datetime, Agg]],
                       region: str = "", batch: int = 20_000) -> int:
    """Inserts new rollup rows into the ``minute`` or ``hour`` rollups, in one transaction; returns how many.

    ``rows`` are ``(target, bucket, counts)`` with ``bucket`` the aware start of a whole minute or
    hour, as `monitor.store.results.write_results` would have left them for ``region``. The rows must
    not exist yet (a conflict raises): this adds no counts into existing rows, unlike `write_results`.
    """
    if table not in _ROLLUPS:
        raise ValueError(f"rollup table must be one of {', '.join(_ROLLUPS)}, got {table!r}")
    values = [{"target": target, "region": region, "bucket": _aware(bucket, "bucket"), **agg.values()}
              for target, bucket, agg in rows]
    with engine.begin() as conn:
        for i in range(0, len(values), batch):
            conn.execute(sa.insert(_ROLLUPS[table]), values[i : i + batch])
    return len(values)
