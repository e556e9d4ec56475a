"""The tables. Every timestamp is timezone-aware UTC; no table holds a secret.

Raw results (`ProbeRow`) are kept for a retention window (default 14 days); per-minute
and per-hour rollups (`RollupMinute`, `RollupHour`) keep long history cheap, and hold
latency as fixed-bucket histograms so percentiles stay computable over any window
(percentiles themselves cannot be merged). Schema changes go through Alembic
(`monitor/store/migrations`), never ``create_all`` outside tests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import JSON, Field, SQLModel


class UTCDateTime(TypeDecorator):
    """Stores aware datetimes as UTC; gives them back aware (SQLite forgets the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: airisk stores UTC-aware times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# sa_type, not sa_column: a Column object cannot be shared by the two rollup tables.
def _ts(*, index: bool = False, nullable: bool = False, default: Any = None) -> Any:
    if nullable:
        return Field(default=None, sa_type=UTCDateTime, index=index, nullable=True)
    return Field(default_factory=utcnow, sa_type=UTCDateTime, index=index, nullable=False)


def _json(factory: type = dict) -> Any:
    return Field(default_factory=factory, sa_type=JSON, nullable=False)


class TargetRow(SQLModel, table=True):
    """A probed backend as last configured (no key, no headers: nothing secret)."""

    __tablename__ = "target"
    name: str = Field(primary_key=True)
    provider: str
    model: str
    dialect: str
    base_url: str
    local: bool = False
    updated_at: datetime = _ts()


class ProbeRow(SQLModel, table=True):
    """One `probes.ProbeResult`, as measured from one region."""

    __tablename__ = "probe_result"
    __table_args__ = (sa.Index("ix_probe_result_target_at", "target", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    target: str
    region: str = ""
    at: datetime = _ts(index=True)
    status: str  # up | degraded | down
    error_kind: str
    http_status: int | None = None
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    output_tokens: int | None = None
    input_tokens: int | None = None
    tokens_per_s: float | None = None
    stream_complete: bool = False
    canary_pass: bool | None = None
    cost_usd: float | None = None
    retry_after_s: float | None = None
    local: bool = False
    confirm: bool = False  # a confirmation probe, sent after a failure
    message: str = ""


class _Rollup(SQLModel):
    target: str = Field(primary_key=True)
    region: str = Field(default="", primary_key=True)
    # Indexed on its own: pruning and all-target windows filter on bucket alone, which the
    # (target, region, bucket) primary key cannot serve.
    bucket: datetime = Field(sa_type=UTCDateTime, primary_key=True, index=True)
    count: int = 0
    up: int = 0
    degraded: int = 0
    down: int = 0
    ttft_hist: list[int] = _json(list)  # counts per bucket of monitor.store.histogram.EDGES_MS
    total_hist: list[int] = _json(list)
    errors: dict[str, int] = _json()  # error_kind -> count
    cost_usd: float = 0.0
    tokens_per_s_sum: float = 0.0
    tokens_per_s_n: int = 0


class RollupMinute(_Rollup, table=True):
    __tablename__ = "rollup_minute"


class RollupHour(_Rollup, table=True):
    __tablename__ = "rollup_hour"


class IncidentRow(SQLModel, table=True):
    """A stretch of time a target was DOWN or DEGRADED, with why.

    Two scopes (`monitor.quorum`): a ``regional`` row is one monitor's own view of the target
    (``region`` is that monitor's); a ``global`` row (``region`` "") is the one incident across
    regions, open while ``detection.quorum`` alive regions see the target DOWN or DEGRADED. Only
    global rows page under the default rules. ``regions`` lists the regions that saw a global
    incident: region -> ``{"since": ISO time it first saw it, "state": the worst it saw}``.
    """

    __tablename__ = "incident"
    # One open global incident per target, whatever the monitors racing to open it do.
    __table_args__ = (sa.Index("uq_incident_open_global", "target", unique=True,
                               postgresql_where=sa.text("scope = 'global' AND closed_at IS NULL"),
                               sqlite_where=sa.text("scope = 'global' AND closed_at IS NULL")),)
    id: int | None = Field(default=None, primary_key=True)
    target: str = Field(index=True)
    provider: str
    region: str = ""
    scope: str = "regional"  # regional | global
    regions: dict[str, Any] = _json()
    state: str  # down | degraded (the worst reached)
    opened_at: datetime = _ts(index=True)
    closed_at: datetime | None = _ts(nullable=True)
    cause: dict[str, Any] = _json()  # error kinds seen, thresholds crossed, the values
    vendor_first_post_at: datetime | None = _ts(nullable=True)
    lead_time_s: float | None = None  # vendor's first post minus our detection; > 0: we were first


class SightingRow(SQLModel, table=True):
    """One region's current state of one target (its detector's), and since when: what the quorum
    is taken over. Written with each state change, in the transaction that records it, and once
    after each start, when the monitor's first judgement of the target has settled."""

    __tablename__ = "sighting"
    target: str = Field(primary_key=True)
    region: str = Field(default="", primary_key=True)
    state: str  # up | degraded | down
    since: datetime = _ts()
    # When the region last wrote it: a region counts towards the quorum only with a view formed
    # since its monitor (re)started (`VantageRow.started_at`), not one left from before.
    updated_at: datetime = _ts()


class SuspectRow(SQLModel, table=True):
    """A region's word that a target may be failing (cross-region confirmation): written when its
    scheduled probe of the target fails or the target goes DOWN there, so that the other regions
    probe it at once rather than at their next interval (``detection.cross_region_confirm``). One
    row per target and region, its ``at`` moved on by each new suspicion; read by time (indexed)."""

    __tablename__ = "suspect"
    target: str = Field(primary_key=True)
    region: str = Field(default="", primary_key=True)
    at: datetime = _ts(index=True)  # when the failing probe ended (the writing monitor's clock)


class VantageRow(SQLModel, table=True):
    """A monitor (`airisk monitor --region R`) and its heartbeat. A region whose ``last_seen`` is
    older than ``detection.heartbeat_timeout`` is lost; ``lost_at`` is set by the monitor that
    announced the loss (so it is announced once) and cleared when the region is back."""

    __tablename__ = "vantage"
    region: str = Field(primary_key=True)
    host: str = ""
    pid: int = 0
    version: str = ""
    started_at: datetime = _ts()
    last_seen: datetime = _ts(index=True)
    lost_at: datetime | None = _ts(nullable=True)


class StatusSnapshot(SQLModel, table=True):
    """What a vendor's status page said, when we looked."""

    __tablename__ = "status_snapshot"
    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(index=True)
    fetched_at: datetime = _ts(index=True)
    indicator: str  # none | minor | major | critical
    description: str = ""
    incidents: list[dict[str, Any]] = _json(list)


class AlertOutbox(SQLModel, table=True):
    """An alert to deliver to one channel. Written in the same transaction as its cause;
    dispatchers take rows with FOR UPDATE SKIP LOCKED (PostgreSQL), so each goes out once."""

    __tablename__ = "alert_outbox"
    __table_args__ = (sa.UniqueConstraint("channel", "event_key", name="uq_alert_outbox_channel_event"),)
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = _ts(index=True)
    channel: str  # a channel name from the config
    rule: str  # down | degraded | recovered | slo_burn | reminder
    event_key: str  # unique per (channel, event): enqueueing the same event twice is a no-op
    dedup_key: str  # stable per incident (PagerDuty dedup_key)
    target: str = ""
    provider: str = ""
    payload: dict[str, Any] = _json()
    state: str = Field(default="pending", index=True)  # pending | sent | dead
    attempts: int = 0
    next_attempt_at: datetime = _ts(index=True)
    sent_at: datetime | None = _ts(nullable=True)
    last_error: str = ""


class ProxyRequestRow(SQLModel, table=True):
    """One request through the fault proxy (`airisk proxy --store`): which feature reached which
    route, what fault it met and how it ended. No headers, no query string, no body: nothing secret."""

    __tablename__ = "proxy_request"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts(index=True)
    source: str = ""  # which proxy (host:port) or drill wrote it
    route: str = Field(index=True)
    method: str = "POST"
    path: str = ""
    model: str | None = None
    feature: str | None = Field(default=None, index=True)
    stream: bool | None = None
    status: int | None = None  # None: no response (reset, hang, dropped)
    faults: list[str] = _json(list)
    broken: str | None = None
    ttfb_ms: float | None = None
    total_ms: float | None = None
    error: str = ""


class DrillRunRow(SQLModel, table=True):
    """One chaos drill (`airisk drill run`): its phases as they ran, the verdict, the per-second timeline."""

    __tablename__ = "drill_run"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    started_at: datetime = _ts(index=True)
    ended_at: datetime = _ts()
    passed: bool = False
    aborted: str | None = None  # why a guard stopped it
    phases: list[dict[str, Any]] = _json(list)  # name, start, end, faults
    timeline: list[dict[str, Any]] = _json(list)  # per second and feature: n, ok, deg, p50_ms


class DrillFeatureRow(SQLModel, table=True):
    """One feature's result in one drill: what it should do, what it did while the faults were in force."""

    __tablename__ = "drill_feature"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="drill_run.id", index=True)
    feature: str = Field(index=True)
    expected: str  # survives | degrades | may_fail
    verdict: str | None = None  # resilient | degraded | broken; None: no request during the faults
    meets: bool = False
    requests: int = 0
    ok_rate: float | None = None  # full answers during the faults
    answered_rate: float | None = None  # full or degraded answers during the faults
    p50_ms: float | None = None
    p95_ms: float | None = None
    recovery_s: float | None = None
    faulted_routes: list[str] = _json(list)  # what the drill broke
    answered_by: list[str] = _json(list)  # proxy routes seen answering this feature during the faults
    backends: dict[str, int] = _json()  # backends the product reported answering, during the faults
    phases: dict[str, Any] = _json()  # per phase: requests, ok, degraded, failed, p50/p95, errors


class EvalRunRow(SQLModel, table=True):
    """One `airisk eval run` of one feature's eval set against some of its backends. ``ended_at`` is
    None while it runs, or when it was interrupted: the next run of the same cases resumes it."""

    __tablename__ = "eval_run"
    id: int | None = Field(default=None, primary_key=True)
    feature: str = Field(index=True)
    started_at: datetime = _ts(index=True)
    ended_at: datetime | None = _ts(nullable=True)
    cases_file: str = ""
    cases_hash: str = ""  # sha256 of the eval file's bytes: a resumed run must run the same cases
    backends: list[str] = _json(list)
    cases: int = 0  # cases per backend asked for (after --cases)


class EvalAnswerRow(SQLModel, table=True):
    """One backend's answer to one case in one eval run: what it said, what the checks found, its timing."""

    __tablename__ = "eval_answer"
    __table_args__ = (sa.UniqueConstraint("run_id", "backend", "case_id", name="uq_eval_answer_case"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="eval_run.id", index=True)
    feature: str = Field(index=True)
    backend: str = Field(index=True)
    case_id: str
    at: datetime = _ts()
    error_kind: str | None = None  # None: answered; else the probe's ErrorKind (not a quality failure)
    http_status: int | None = None
    answer: str = ""  # capped (ANSWER_STORED characters): enough to read why it failed
    passed: bool | None = None  # None: not answered, or no check could judge it
    checks: list[dict[str, Any]] = _json(list)  # per check: type, passed, score, reason
    ttft_ms: float | None = None
    total_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    local: bool = False


class EvalCapacityRow(SQLModel, table=True):
    """`airisk eval capacity`: the highest rate one backend held for one feature, and every step tried."""

    __tablename__ = "eval_capacity"
    id: int | None = Field(default=None, primary_key=True)
    feature: str = Field(index=True)
    backend: str = Field(index=True)
    at: datetime = _ts(index=True)
    rate_rps: float = 0.0
    p95_ms: float | None = None
    pass_rate: float | None = None
    budget_ms: float | None = None
    steps: list[dict[str, Any]] = _json(list)
    duration_s: float | None = None


class CapturedCaseRow(SQLModel, table=True):
    """A request a feature sent through the proxy and the primary's answer (`airisk proxy --capture`,
    opt-in per feature), redacted before it is stored, pruned after ``storage.capture_days``."""

    __tablename__ = "captured_case"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts(index=True)
    feature: str = Field(index=True)
    route: str = ""
    path: str = ""
    model: str | None = None
    request: dict[str, Any] = _json()  # the request body, redacted
    answer: str = ""  # the primary's answer text, redacted
    status: int | None = None


ALL_TABLES = [TargetRow, ProbeRow, RollupMinute, RollupHour, IncidentRow, SightingRow, SuspectRow, VantageRow,
              StatusSnapshot, AlertOutbox, ProxyRequestRow, DrillRunRow, DrillFeatureRow, EvalRunRow, EvalAnswerRow,
              EvalCapacityRow, CapturedCaseRow]
