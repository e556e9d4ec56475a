"""Bulk writes (`monitor.store.bulk`, `outbox.record_deliveries`): history made all at once must read
back exactly as the monitor's own writers leave it (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.alerts.events import AlertEvent
from monitor.alerts.outbox import Delivery, record_deliveries
from monitor.store.bulk import RAW_COLUMNS, stored_times, write_raw_bulk, write_rollups_bulk
from monitor.store.incidents import record_status, record_status_bulk
from monitor.store.models import AlertOutbox, ProbeRow, RollupHour, RollupMinute, StatusSnapshot, TargetRow
from monitor.store.results import Agg, floor_hour, floor_minute, to_row, upsert_targets, write_results
from probes.target import Target
from tests.monitor.conftest import T0, fresh_engine, make_result

_TARGETS = itertools.count()


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def _stored(engine: Engine, table: sa.Table, order: list[str]) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(*(table.c[c] for c in order))).mappings().all()
    return [{k: v for k, v in r.items() if k != "id"} for r in rows]


def test_the_column_list_is_the_models() -> None:
    assert set(RAW_COLUMNS) == set(ProbeRow.model_fields) - {"id"}


def test_raw_rows_and_rollups_read_back_as_write_results_leaves_them(engine: Engine) -> None:
    states = ("up", "down", "degraded")
    results = [make_result("gpt", T0 + timedelta(seconds=37 * i, microseconds=7919 * i), states[i % 3])
               for i in range(90)]
    with Session(engine) as session:
        write_results(session=session, results=[(r, False) for r in results], region="")
        session.commit()
    expected = {t.name: _stored(engine, t, ["target", "at"] if t is ProbeRow.__table__ else ["target", "bucket"])
                for t in (ProbeRow.__table__, RollupMinute.__table__, RollupHour.__table__)}

    with fresh_engine(engine.dialect.name) as other:
        rows = [to_row(r, confirm=False, region="") for r in results]
        columns = {c: [row[c] for row in rows] for c in RAW_COLUMNS if c not in ("region", "confirm")}
        columns["at"] = stored_times(other, [_iso(row["at"]) for row in rows])
        assert write_raw_bulk(engine=other, columns=columns) == len(results)
        for name, floor in (("minute", floor_minute), ("hour", floor_hour)):
            aggs: dict[datetime, Agg] = {}
            for row in rows:
                aggs.setdefault(floor(row["at"]), Agg()).add(row)
            assert write_rollups_bulk(engine=other, table=name, rows=[("gpt", b, a) for b, a in aggs.items()]) \
                == len(aggs)
        for table in (ProbeRow.__table__, RollupMinute.__table__, RollupHour.__table__):
            order = ["target", "at"] if table is ProbeRow.__table__ else ["target", "bucket"]
            assert _stored(other, table, order) == expected[table.name]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_a_stored_time_reads_back_as_the_same_instant(engine: Engine, at: datetime) -> None:
    # SQLite stores the text as given: it must be the column's own form, or it reads back wrong;
    # PostgreSQL parses it (its UTC offset included).
    target = f"t{next(_TARGETS)}"  # one engine for every example: a target of its own each
    write_raw_bulk(engine=engine, columns={"target": [target], "status": ["up"], "error_kind": ["ok"],
                                           "at": stored_times(engine, [_iso(at)])})
    with Session(engine) as session:
        assert session.exec(sa.select(ProbeRow.at).where(ProbeRow.target == target)).scalar_one() == at


@pytest.mark.parametrize("text", ["2025-03-05 10:00:00.000000", "2025-03-05T10:00:00", "2025-03-05T10:00:00+00:00"])
def test_a_time_in_another_form_is_refused(text: str) -> None:
    with fresh_engine("sqlite") as eng, pytest.raises(ValueError, match="ISO 8601 to the microsecond"):
        stored_times(eng, [text])


@pytest.mark.parametrize(("columns", "message"), [
    ({"target": ["t"], "status": ["up"], "error_kind": ["ok"], "at": ["x"], "secret": ["k"]}, r"unknown \['secret'\]"),
    ({"target": ["t"], "status": ["up"], "at": ["x"]}, r"missing \['error_kind'\]"),
    ({"target": ["t", "u"], "status": ["up"], "error_kind": ["ok"], "at": ["x"]}, "different lengths"),
])
def test_raw_columns_are_checked_before_anything_is_written(columns: dict, message: str) -> None:
    with fresh_engine("sqlite") as eng:
        with pytest.raises(ValueError, match=message):
            write_raw_bulk(engine=eng, columns=columns)
        with pytest.raises(ValueError, match="rollup table"):
            write_rollups_bulk(engine=eng, table="day", rows=[])
        with eng.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(ProbeRow.__table__)).scalar_one() == 0


def test_upsert_targets_can_leave_stored_targets_as_they_are(engine: Engine) -> None:
    first = Target(name="gpt", provider="openai", dialect="openai", base_url="https://a", model="m1")
    again = Target(name="gpt", provider="openai", dialect="openai", base_url="https://b", model="m2")
    new = Target(name="claude", provider="anthropic", dialect="anthropic", base_url="https://c", model="m3")
    with Session(engine) as session:
        upsert_targets(session=session, targets=[first], now=T0)
        upsert_targets(session=session, targets=[again, new], now=T0 + timedelta(hours=1), keep_existing=True)
        session.commit()
        rows = {r.name: r for r in session.exec(sa.select(TargetRow)).scalars()}
    assert (rows["gpt"].model, rows["gpt"].updated_at) == ("m1", T0)
    assert rows["claude"].model == "m3"


def test_recorded_deliveries_are_outbox_rows_as_a_dispatcher_left_them(engine: Engine) -> None:
    def event(key: str, channel: str) -> AlertEvent:
        return AlertEvent(channel=channel, rule="down", action="trigger", event_key=key, dedup_key="airisk-gpt",
                          provider="openai", title="gpt down", severity="critical", at=T0)

    sent = T0 + timedelta(seconds=1)
    with Session(engine) as session:
        n = record_deliveries(session=session, deliveries=[
            (event("a", "team"), T0, Delivery("sent", 1, sent)),
            (event("b", "mail"), T0, Delivery("dead", 1, None, "SMTP 535")),
            (event("c", "team"), T0, Delivery("pending")),
        ])
        session.commit()
        rows = {r.event_key: r for r in session.exec(sa.select(AlertOutbox)).scalars()}
    assert n == 3
    assert (rows["a"].state, rows["a"].attempts, rows["a"].sent_at) == ("sent", 1, sent)
    assert (rows["b"].state, rows["b"].last_error) == ("dead", "SMTP 535")
    assert (rows["c"].state, rows["c"].next_attempt_at, rows["c"].created_at) == ("pending", T0, T0)
    with Session(engine) as session, pytest.raises(ValueError, match="outbox state"):
        record_deliveries(session=session, deliveries=[(event("d", "team"), T0, Delivery("delivered"))])


def test_status_snapshots_in_bulk_read_back_as_record_status_leaves_them(engine: Engine) -> None:
    snaps = [{"provider": "openai", "fetched_at": T0 + timedelta(hours=i), "indicator": ("none", "minor")[i % 2],
              **({"description": "Partially Degraded Service", "incidents": [{"id": "x", "name": "errors"}]}
                 if i % 2 else {})} for i in range(4)]
    with Session(engine) as session:
        for snap in snaps:
            record_status(session=session, **snap)
        assert record_status_bulk(session=session, snapshots=[{**s, "provider": "anthropic"} for s in snaps]) == 4
        with pytest.raises(ValueError, match=r"unknown fields \['url'\]"):
            record_status_bulk(session=session, snapshots=[{**snaps[0], "url": "https://status.openai.com"}])
        session.commit()
    rows = _stored(engine, StatusSnapshot.__table__, ["provider", "fetched_at"])
    assert [{**r, "provider": "openai"} for r in rows[:4]] == rows[4:]
