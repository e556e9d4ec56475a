"""What the headless monitor says, and in which shape: readable text lines, or one JSON object a line.

The monitor's modules log with stdlib `logging` and put what a machine should read in ``extra=``
(``event``, ``target``, ``region``, ``from_state``, ``to_state``, ``incident_id``, ``cause``,
``channel``, ``attempt``, ``delay_s``, ``provider``, ...). `configure` sends every record to one
stream, as text (time, level, logger, message, then the fields as ``key=value``) or as JSON for
journald, Loki or Vector (``ts``, ``level``, ``logger``, ``msg``, every extra field, ``exc``).

Secrets are masked here too (`monitor.alerts.redact`): the record factory it installs masks the
message and the traceback when a record is made, but ``extra`` fields are set on the record after
that, and a secret registered later would slip through, so both formatters redact every string they
write, keys and values alike. A formatter never raises: a value JSON cannot hold is written as its
``str``, and a record that cannot be formatted at all becomes a line saying so.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from datetime import UTC, datetime
from typing import IO, Any

from monitor.alerts.redact import MASK, redact

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
# Libraries that say routine things at INFO (httpx: each probe's URL; apscheduler: every job run, two lines
# per probe; alembic: its plugins at each start): only their warnings, unless debugging.
CHATTY = ("httpx", "httpcore", "hpack", "urllib3", "asyncio", "apprise", "apscheduler", "alembic.runtime.plugins")
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
_MAX_DEPTH = 6


def configure(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """Sends every log record at ``level`` or above to ``stream`` (default: stderr) as ``fmt``.

    Replaces the handler an earlier call installed (so calling it twice does not print twice) and
    leaves other handlers alone. Returns the handler. Raises ValueError for an unknown level or format.
    """
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.set_name("airisk")
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "airisk"]:
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.NOTSET if numeric <= logging.DEBUG else logging.WARNING)
    # Python's warnings and a crash's traceback go through the same formatter: one JSON object (not
    # a dozen bare lines a log pipeline cannot join), and masked like every other line.
    logging.captureWarnings(True)
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _log_crash
    return handler


def _log_crash(kind: type[BaseException], exc: BaseException, tb) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("airisk").critical("crashed: %s", kind.__name__, exc_info=(kind, exc, tb),
                                         extra={"event": "crash"})


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record carries: what was passed in ``extra=``."""
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


def timestamp(record: logging.LogRecord) -> str:
    """RFC 3339 in UTC, to the millisecond: ``2026-12-07T08:30:00.123Z``."""
    at = datetime.fromtimestamp(record.created, UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clean(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON can hold it, every string redacted: containers walked (keys too), finite
    numbers kept unless they spell a secret, anything else as its redacted ``str``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value if redact(str(value)) == str(value) else MASK
    if isinstance(value, str):
        return redact(value)
    if depth < _MAX_DEPTH:
        if isinstance(value, dict):
            return {redact(str(k)): clean(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [clean(v, depth + 1) for v in value]
    return redact(_str(value))


def _str(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__: say what it was, not why
        return f"<unprintable {type(value).__name__}>"


def _message(record: logging.LogRecord) -> str:
    try:
        return redact(record.getMessage())
    except Exception:  # bad arguments for the format string: keep what there is
        return redact(f"{_str(record.msg)} (log arguments did not fit: {_str(record.args)})")


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[1] is not None:
        # The record factory may have formatted (and masked) it already; mask again for late secrets.
        return redact(record.exc_text or formatter.formatException(record.exc_info))
    return redact(record.exc_text) if record.exc_text else None


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts``, ``level``, ``logger``, ``msg``, the extra fields, ``exc``, ``stack``."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            out: dict[str, Any] = {"ts": timestamp(record), "level": record.levelname.lower(),
                                   "logger": record.name, "msg": _message(record)}
            for key, value in fields(record).items():
                out.setdefault(redact(key), clean(value))
            if (exc := _exception(self, record)) is not None:
                out["exc"] = exc
            if record.stack_info:
                out["stack"] = redact(record.stack_info)
            return _utf8(json.dumps(out, ensure_ascii=False, allow_nan=False))
        except Exception as exc:  # never lose the line, nor raise into the code that logged
            return json.dumps({"ts": timestamp(record), "level": "error", "logger": "airisk.logsetup",
                               "msg": f"a log record from {record.name} could not be formatted "
                                      f"({type(exc).__name__})"})


class TextFormatter(logging.Formatter):
    """``2026-12-07T08:30:00.123Z INFO    monitor.service: message  key=value key="a value"``."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            head = f"{timestamp(record)} {record.levelname:<7} {record.name}: {_message(record)}"
            extra = " ".join(f"{redact(k)}={_text_value(clean(v))}" for k, v in fields(record).items())
            line = f"{head}  {extra}" if extra else head
            if (exc := _exception(self, record)) is not None:
                line += "\n" + exc
            if record.stack_info:
                line += "\n" + redact(record.stack_info)
            return _utf8(line)
        except Exception as exc:
            return f"{timestamp(record)} ERROR   airisk.logsetup: a log record from {record.name} could not be " \
                   f"formatted ({type(exc).__name__})"


def _utf8(line: str) -> str:
    # A lone surrogate (from a badly decoded body) would make the stream's write fail, and the line with it.
    return line if line.isascii() else line.encode("utf-8", "replace").decode("utf-8")


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if text and not any(c.isspace() or c in '"=' for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)
