"""Model lifecycle notices and what each provider's listing showed: the tables and their data access.

`ModelNoticeRow` holds every notice `monitor.lifecycle` raised, one row per (model, kind, step), so
a warning goes out once however often the listing is read and however many monitors read it (the
unique ``key``, inserted with ON CONFLICT DO NOTHING). A model that left its provider's listing is
an incident: its row is ``vanished`` with ``opened_at``, and ``closed_at`` once it is listed again.
`ModelSeenRow` remembers which models each endpoint listed, so "vanished" means "was listed and is
no longer", across restarts. No secret is stored: endpoints are named by provider and URL without
credentials, never by key.

Kept out of `monitor.store.models` on purpose (its own migration, 0006_lifecycle).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import JSON, Field, Session, SQLModel, select

from monitor.store.models import UTCDateTime, utcnow

KINDS = ("retiring", "retired", "vanished", "not_listed", "deprecated")
MESSAGE_STORED = 500


class ModelNoticeRow(SQLModel, table=True):
    """One lifecycle notice: a model retiring (one row per warning step), retired, deprecated, never listed,
    or gone from its listing (an incident, open until the model is listed again)."""

    __tablename__ = "model_notice"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_column=sa.Column(sa.String(), nullable=False, unique=True))
    """``{kind}:{provider}:{model}:{step}``, or for ``vanished`` ``vanished:{endpoint}:{model}:{day opened}``."""
    kind: str
    provider: str = Field(index=True)
    endpoint: str = ""
    model: str = Field(index=True)
    retires: date | None = Field(default=None, sa_type=sa.Date, nullable=True)
    source: str = ""
    """Where the date came from: ``config`` (a target's retires:), ``listing``, or a published page's URL."""
    step_days: int | None = None
    """For ``retiring``: the warning step crossed (e.g. 30, 7, 1 days left)."""
    targets: list = Field(default_factory=list, sa_type=JSON, nullable=False)
    features: list = Field(default_factory=list, sa_type=JSON, nullable=False)
    message: str = ""
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True, nullable=False)
    opened_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class ModelSeenRow(SQLModel, table=True):
    """A model an endpoint's listing named, when first and last."""

    __tablename__ = "model_seen"
    endpoint: str = Field(primary_key=True)
    model: str = Field(primary_key=True)
    first_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    last_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


_NOTICE = ModelNoticeRow.__table__  # type: ignore[attr-defined]
_SEEN = ModelSeenRow.__table__  # type: ignore[attr-defined]


def _insert(session: Session):
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise NotImplementedError(f"lifecycle notices support SQLite and PostgreSQL, not {dialect}")
    return insert


def add_notice(*, session: Session, row: ModelNoticeRow) -> ModelNoticeRow | None:
    """Stores ``row`` unless a notice with its key exists (from this monitor or another); returns the stored
    row, or None when it was already there. Does not commit."""
    values = {c.name: getattr(row, c.name) for c in _NOTICE.columns if c.name != "id"}
    values["message"] = values["message"][:MESSAGE_STORED]
    stmt = _insert(session)(_NOTICE).values(values).on_conflict_do_nothing(index_elements=["key"])
    new_id = session.execute(stmt.returning(_NOTICE.c.id)).scalar()
    if new_id is None:
        return None
    return session.get(ModelNoticeRow, new_id)


def open_vanished(*, session: Session, endpoint: str, model: str) -> ModelNoticeRow | None:
    """The open ``vanished`` incident of ``model`` at ``endpoint``, if any."""
    return session.exec(select(ModelNoticeRow).where(
        ModelNoticeRow.kind == "vanished", ModelNoticeRow.endpoint == endpoint, ModelNoticeRow.model == model,
        ModelNoticeRow.closed_at.is_(None))).first()


def close_vanished(*, session: Session, row: ModelNoticeRow, now: datetime) -> bool:
    """Closes ``row`` if it is still open (another monitor may have closed it first); True if this call did."""
    result = session.execute(sa.update(_NOTICE).where(_NOTICE.c.id == row.id, _NOTICE.c.closed_at.is_(None))
                             .values(closed_at=now))
    return result.rowcount == 1


def reopen(*, session: Session, key: str) -> ModelNoticeRow | None:
    """Opens again the closed notice ``key`` (a model gone again on the day it came back); the row, or None."""
    result = session.execute(sa.update(_NOTICE).where(_NOTICE.c.key == key, _NOTICE.c.closed_at.is_not(None))
                             .values(closed_at=None))
    if result.rowcount != 1:
        return None
    return session.exec(select(ModelNoticeRow).where(ModelNoticeRow.key == key)).first()


def mark_seen(*, session: Session, endpoint: str, models: Iterable[str], now: datetime) -> None:
    """Records that ``endpoint``'s listing named ``models`` at ``now``. Does not commit."""
    rows = [{"endpoint": endpoint, "model": m, "first_seen": now, "last_seen": now} for m in dict.fromkeys(models)]
    if not rows:
        return
    stmt = _insert(session)(_SEEN).values(rows)
    session.execute(stmt.on_conflict_do_update(index_elements=["endpoint", "model"],
                                               set_={"last_seen": stmt.excluded.last_seen}))


def seen_models(*, session: Session, endpoint: str) -> set[str]:
    """Every model ``endpoint``'s listing has named."""
    return set(session.exec(select(ModelSeenRow.model).where(ModelSeenRow.endpoint == endpoint)).all())


def notices(*, session: Session, since: datetime | None = None, open_only: bool = False) -> list[ModelNoticeRow]:
    """Notices, newest first: since ``since``; with ``open_only``, only open vanished incidents."""
    query = select(ModelNoticeRow).order_by(ModelNoticeRow.at.desc(), ModelNoticeRow.id.desc())
    if since is not None:
        query = query.where(ModelNoticeRow.at >= since)
    if open_only:
        query = query.where(ModelNoticeRow.kind == "vanished", ModelNoticeRow.closed_at.is_(None))
    return list(session.exec(query).all())


def known_retirements(*, session: Session) -> dict[tuple[str, str], tuple[date, str]]:
    """(provider, model) -> (retirement day, source) from the latest dated notice of each, for release gates."""
    out: dict[tuple[str, str], tuple[date, str]] = {}
    rows = session.exec(select(ModelNoticeRow).where(ModelNoticeRow.retires.is_not(None))
                        .order_by(ModelNoticeRow.at, ModelNoticeRow.id)).all()
    for row in rows:
        out[(row.provider, row.model)] = (row.retires, row.source)
    return out
