"""Ingest's ``rows`` (protobuf Structs) as a batch: the Struct half of ``fusou.records.batch``.

Reading the Structs is the hot loop of JSON ingest, so it happens here, once per value, and
hands the domain plain column lists (``batch_from_columns``) that it types and checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import struct_pb2

from fusou.errors import InvalidArgument
from fusou.records.batch import Batch, Nested, batch_from_columns
from fusou.records.limits import RowLimits

# Doubles in [-2**63, 2**63) convert to int64 exactly; JSON numbers arrive as doubles.
_INT64_LIMIT = 2.0**63

_SCALAR_KINDS = frozenset({"number_value", "string_value", "bool_value"})
_NESTED_KINDS = frozenset({"struct_value", "list_value"})


class _TooDeep(Exception):
    """A nested value went past the depth limit; caught where its row and field are known."""


class _UndefinedNull(Exception):
    """A null whose NullValue number the enum does not define (proto3 keeps such numbers)."""


def _undefined_null(number: int) -> str:
    # Ingest's rows bypass the enum check at the door (a worker parses them), so it is here.
    return f"{number} is not a value of google.protobuf.NullValue (NULL_VALUE = 0)"


def _value_to_python(value: struct_pb2.Value, levels: int) -> Any:
    """A nested value as Python; whole numbers become ints, as JSON text would have them.
    ``levels``: how many more levels of objects and lists may open."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and abs(number) < _INT64_LIMIT:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        if levels == 0:
            raise _TooDeep
        return {k: _value_to_python(v, levels - 1) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        if levels == 0:
            raise _TooDeep
        return [_value_to_python(v, levels - 1) for v in value.list_value.values]
    if kind == "null_value" and value.null_value:
        raise _UndefinedNull(value.null_value)
    return None


def batch_from_structs(
    rows: Sequence[struct_pb2.Struct], time_field: str, limits: RowLimits | None = None
) -> Batch:
    """Struct rows as a batch, refused (naming ``rows[i]...``) past any of ``limits``."""
    limits = limits or RowLimits()

    def row_of(name: str) -> int:
        return next(i for i, r in enumerate(rows) if name in r.fields)

    return batch_from_columns(_struct_columns(rows, limits), len(rows), time_field, limits, row_of)


def _struct_columns(rows: Sequence[struct_pb2.Struct], limits: RowLimits) -> dict[str, list[Any]]:
    """Column lists of Python values (None for null or absent, Nested for objects/lists).

    The hot loop of JSON ingest: upb field access dominates, so each value is touched once.
    (Measured alternatives, C-level map() over keys and zip() transposition, were slower.)
    A row with too many fields is refused before any of its values is touched, and the batch's
    columns are bounded as they appear, so neither a wide row nor many rows of different fields
    cost more than the limit allows.
    """
    n = len(rows)
    columns: dict[str, list[Any]] = {}
    scalar = _SCALAR_KINDS
    nested = _NESTED_KINDS
    max_fields = limits.max_fields
    max_depth = limits.max_depth
    for i, row in enumerate(rows):
        fields = row.fields
        if len(fields) > max_fields:
            raise InvalidArgument(f"rows[{i}]", limits.too_many_fields(len(fields)))
        for name in fields:
            value = fields[name]
            kind = value.WhichOneof("kind")
            if kind in scalar:
                item = getattr(value, kind)
            elif kind in nested:
                try:
                    item = Nested(_value_to_python(value, max_depth))
                except _TooDeep:
                    raise InvalidArgument(f"rows[{i}].{name}", limits.too_deep()) from None
                except _UndefinedNull as exc:
                    raise InvalidArgument(
                        f"rows[{i}].{name}", _undefined_null(exc.args[0])
                    ) from None
            else:
                if kind == "null_value" and value.null_value:
                    raise InvalidArgument(f"rows[{i}].{name}", _undefined_null(value.null_value))
                item = None  # null: the field still belongs to the schema
            col = columns.get(name)
            if col is None:
                if len(columns) >= max_fields:
                    raise InvalidArgument(
                        f"rows[{i}].{name}",
                        f"is field {len(columns) + 1} of this batch, over the limit of "
                        f"{max_fields} fields (FUSOU_MAX_FIELDS)",
                    )
                col = columns[name] = [None] * n
            col[i] = item
    return columns
