"""What the dashboard and the CLI read: availability, percentiles, series, errors, states, incidents."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from monitor.store import (
    availability_series,
    close_incident,
    current_states,
    error_counts,
    incidents,
    latest_status,
    open_incident,
    open_incident_for,
    prune,
    record_status,
    set_vendor_post,
    target_summary,
    upsert_targets,
    write_results,
)
from probes.result import ErrorKind
from probes.target import Target
from tests.monitor.conftest import T0, make_result


def _an_hour_of_openai(session: Session, start=T0, region: str = "eu") -> None:
    """60 probes a minute apart: 57 up (TTFT 10, 20, ... ms), 2 down (rate limited), 1 degraded."""
    results = []
    for i in range(60):
        at = start + timedelta(minutes=i)
        if i in (30, 31):
            results.append((make_result("openai", at, "down", kind=ErrorKind.RATE_LIMITED, total=3.0), False))
        elif i == 45:
            results.append((make_result("openai", at, "degraded", ttft=5000.0, total=9000.0), False))
        else:
            results.append((make_result("openai", at, ttft=10.0 * (i + 1), total=10.0 * (i + 1) + 200), False))
    write_results(session=session, results=results, region=region)
    session.commit()


@pytest.mark.parametrize(("span", "source"), [(timedelta(hours=1), "raw"), (timedelta(hours=2), "raw"),
                                              (timedelta(hours=6), "minute"), (timedelta(days=2), "minute"),
                                              (timedelta(days=7), "hour")])
def test_summary_names_the_table_that_answered(session: Session, span: timedelta, source: str) -> None:
    _an_hour_of_openai(session)
    (s,) = target_summary(session=session, since=T0 + timedelta(hours=1) - span, until=T0 + timedelta(hours=1))
    assert s.source == source
    assert (s.count, s.up, s.degraded, s.down) == (60, 57, 1, 2)
    assert s.availability == pytest.approx(57 / 60)
    assert s.degraded_share == pytest.approx(1 / 60)
    assert s.errors == {"rate_limited": 2, "wrong_answer": 1}


def test_summary_percentiles_exact_from_raw_close_from_rollups(session: Session) -> None:
    _an_hour_of_openai(session)
    until = T0 + timedelta(hours=1)
    (raw,) = target_summary(session=session, since=T0, until=until)
    (hour,) = target_summary(session=session, since=T0, until=until, source="hour")
    ttfts = sorted([10.0 * (i + 1) for i in range(60) if i not in (30, 31, 45)] + [5000.0])
    assert raw.ttft_p50 == (ttfts[28] + ttfts[29]) / 2 == 295.0  # 58 values: between the middle two
    assert raw.ttft_p99 == pytest.approx(ttfts[-2] + 0.43 * (5000.0 - ttfts[-2]))
    for name in ("ttft_p50", "ttft_p95", "total_p50", "total_p95"):
        assert getattr(hour, name) == pytest.approx(getattr(raw, name), rel=0.15)
    # Down probes give no total time: a 3 ms refusal is not a fast answer.
    assert raw.total_p50 > 200


def test_summary_filters_by_target_and_region(session: Session) -> None:
    _an_hour_of_openai(session, region="eu")
    _an_hour_of_openai(session, region="us")
    write_results(session=session, results=[(make_result("anthropic", T0), False)], region="eu")
    session.commit()
    until = T0 + timedelta(hours=1)
    assert [s.target for s in target_summary(session=session, since=T0, until=until)] == ["anthropic", "openai"]
    (both,) = target_summary(session=session, since=T0, until=until, target="openai")
    (eu,) = target_summary(session=session, since=T0, until=until, target="openai", region="eu")
    assert (both.count, eu.count) == (120, 60)
    assert target_summary(session=session, since=T0, until=until, target="nope") == []


def test_rollup_windows_cover_whole_buckets(session: Session) -> None:
    _an_hour_of_openai(session)
    (s,) = target_summary(session=session, since=T0 + timedelta(minutes=10, seconds=30),
                          until=T0 + timedelta(minutes=20, seconds=1), source="minute")
    assert (s.since, s.until, s.count) == (T0 + timedelta(minutes=10), T0 + timedelta(minutes=21), 11)


def test_availability_series_shows_the_outage_and_the_gaps(session: Session) -> None:
    _an_hour_of_openai(session)
    series = availability_series(session=session, target="openai", since=T0, until=T0 + timedelta(hours=2),
                                 step=timedelta(minutes=10))
    assert len(series) == 12 and {p["source"] for p in series} == {"raw"}
    assert [p["count"] for p in series] == [10] * 6 + [0] * 6
    assert series[3]["availability"] == pytest.approx(0.8)  # minutes 30-39: two down
    assert series[4]["availability"] == pytest.approx(0.9)  # minute 45: degraded
    assert series[0]["availability"] == 1.0 and series[7]["availability"] is None
    assert series[1]["start"] == T0 + timedelta(minutes=10)
    # The same from the minute rollups; the step cannot be finer than a bucket.
    from_rollups = availability_series(session=session, target="openai", since=T0, until=T0 + timedelta(hours=1),
                                       step=timedelta(seconds=20), source="minute")
    assert len(from_rollups) == 60 and from_rollups[30]["availability"] == 0.0


def test_error_counts_most_frequent_first(session: Session) -> None:
    _an_hour_of_openai(session)
    write_results(session=session, region="eu", results=[
        (make_result("anthropic", T0, "down", kind=ErrorKind.OVERLOADED), False) for _ in range(3)])
    session.commit()
    for source in ("raw", "minute", "hour"):
        got = error_counts(session=session, since=T0, until=T0 + timedelta(hours=1), source=source)
        assert [(e["target"], e["error_kind"], e["count"]) for e in got] == [
            ("anthropic", "overloaded", 3), ("openai", "rate_limited", 2), ("openai", "wrong_answer", 1)]
    assert len(error_counts(session=session, since=T0, until=T0 + timedelta(hours=1), target="openai")) == 2


def test_current_states_latest_per_region_with_open_incidents(session: Session) -> None:
    upsert_targets(session=session, targets=[
        Target(name="openai", provider="openai", dialect="openai", base_url="u", model="gpt"),
        Target(name="idle", provider="mistral", dialect="openai", base_url="u", model="small")])
    _an_hour_of_openai(session, region="eu")
    write_results(session=session, region="us", results=[
        (make_result("openai", T0 + timedelta(minutes=5)), False),
        (make_result("openai", T0 + timedelta(minutes=6), "down", kind=ErrorKind.CONNECT_TIMEOUT), False),
        (make_result("openai", T0 + timedelta(minutes=6, seconds=10), "down", kind=ErrorKind.CONNECT_TIMEOUT), True),
    ])
    incident = open_incident(session=session, target="openai", provider="openai", region="us", state="down",
                             cause={"error_kind": "connect_timeout"}, at=T0 + timedelta(minutes=6))
    session.commit()
    states = {(s.target, s.region): s for s in current_states(session=session)}
    assert set(states) == {("idle", ""), ("openai", "eu"), ("openai", "us")}
    assert states[("idle", "")].latest is None and states[("idle", "")].model == "small"
    eu, us = states[("openai", "eu")], states[("openai", "us")]
    assert (eu.latest["status"], eu.latest["at"], eu.open_incident) == ("up", T0 + timedelta(minutes=59), False)
    # The latest result includes the confirmation probe.
    assert (us.latest["error_kind"], us.latest["confirm"]) == ("connect_timeout", True)
    assert (us.open_incident, us.incident_id, us.provider) == (True, incident.id, "openai")


def test_incident_lifecycle_and_vendor_lead_time(session: Session) -> None:
    opened = T0 + timedelta(minutes=3)
    inc = open_incident(session=session, target="openai", provider="openai", region="eu", state="degraded",
                        cause={"ttft_p95_ms": 9000}, at=opened)
    # A second open for the same (target, region) escalates the one that is open.
    again = open_incident(session=session, target="openai", provider="openai", region="eu", state="down",
                          cause={"error_kind": "server_error"}, at=opened + timedelta(minutes=1))
    assert again.id == inc.id and again.state == "down"
    assert again.cause == {"ttft_p95_ms": 9000, "error_kind": "server_error"}
    assert open_incident_for(session=session, target="openai", region="eu").id == inc.id
    assert open_incident_for(session=session, target="openai", region="us") is None
    # The vendor posts 12 minutes after we opened: we were 720 s ahead. A later update does not move it.
    set_vendor_post(session=session, incident_id=inc.id, first_post_at=opened + timedelta(minutes=12))
    set_vendor_post(session=session, incident_id=inc.id, first_post_at=opened + timedelta(minutes=40))
    session.commit()
    (listed,) = incidents(session=session, open_only=True)
    assert (listed.lead_time_s, listed.vendor_first_post_at) == (720.0, opened + timedelta(minutes=12))
    assert listed.duration_s is None
    close_incident(session=session, incident_id=inc.id, at=opened + timedelta(minutes=30))
    close_incident(session=session, incident_id=inc.id, at=opened + timedelta(minutes=50))  # already closed
    session.commit()
    assert incidents(session=session, open_only=True) == []
    (closed,) = incidents(session=session, since=opened + timedelta(minutes=20))
    assert (closed.duration_s, closed.state) == (1800.0, "down")
    assert incidents(session=session, since=opened + timedelta(hours=1)) == []
    assert close_incident(session=session, incident_id=999, at=opened) is None
    with pytest.raises(ValueError, match="before it opened"):
        close_incident(session=session, incident_id=inc.id, at=opened - timedelta(minutes=1))


def test_vendor_posting_first_gives_a_negative_lead_time(session: Session) -> None:
    inc = open_incident(session=session, target="a", provider="a", region="", state="down", cause={}, at=T0)
    set_vendor_post(session=session, incident_id=inc.id, first_post_at=T0 - timedelta(minutes=2))
    session.commit()
    assert incidents(session=session)[0].lead_time_s == -120.0


def test_latest_vendor_status_per_provider(session: Session) -> None:
    record_status(session=session, provider="openai", fetched_at=T0, indicator="none", description="ok", incidents=[])
    record_status(session=session, provider="openai", fetched_at=T0 + timedelta(minutes=1), indicator="major",
                  description="Elevated errors", incidents=[{"id": "x1", "name": "Errors on GPT"}])
    record_status(session=session, provider="anthropic", fetched_at=T0, indicator="none")
    session.commit()
    got = {s["provider"]: s for s in latest_status(session=session)}
    assert got["openai"]["indicator"] == "major" and got["openai"]["incidents"][0]["id"] == "x1"
    assert got["anthropic"]["fetched_at"] == T0


def test_old_windows_are_answered_from_hours_after_pruning(session: Session) -> None:
    _an_hour_of_openai(session)  # 20 days ago
    now = T0 + timedelta(days=20)
    _an_hour_of_openai(session, start=now - timedelta(hours=1))
    prune(session=session, now=now)
    session.commit()
    # A one-hour window would be read from raw results, but those were pruned: the hours answer.
    (old,) = target_summary(session=session, since=T0, until=T0 + timedelta(hours=1))
    (new,) = target_summary(session=session, since=now - timedelta(hours=1), until=now)
    assert (old.source, old.count, old.availability) == ("hour", 60, pytest.approx(0.95))
    assert (new.source, new.count) == ("raw", 60)


def test_a_window_reaching_past_the_pruned_raw_rows_is_read_from_rollups(session: Session) -> None:
    _an_hour_of_openai(session)
    _an_hour_of_openai(session, start=T0 + timedelta(hours=1))
    # Raw retention ran out in the middle of the first hour; the minute rollups still have it.
    prune(session=session, now=T0 + timedelta(days=14, minutes=30), rollup_minute_days=30)
    session.commit()
    (s,) = target_summary(session=session, since=T0 + timedelta(minutes=15), until=T0 + timedelta(minutes=75))
    assert (s.source, s.count) == ("minute", 60)
    (s,) = target_summary(session=session, since=T0 + timedelta(minutes=45), until=T0 + timedelta(minutes=105))
    assert (s.source, s.count) == ("raw", 60)


def test_the_package_exports_every_subjects_public_name() -> None:
    # monitor.store.queries is one module per subject; callers import from the package, so a
    # name a subject module adds and the package forgets would be reachable only by its path.
    import importlib
    import pkgutil

    from monitor.store import queries

    subjects = [m.name for m in pkgutil.iter_modules(queries.__path__) if not m.name.startswith("_")]
    assert set(subjects) == {"alerts", "compare", "drills", "overview", "providers", "risk"}
    public = set()
    for name in subjects:
        module = importlib.import_module(f"monitor.store.queries.{name}")
        public |= {k for k, v in vars(module).items()
                   if not k.startswith("_") and getattr(v, "__module__", None) == module.__name__}
    assert public <= set(queries.__all__)
    assert len(queries.__all__) == len(set(queries.__all__))
    assert all(hasattr(queries, name) for name in queries.__all__)


def test_target_with_history_names_one_with_raw_rows_or_hour_rollups_from_since(session: Session) -> None:
    from monitor.store.queries import target_with_history

    write_results(session=session, results=[(make_result("openai", T0 + timedelta(minutes=30)), False)], region="eu")
    session.commit()
    assert target_with_history(session=session, targets=["openai", "other"], since=T0) == "openai"
    # Past the raw row, the hour rollup of the hour `since` falls in still counts; the next hour's does not.
    assert target_with_history(session=session, targets=["openai"], since=T0 + timedelta(minutes=45)) == "openai"
    assert target_with_history(session=session, targets=["openai"], since=T0 + timedelta(hours=1)) is None
    assert target_with_history(session=session, targets=["other"], since=T0) is None
