"""``fusou read --where``: one condition per flag, as a person types it.

    hp >= 40        ship = 'akagi'      won != true       api_no in (1, 2, 3)
    note is null    note is not null    ship in ("akagi", "kaga")

Operators: = (or ==), != (or <>), <, <=, >, >=, in (...), is null, is not null. A value in
quotes is a string; unquoted, a number, ``true`` or ``false``, else a string.
"""

from __future__ import annotations

import json
import re
from typing import Any

from google.protobuf import struct_pb2

from fusou.api.reader.v1 import reader_pb2
from fusou.cli.input_error import InputError

_OPS = {
    "=": reader_pb2.FILTER_OP_EQ,
    "==": reader_pb2.FILTER_OP_EQ,
    "!=": reader_pb2.FILTER_OP_NE,
    "<>": reader_pb2.FILTER_OP_NE,
    "<": reader_pb2.FILTER_OP_LT,
    "<=": reader_pb2.FILTER_OP_LE,
    ">": reader_pb2.FILTER_OP_GT,
    ">=": reader_pb2.FILTER_OP_GE,
}
_NULL_TEST = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s+is\s+(not\s+)?null\s*$", re.IGNORECASE)
_IN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s+in\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
_COMPARE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(==|!=|<>|<=|>=|=|<|>)\s*(.+?)\s*$", re.DOTALL
)
# One value of an IN list: a quoted string (either quote, backslash escapes) or a bare word.
_ITEM = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,]+?)\s*(?:,|$)""", re.DOTALL)


def _value(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        body = text[1:-1]
        return (
            json.loads('"' + body.replace('"', '\\"').replace("\\'", "'") + '"')
            if "\\" in body
            else body
        )
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    return number


def _message(value: Any) -> struct_pb2.Value:
    if isinstance(value, bool):
        return struct_pb2.Value(bool_value=value)
    if isinstance(value, float):
        return struct_pb2.Value(number_value=value)
    return struct_pb2.Value(string_value=value)


def parse_where(text: str) -> reader_pb2.Filter:
    """One ``--where`` condition as a Filter; InputError saying what is wrong with it."""
    match = _NULL_TEST.match(text)
    if match:
        op = reader_pb2.FILTER_OP_IS_NOT_NULL if match.group(2) else reader_pb2.FILTER_OP_IS_NULL
        return reader_pb2.Filter(column=match.group(1), op=op)
    match = _IN.match(text)
    if match:
        body = match.group(2)
        items = [m.group(1) for m in _ITEM.finditer(body) if m.group(1).strip()]
        if not items:
            raise InputError(f"--where {text!r}: IN needs at least one value")
        return reader_pb2.Filter(
            column=match.group(1),
            op=reader_pb2.FILTER_OP_IN,
            values=[_message(_value(i)) for i in items],
        )
    match = _COMPARE.match(text)
    if match:
        return reader_pb2.Filter(
            column=match.group(1),
            op=_OPS[match.group(2)],
            values=[_message(_value(match.group(3)))],
        )
    raise InputError(
        f"--where {text!r}: expected COLUMN OP VALUE (OP: = != < <= > >=), "
        "COLUMN in (V, ...), COLUMN is null or COLUMN is not null"
    )
