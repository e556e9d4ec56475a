"""The monitor's log lines: JSON that journald, Loki and Vector can parse, readable text, and no secret in either."""

from __future__ import annotations

import io
import json
import logging
import math
import secrets
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import logsetup
from monitor.alerts.redact import MASK, protect

SECRET = "sk-live-" + secrets.token_hex(16)
HOOK = f"https://hooks.example.com/services/T0/B0/{secrets.token_hex(12)}"
protect([SECRET, HOOK])


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    """A stream the log goes to, configured as JSON; the root logger restored afterwards."""
    root = logging.getLogger()
    level, handlers, hook = root.level, list(root.handlers), sys.excepthook
    stream = io.StringIO()
    logsetup.configure("debug", "json", stream)
    try:
        yield stream, logging.getLogger("monitor.test")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        sys.excepthook = hook
        logging.captureWarnings(False)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_message_and_every_extra_field(capture):
    stream, log = capture
    log.info("openai-gpt@eu: up -> down", extra={
        "event": "state_change", "target": "openai-gpt", "region": "eu", "from_state": "up", "to_state": "down",
        "incident_id": 7, "cause": {"error_kind": "server_error", "failures": 3}, "delay_s": 1.5})
    log.warning("second")
    first, second = lines(stream)
    assert first["msg"] == "openai-gpt@eu: up -> down" and first["level"] == "info"
    assert first["logger"] == "monitor.test" and second["level"] == "warning"
    assert first["cause"] == {"error_kind": "server_error", "failures": 3} and first["incident_id"] == 7
    assert (first["event"], first["target"], first["region"], first["from_state"], first["to_state"], first["delay_s"]
            ) == ("state_change", "openai-gpt", "eu", "up", "down", 1.5)
    ts = datetime.fromisoformat(first["ts"].replace("Z", "+00:00"))
    assert first["ts"].endswith("Z") and abs((datetime.now(UTC) - ts).total_seconds()) < 60


def test_a_registered_secret_is_masked_in_the_message_the_fields_and_the_traceback(capture):
    stream, log = capture
    log.error("posting to %s failed", HOOK, extra={"url": HOOK, "headers": {"authorization": f"Bearer {SECRET}"},
                                                  SECRET: "a key named by the secret"})
    try:
        raise RuntimeError(f"refused {SECRET}")
    except RuntimeError:
        log.exception("channel raised", extra={"channel": "oncall"})
    out = stream.getvalue()
    assert SECRET not in out and HOOK not in out and HOOK.split("://", 1)[1] not in out
    first, second = lines(stream)
    assert first["msg"] == f"posting to {MASK} failed" and first["url"] == MASK
    assert first["headers"] == {"authorization": f"Bearer {MASK}"} and first[MASK] == "a key named by the secret"
    assert "RuntimeError: refused [redacted]" in second["exc"] and "Traceback" in second["exc"]
    assert second["channel"] == "oncall"


def test_a_secret_registered_after_the_record_was_made_is_masked_too():
    late = "late-" + secrets.token_hex(12)
    record = logging.LogRecord("monitor.x", logging.INFO, __file__, 1, "key %s", (late,), None)
    record.value = late
    protect([late])
    for formatter in (logsetup.JsonFormatter(), logsetup.TextFormatter()):
        assert late not in formatter.format(record)


class Unprintable:
    def __str__(self) -> str:
        raise ValueError("no")


def test_values_json_cannot_hold_are_written_as_text_and_nothing_raises(capture):
    stream, log = capture
    at = datetime(2026, 12, 7, 8, 30, tzinfo=UTC)
    log.info("odd values", extra={"at": at, "nan": math.nan, "raw": b"\x00\xff", "obj": Unprintable(),
                                  "deep": [[[[[[[["eight"]]]]]]]], "ids": {3, 4}, "bad": "\ud800"})
    # A broken format call still gives a line (formatted directly: pytest's own capture would raise).
    broken = logging.LogRecord("monitor.x", logging.INFO, __file__, 1, "%d targets", ("not a number",), None)
    stream.write(logsetup.JsonFormatter().format(broken) + "\n")
    first, second = lines(stream)
    assert first["at"] == str(at) and first["nan"] == "nan" and first["obj"] == "<unprintable Unprintable>"
    assert first["raw"] == str(b"\x00\xff") and sorted(first["ids"]) == [3, 4] and "eight" in str(first["deep"])
    assert "log arguments did not fit" in second["msg"]


def test_text_lines_are_one_readable_line_with_the_fields(capture):
    del capture  # only for the restored root logger
    stream = io.StringIO()
    logsetup.configure("info", "text", stream)
    log = logging.getLogger("monitor.alerts.dispatch")
    log.debug("not shown at info")
    log.info("alert sent to %r", "oncall", extra={"channel": "oncall", "title": "openai: gpt is DOWN", "attempt": 1,
                                                   "url": HOOK})
    (line,) = stream.getvalue().splitlines()
    assert " INFO    monitor.alerts.dispatch: alert sent to 'oncall'  " in line
    assert 'channel=oncall title="openai: gpt is DOWN" attempt=1 url=[redacted]' in line
    assert line[:24].endswith("Z") and HOOK not in line


def test_configure_replaces_its_own_handler_and_quietens_chatty_libraries(capture):
    del capture  # only for the restored root logger
    again = io.StringIO()
    logsetup.configure("info", "json", again)
    assert sum(h.get_name() == "airisk" for h in logging.getLogger().handlers) == 1
    logging.getLogger("httpx").info("HTTP Request: POST https://api.example.com/v1 200")
    logging.getLogger("monitor.x").info("kept")
    assert [r["msg"] for r in lines(again)] == ["kept"]
    logsetup.configure("debug", "json", again)
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG
    with pytest.raises(ValueError, match="log level must be one of debug, info, warning, error"):
        logsetup.configure("verbose", "json")
    with pytest.raises(ValueError, match="log format must be one of text, json"):
        logsetup.configure("info", "yaml")


# Whatever a caller logs: one line, valid JSON, and no registered secret (hypothesis).
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(), st.datetimes(),
                    st.just(SECRET), st.just(HOOK))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8) | st.just(SECRET), inner,
                                                                       max_size=4)), max_leaves=12)
messages = st.lists(st.one_of(st.text(), st.just(SECRET), st.just(HOOK), st.just("%s"), st.just(SECRET[:6])),
                    max_size=6).map("".join)
keys = st.text(min_size=1, max_size=12).filter(lambda k: k not in logsetup._RESERVED and not k.startswith("_"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=messages, extra=st.dictionaries(keys | st.just(SECRET), values, max_size=5),
       args=st.lists(values, max_size=2), level=st.sampled_from([logging.DEBUG, logging.INFO, logging.ERROR]),
       with_exc=st.booleans())
def test_any_record_is_one_valid_json_line_without_a_secret(message, extra, args, level, with_exc):
    exc_info = None
    if with_exc:
        try:
            raise ValueError(message)
        except ValueError as exc:
            exc_info = (type(exc), exc, exc.__traceback__)
    record = logging.getLogRecordFactory()("monitor.fuzz", level, __file__, 1, message, tuple(args), exc_info)
    record.__dict__.update(extra)
    for formatter in (logsetup.JsonFormatter(), logsetup.TextFormatter()):
        line = formatter.format(record)
        assert SECRET not in line and HOOK not in line
        if isinstance(formatter, logsetup.JsonFormatter):
            assert "\n" not in line
            parsed = json.loads(line)
            assert {"ts", "level", "logger", "msg"} <= set(parsed)
            assert (parsed["level"], parsed["logger"]) == (logging.getLevelName(level).lower(), "monitor.fuzz")


# --- What the dispatcher says: every alert sent, retried or given up, with its fields, never its URL. ---


@pytest.fixture
def db(tmp_path):
    from tests.monitor.test_alerts_harness import alert_database

    with alert_database("sqlite", tmp_path) as database:
        yield database


async def test_the_dispatcher_logs_each_alert_sent_retried_and_given_up(db, receiver, capture):
    import httpx

    from monitor.alerts import Dispatcher
    from monitor.config.alerts import AlertsConfig
    from tests.monitor.test_alerts_dispatch import down, enqueue_for

    stream, _ = capture
    token = secrets.token_hex(12)
    config = AlertsConfig.model_validate({
        "channels": [{"name": "hook", "type": "webhook", "url_env": "HOOK_URL"}],
        "rules": [{"rule": "down", "channels": ["hook"]}],
        "retry": {"first_delay": "2s", "max_delay": "2s", "max_attempts": 2}})
    environ = {"HOOK_URL": f"{receiver.url}/hook/{token}"}
    enqueue_for(db, config, [down("gpt-4o", 1, datetime.now(UTC))])
    start = datetime.now(UTC)  # the row is due from when it was queued
    receiver.fail_next.extend([503, 503])
    async with httpx.AsyncClient(trust_env=False) as http:
        dispatcher = Dispatcher(db.engine(), config, http, environ=environ)
        await dispatcher.run_once(start)
        await dispatcher.run_once(start + timedelta(seconds=3))  # the second try fails: given up (max_attempts 2)
        enqueue_for(db, config, [down("gpt-4o-mini", 2, start)])
        assert await dispatcher.run_once(start + timedelta(seconds=4)) == 1
    out = stream.getvalue()
    assert token not in out
    said = [r for r in lines(stream) if r.get("event", "").startswith("alert_")]
    assert [(r["event"], r["level"], r["attempt"]) for r in said] == [
        ("alert_retry", "warning", 1), ("alert_given_up", "error", 2), ("alert_sent", "info", 1)]
    retry, dead, sent = said
    assert retry["delay_s"] == 2 and retry["channel"] == "hook" and retry["rule"] == "down"
    assert retry["reason"].startswith("HTTP 503") and "[redacted]" in retry["reason"]
    assert "next try in 2s" in retry["msg"] and "openai: gpt-4o is DOWN" in retry["msg"]
    assert dead["why"] == "after 2 tries (retry.max_attempts)" and dead["reason"].startswith("HTTP 503")
    assert (sent["title"], sent["event_key"], sent["severity"]) == (
        "openai: gpt-4o-mini is DOWN", "down:openai:2:hook", "critical")
    assert sent["msg"] == "alert sent to 'hook': openai: gpt-4o-mini is DOWN (try 1)"


def test_a_crash_and_a_warning_are_json_lines_too(tmp_path):
    import subprocess

    script = tmp_path / "crash.py"
    script.write_text(f"""
import warnings
from monitor import logsetup
from monitor.alerts.redact import protect
protect([{SECRET!r}])
logsetup.configure("info", "json")
warnings.warn("old option")
raise RuntimeError("token " + {SECRET!r})
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and SECRET not in done.stderr
    warned, crashed = [json.loads(line) for line in done.stderr.splitlines()]
    assert warned["logger"] == "py.warnings" and "old option" in warned["msg"]
    assert (crashed["level"], crashed["event"], crashed["msg"]) == ("critical", "crash", "crashed: RuntimeError")
    assert crashed["exc"].endswith("RuntimeError: token [redacted]")
