"""The log formats: JSON lines with the call's fields and ``extra=`` fields, text lines with
them appended, and which request ids a client may choose."""

from __future__ import annotations

import json
import logging
import sys

from fusou import logs
from tests.support.logs import configured_logs


def record(message: str = "hello %s", **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("fusou.test")
    made = logger.makeRecord("fusou.test", logging.WARNING, __file__, 1, message, ("you",), None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_json_lines_hold_the_message_the_call_and_extra_fields() -> None:
    token = logs.CURRENT_CALL.set(logs.CallInfo("rid-1", "/a.B/C", "ops"))
    try:
        r = record(rows=3)
        logs.CallFields().filter(r)
        out = json.loads(logs.JsonFormatter().format(r))
    finally:
        logs.CURRENT_CALL.reset(token)
    assert out["message"] == "hello you" and out["level"] == "WARNING"
    assert out["logger"] == "fusou.test" and out["time"].endswith("+00:00")
    assert (out["request_id"], out["method"], out["principal"], out["rows"]) == (
        "rid-1",
        "/a.B/C",
        "ops",
        3,
    )


def test_outside_a_call_there_are_no_call_fields() -> None:
    r = record()
    logs.CallFields().filter(r)
    out = json.loads(logs.JsonFormatter().format(r))
    assert "request_id" not in out and "method" not in out


def test_exceptions_are_one_json_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logger = logging.getLogger("fusou.test")
        r = logger.makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = logs.JsonFormatter().format(r)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_text_lines_append_the_fields() -> None:
    line = logs.TextFormatter().format(record(request_id="rid-2"))
    assert line.endswith("fusou.test: hello you [request_id=rid-2]")


def test_configure_chooses_the_format() -> None:
    # A StringIO is not a terminal: auto means JSON.
    with configured_logs("info", "auto") as stream:
        logging.getLogger("fusou.test").info("one")
        logging.getLogger("fusou.test").debug("hidden")
    assert [json.loads(x)["message"] for x in stream.getvalue().splitlines()] == ["one"]
    with configured_logs("info", "text") as stream:
        logging.getLogger("fusou.test").info("two")
    assert stream.getvalue().rstrip().endswith("INFO fusou.test: two")


def test_request_ids() -> None:
    assert logs.request_id_of([("x-request-id", "abc-1.2:3_4")]) == "abc-1.2:3_4"
    for bad in ("", "a b", "x" * 129, "a\nb", "é"):
        made = logs.request_id_of([("x-request-id", bad)])
        assert made != bad and len(made) == 32
    assert len(logs.request_id_of(None)) == 32
    assert logs.request_id_of([("x-request-id", b"bytes-id")]) == "bytes-id"
