"""Captured requests and answers (``airisk proxy --capture``, opt-in per feature): written redacted,
read back as eval cases (``airisk eval export``), pruned after ``storage.capture_days`` (`prune`).

Redaction is part of the write: `record_captures` takes the `Redactor` and runs every text of a
capture through it (the request body's strings and keys, the answer, the path, the model), so no
caller can store a capture unredacted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from monitor.quality.redact import Redactor
from monitor.store.models import CapturedCaseRow

MAX_REQUEST_BYTES = 128 * 1024
"""The most a redacted request body may take as JSON; a larger one is not stored (the proxy captures
bodies up to 64 KiB; markers can make a body longer than it came)."""
MAX_ANSWER = 64 * 1024  # characters of an answer kept
_CAPS = {"feature": 200, "route": 100, "path": 2000, "model": 200}


@dataclass(frozen=True, slots=True)
class Capture:
    """One request a feature sent and the answer it got, as read from the wire (not yet redacted)."""

    at: datetime
    feature: str
    route: str
    path: str
    model: str | None
    request: dict[str, Any]  # the request body, parsed
    answer: str  # the answer's text, reassembled from the stream
    status: int | None = 200


def _clean(text: str, cap: int | None = None) -> str:
    """Text a database takes: no NUL (PostgreSQL refuses it), no lone surrogate."""
    if cap is not None:
        text = text[:cap * 2]  # before the work below: an oversized text costs no more than a capped one
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text if cap is None else text[:cap]


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        return {_clean(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    return value


def redacted_row(capture: Capture, redactor: Redactor) -> dict[str, Any] | None:
    """The ``captured_case`` row (column values) to store for ``capture``, every text redacted (then
    capped); None when its body nests too deep or is too large to keep."""
    try:
        request = _clean_json(redactor.json(capture.request))
        size = len(json.dumps(request, ensure_ascii=False))
    except (ValueError, TypeError, RecursionError):
        return None
    if size > MAX_REQUEST_BYTES:
        return None
    model = None if capture.model is None else _clean(redactor.text(capture.model), _CAPS["model"])
    return {
        "at": capture.at, "feature": _clean(capture.feature, _CAPS["feature"]),
        "route": _clean(capture.route, _CAPS["route"]), "path": _clean(redactor.text(capture.path), _CAPS["path"]),
        "model": model, "request": request,
        # Redacted before it is cut: a cut through a secret would leave a part the patterns cannot see.
        "answer": _clean(redactor.text(capture.answer), MAX_ANSWER), "status": capture.status}


def record_captures(*, session: Session, captures: Iterable[Capture], redactor: Redactor) -> int:
    """Stores the captures, redacted by ``redactor``; returns how many were stored (one too large or too
    deeply nested to keep is skipped). Does not commit."""
    rows = [row for capture in captures if (row := redacted_row(capture, redactor)) is not None]
    if rows:  # one executemany: the ORM's per-object work would cost more than the redaction
        session.exec(sa.insert(CapturedCaseRow.__table__), params=rows)
    return len(rows)


def captured(*, session: Session, feature: str, limit: int | None = None,
             since: datetime | None = None) -> list[CapturedCaseRow]:
    """A feature's captures, oldest first; with ``limit``, the latest ``limit`` of them."""
    query = select(CapturedCaseRow).where(CapturedCaseRow.feature == feature)
    if since is not None:
        query = query.where(CapturedCaseRow.at >= since)
    query = query.order_by(CapturedCaseRow.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(reversed(session.exec(query).all()))


def counts(*, session: Session, features: Iterable[str] | None = None) -> dict[str, int]:
    """Captures stored per feature (only ``features`` when given; a feature with none is absent)."""
    query = select(CapturedCaseRow.feature, sa.func.count()).group_by(CapturedCaseRow.feature)
    if features is not None:
        query = query.where(CapturedCaseRow.feature.in_(list(features)))
    return {feature: n for feature, n in session.exec(query).all()}
