"""Logging reconfigured for one test and put back afterwards."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fusou import logs


@contextmanager
def configured_logs(level: str, fmt: str) -> Iterator[io.StringIO]:
    """``fusou.logs.configure`` into a fresh stream; the root logger's handlers and level are
    restored on exit."""
    root = logging.getLogger()
    handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    logs.configure(level, fmt, stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
