"""Filters on a read: a conjunction of simple conditions on columns, checked against the table's
schema, evaluated on the merged rows (after the dedup rule, so that a filter picks among the
rows a read would return and never brings back a superseded version of a key).

Null values meet no condition but IS_NULL, as in SQL.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from fusou.errors import FieldViolation
from fusou.schema.model import FieldType, TableSchema

# Most filters one read takes, and most values one IN lists.
MAX_FILTERS = 64
MAX_IN_VALUES = 1000


class Op(enum.Enum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "in"
    IS_NULL = "is null"
    IS_NOT_NULL = "is not null"


_COMPARE = {
    Op.EQ: pc.equal,
    Op.NE: pc.not_equal,
    Op.LT: pc.less,
    Op.LE: pc.less_equal,
    Op.GT: pc.greater,
    Op.GE: pc.greater_equal,
}
_ORDERED = {Op.LT, Op.LE, Op.GT, Op.GE}
_NULL_TESTS = {Op.IS_NULL, Op.IS_NOT_NULL}
_NUMERIC = {FieldType.LONG, FieldType.DOUBLE}
_TEXT = {FieldType.STRING, FieldType.JSON, FieldType.NULL}


@dataclass(frozen=True)
class Filter:
    column: str
    op: Op
    values: tuple[Any, ...] = ()

    def __str__(self) -> str:
        if self.op in _NULL_TESTS:
            return f"{self.column} {self.op.value}"
        if self.op is Op.IN:
            return f"{self.column} in ({', '.join(map(repr, self.values))})"
        operand = ", ".join(map(repr, self.values)) or "?"
        return f"{self.column} {self.op.value} {operand}"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _value_problem(ftype: FieldType, op: Op, value: Any) -> str | None:
    if ftype in _NUMERIC:
        return None if _is_number(value) else "must be a finite number for this column"
    if ftype in _TEXT:
        return None if isinstance(value, str) else "must be a string for this column"
    if ftype is FieldType.BOOLEAN:
        if op in _ORDERED:
            return "a boolean column takes =, !=, IN and the null tests"
        return None if isinstance(value, bool) else "must be true or false for this column"
    return "a bytes column takes IS_NULL and IS_NOT_NULL only"


def filter_violations(filters: Sequence[Filter], schema: TableSchema) -> list[FieldViolation]:
    """What is wrong with each filter for a table of ``schema``, named ``filters[i]...``."""
    if len(filters) > MAX_FILTERS:
        return [FieldViolation("filters", f"at most {MAX_FILTERS} filters")]
    out: list[FieldViolation] = []
    for i, f in enumerate(filters):
        field = schema.get(f.column)
        if field is None:
            out.append(FieldViolation(f"filters[{i}].column", f"unknown column {f.column!r}"))
            continue
        if f.op in _NULL_TESTS:
            if f.values:
                out.append(FieldViolation(f"filters[{i}].values", f"{f.op.name} takes no value"))
            continue
        if f.op is Op.IN:
            if not 1 <= len(f.values) <= MAX_IN_VALUES:
                out.append(
                    FieldViolation(f"filters[{i}].values", f"IN takes 1 to {MAX_IN_VALUES} values")
                )
                continue
        elif len(f.values) != 1:
            out.append(FieldViolation(f"filters[{i}].values", f"{f.op.name} takes one value"))
            continue
        for j, value in enumerate(f.values):
            problem = _value_problem(field.type, f.op, value)
            if problem is not None:
                out.append(FieldViolation(f"filters[{i}].values[{j}]", problem))
                break
    return out


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _as_doubles(column: pa.ChunkedArray) -> pa.ChunkedArray:
    # Only for fractional operands, which are below 2**53 in magnitude: longs past 2**53 round
    # (as when a column widens to double) without crossing one, so their order is kept.
    return pc.cast(column, pa.float64(), safe=False)


# Which longs meet "long op v" for an integral v beyond the longs (v > 0: above them all).
_BEYOND_LONGS = {
    Op.EQ: (False, False),
    Op.NE: (True, True),
    Op.LT: (True, False),
    Op.LE: (True, False),
    Op.GT: (False, True),
    Op.GE: (False, True),
}


def _beyond_longs(column: pa.ChunkedArray, op: Op, value: float) -> pa.ChunkedArray:
    """The condition on a long column for an integral operand no long reaches: every non-null
    row, or none (a null meets nothing)."""
    above, below = _BEYOND_LONGS[op]
    holds = above if value > 0 else below
    valid = pc.is_valid(column)
    return valid if holds else pc.and_(valid, pa.scalar(False))


def _fits_long(value: float) -> bool:
    return value.is_integer() and -(2**63) <= value < 2**63


def _operand(column: pa.ChunkedArray, value: Any) -> tuple[pa.ChunkedArray, pa.Scalar]:
    """The column and the value in one type: a long column meets a whole number as a long, a
    fractional one as doubles (``_condition`` decides whole numbers beyond the longs), and a
    column only ever null meets anything as a null string."""
    if pa.types.is_integer(column.type) and isinstance(value, float):
        if _fits_long(value):
            return column, pa.scalar(int(value), column.type)
        return _as_doubles(column), pa.scalar(value, pa.float64())
    if pa.types.is_floating(column.type):
        return column, pa.scalar(float(value), column.type)
    return column, pa.scalar(value, column.type)


def _condition(table: pa.Table, f: Filter) -> pa.ChunkedArray:
    column = _plain(table.column(f.column))
    if f.op is Op.IS_NULL:
        return pc.is_null(column)
    if f.op is Op.IS_NOT_NULL:
        return pc.is_valid(column)
    if f.op is Op.IN:
        listed: Sequence[Any] = f.values
        if pa.types.is_integer(column.type):
            # No long equals a fractional number, nor one beyond the longs.
            listed = [int(v) for v in f.values if not isinstance(v, float) or _fits_long(v)]
        values = pa.array(listed, column.type)
        # is_in matches no null (skip_nulls): a null meets no IN.
        return pc.is_in(column, value_set=values, skip_nulls=True)
    value = f.values[0]
    if (
        pa.types.is_integer(column.type)
        and isinstance(value, float)
        and value.is_integer()
        and not _fits_long(value)
    ):
        return _beyond_longs(column, f.op, value)
    column, operand = _operand(column, value)
    return _COMPARE[f.op](column, operand)


def filter_mask(table: pa.Table, filters: Sequence[Filter]) -> pa.ChunkedArray:
    """Per row of ``table``, whether it meets every filter (null where a null was compared:
    such a row meets none)."""
    assert filters
    mask = None
    for f in filters:
        cond = _condition(table, f)
        mask = cond if mask is None else pc.and_kleene(mask, cond)
    assert mask is not None
    return mask


def apply_filters(table: pa.Table, filters: Sequence[Filter]) -> pa.Table:
    """The rows of ``table`` that meet every filter, in their order."""
    if not filters or not table.num_rows:
        return table
    # A null in the mask (a null compared) drops the row, as false does.
    return table.filter(filter_mask(table, filters), null_selection_behavior="drop")
