"""``fusou read --where``: one condition per flag, as a person types it.

    hp >= 40        ship = 'akagi'      won != true       api_no in (1, 2, 3)
    note is null    note is not null    ship in ("akagi", 'it\\'s')

Operators: = (or ==), != (or <>), <, <=, >, >=, in (...), is null, is not null. A value in
quotes is a string (a backslash escapes the next character); unquoted, a number, ``true`` or
``false``, else a word (a string without spaces). Anything left over is refused.
"""

from __future__ import annotations

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
_COLUMN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")
_OP = re.compile(r"\s*(==|!=|<>|<=|>=|=|<|>)")
_NULL_TEST = re.compile(r"\s+is\s+(not\s+)?null\s*$", re.IGNORECASE)
_IN = re.compile(r"\s+in\s*\(", re.IGNORECASE)
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[^\s,()'\"]+")
# Integers a double (a protobuf Value's number) holds exactly.
_EXACT = 2**53


class _Text:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> InputError:
        return InputError(f"--where {self.text!r}: {what}")

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def match(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        m = pattern.match(self.text, self.pos)
        if m:
            self.pos = m.end()
        return m

    def at(self, char: str) -> bool:
        self.skip_spaces()
        if self.text.startswith(char, self.pos):
            self.pos += len(char)
            return True
        return False

    def value(self) -> Any:
        self.skip_spaces()
        if self.pos >= len(self.text):
            raise self.fail("a value is missing")
        quote = self.text[self.pos]
        if quote in "'\"":
            out = []
            i = self.pos + 1
            while i < len(self.text):
                c = self.text[i]
                if c == "\\" and i + 1 < len(self.text):
                    out.append(self.text[i + 1])
                    i += 2
                elif c == quote:
                    self.pos = i + 1
                    return "".join(out)
                else:
                    out.append(c)
                    i += 1
            raise self.fail(f"a string opened with {quote} is not closed")
        word = self.match(_WORD)
        if not word:
            raise self.fail(f"expected a value at {self.text[self.pos :]!r}")
        text = word.group(0)
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        if _NUMBER.fullmatch(text):
            number = float(text)
            if re.fullmatch(r"-?\d+", text) and abs(int(text)) > _EXACT:
                raise self.fail(f"{text} is past the integers a filter holds exactly (2**53)")
            return number
        return text

    def end(self) -> None:
        self.skip_spaces()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.text[self.pos :]!r}")


def _message(value: Any) -> struct_pb2.Value:
    if isinstance(value, bool):
        return struct_pb2.Value(bool_value=value)
    if isinstance(value, float):
        return struct_pb2.Value(number_value=value)
    return struct_pb2.Value(string_value=value)


def parse_where(text: str) -> reader_pb2.Filter:
    """One ``--where`` condition as a Filter; InputError saying what is wrong with it."""
    t = _Text(text)
    column = t.match(_COLUMN)
    if not column:
        raise t.fail("expected a column name first")
    name = column.group(1)
    null_test = _NULL_TEST.match(text, t.pos)
    if null_test:
        op = (
            reader_pb2.FILTER_OP_IS_NOT_NULL if null_test.group(1) else reader_pb2.FILTER_OP_IS_NULL
        )
        return reader_pb2.Filter(column=name, op=op)
    if t.match(_IN):
        values = [t.value()]
        while t.at(","):
            values.append(t.value())
        if not t.at(")"):
            raise t.fail("expected , or ) in the IN list")
        t.end()
        return reader_pb2.Filter(
            column=name, op=reader_pb2.FILTER_OP_IN, values=[_message(v) for v in values]
        )
    op_match = t.match(_OP)
    if not op_match:
        raise t.fail(
            "expected COLUMN OP VALUE (OP: = != < <= > >=), COLUMN in (V, ...), "
            "COLUMN is null or COLUMN is not null"
        )
    value = t.value()
    t.end()
    return reader_pb2.Filter(column=name, op=_OPS[op_match.group(1)], values=[_message(value)])
