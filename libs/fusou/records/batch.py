"""Turn client input (rows as column lists of Python values, or an Arrow IPC stream) into a
normalized Arrow table.

Both inputs end up as one ``pa.Table`` whose columns use the Arrow type of their logical type
(see ``ARROW_TYPES``), so everything downstream (schema merge, encoding, dedup) has one path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from fusou.errors import FieldViolation, InvalidArgument
from fusou.records.limits import (
    RowLimits,
    RowNames,
    check_arrow_schema,
    check_row_sizes,
    check_times,
)
from fusou.records.string_dictionaries import STRING_DICTIONARY
from fusou.schema.model import FieldType, field_name_problem

ARROW_TYPES: dict[FieldType, pa.DataType] = {
    FieldType.NULL: pa.null(),
    FieldType.BOOLEAN: pa.bool_(),
    FieldType.LONG: pa.int64(),
    FieldType.DOUBLE: pa.float64(),
    FieldType.STRING: pa.string(),
    FieldType.BYTES: pa.binary(),
    FieldType.JSON: pa.string(),
}

# Arrow types that ``_normalize_arrow`` returns unchanged.
_KEPT_TYPES = frozenset({pa.null(), pa.bool_(), pa.int64(), pa.float64(), pa.string(), pa.binary()})

# Doubles in [-2**63, 2**63) convert to int64 exactly; JSON numbers arrive as doubles.
_INT64_LIMIT = 2.0**63

_ROWS = RowNames("rows", indexed=True)


@dataclass(frozen=True)
class Batch:
    table: pa.Table
    types: dict[str, FieldType]

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)


class Nested:
    """Marks a value that came in as a nested object or list (JSON-like Python: dicts, lists,
    str, int, float, bool, None), stored as canonical JSON text."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def canonical_json(value: Any) -> str:
    """Nested values are kept as JSON text with sorted keys so equal values hash equally."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def batch_from_columns(
    columns: dict[str, list[Any]],
    num_rows: int,
    time_field: str,
    limits: RowLimits,
    row_of: Callable[[str], int],
) -> Batch:
    """Rows given as column lists of Python values as a batch, refused (naming ``rows[i]...``)
    past any of ``limits``.

    A column holds one value per row: None for null or absent, a float for a number (JSON
    numbers are doubles; whole ones become LONG), str, bool, or ``Nested``. The caller bounds
    the number of fields and the nesting depth as it builds the columns; ``row_of(name)`` is
    the first row holding field ``name`` (asked only to name the row of a bad field name).
    """
    if num_rows == 0:
        raise InvalidArgument("rows", "contains no rows")
    for i_name in columns:
        problem = field_name_problem(i_name)
        if problem is not None:
            raise InvalidArgument(f"rows[{row_of(i_name)}].{i_name}", problem)
    if time_field not in columns:
        raise InvalidArgument(f"rows[0].{time_field}", "the time field is missing")
    arrays: dict[str, pa.Array] = {}
    types: dict[str, FieldType] = {}
    # The time field first: it is the first field of every schema version.
    for name in [time_field, *(c for c in columns if c != time_field)]:
        is_time = name == time_field
        arr, ftype = _column_from_python(name, columns[name], is_time, limits if is_time else None)
        arrays[name] = arr
        types[name] = ftype
    table = pa.table(arrays)
    check_row_sizes(table, limits, _ROWS)
    return Batch(table, types)


def _first_index(values: list[Any], predicate: Any) -> int:
    for i, v in enumerate(values):
        if predicate(v):
            return i
    return 0


def _column_from_python(
    name: str, values: list[Any], is_time: bool, time_limits: RowLimits | None = None
) -> tuple[pa.Array, FieldType]:
    kinds = {type(v) for v in values}
    if is_time:
        if type(None) in kinds:
            i = _first_index(values, lambda v: v is None)
            raise InvalidArgument(f"rows[{i}].{name}", "the time field is missing or null")
        if kinds != {float}:
            i = _first_index(values, lambda v: type(v) is not float)
            raise InvalidArgument(
                f"rows[{i}].{name}", "the time field must be an integer (epoch milliseconds)"
            )
    kinds.discard(type(None))
    if not kinds:
        return pa.nulls(len(values)), FieldType.NULL
    if len(kinds) > 1:
        first = next(v for v in values if v is not None)
        i = _first_index(values, lambda v: v is not None and type(v) is not type(first))
        raise InvalidArgument(
            f"rows[{i}].{name}",
            f"has type {_describe(values[i])} but earlier rows of this batch have "
            f"{_describe(first)}",
        )
    kind = kinds.pop()
    if kind is float:
        doubles = pa.array(values, pa.float64())
        if time_limits is not None:
            # Before the conversion to integers, which a time past 64 bits would not survive.
            check_times(doubles, time_limits, _ROWS, name)
        as_long = _integral_doubles_to_long(doubles)
        if as_long is not None:
            return as_long, FieldType.LONG
        if is_time:
            i = _first_index(values, lambda v: not float(v).is_integer())
            raise InvalidArgument(
                f"rows[{i}].{name}", "the time field must be an integer (epoch milliseconds)"
            )
        return doubles, FieldType.DOUBLE
    if kind is str:
        return pa.array(values, pa.string()), FieldType.STRING
    if kind is bool:
        return pa.array(values, pa.bool_()), FieldType.BOOLEAN
    texts = [None if v is None else canonical_json(v.value) for v in values]
    return pa.array(texts, pa.string()), FieldType.JSON


def _integral_doubles_to_long(doubles: pa.Array) -> pa.Array | None:
    """The column as int64 when every value is a whole number in range, else None."""
    valid = doubles.drop_null()
    if len(valid) == 0:
        return None
    whole = pc.all(
        pc.and_(
            pc.equal(pc.floor(valid), valid),
            pc.and_(pc.greater_equal(valid, -_INT64_LIMIT), pc.less(valid, _INT64_LIMIT)),
        )
    ).as_py()
    if not whole:
        return None
    return pc.cast(doubles, pa.int64(), safe=False)


def _describe(value: Any) -> str:
    if isinstance(value, Nested):
        return "object" if isinstance(value.value, dict) else "list"
    return {float: "number", str: "string", bool: "boolean"}.get(type(value), "null")


# -- Arrow IPC ---------------------------------------------------------------------------------


def read_arrow_ipc(data: bytes, limits: RowLimits | None = None) -> pa.Table:
    """The stream's rows; with ``limits``, its schema is checked before any batch is read."""
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(data))
        if limits is not None:
            check_arrow_schema(reader.schema, limits, "arrow_ipc")
        return reader.read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
        raise InvalidArgument("arrow_ipc", f"not a readable Arrow IPC stream: {exc}") from None


def batch_from_arrow_ipc(data: bytes, time_field: str, limits: RowLimits | None = None) -> Batch:
    table = read_arrow_ipc(data, limits)
    return batch_from_arrow(table, time_field, field_prefix="arrow_ipc", limits=limits)


def batch_from_arrow(
    table: pa.Table,
    time_field: str,
    field_prefix: str = "arrow_ipc",
    *,
    string_dictionaries: bool = False,
    limits: RowLimits | None = None,
) -> Batch:
    """Columns normalized to FUSOU's types, time field first. With ``string_dictionaries``,
    dictionary-encoded strings are kept so (as ``STRING_DICTIONARY``) instead of decoded.
    With ``limits`` (input from clients), times and row sizes are checked, naming the row in
    the description after ``field_prefix``; the schema's bounds (``check_arrow_schema``) are
    the caller's to check, before it reads the rows."""
    if table.num_rows == 0:
        raise InvalidArgument(field_prefix, "contains no rows")
    names = table.column_names
    violations = []
    seen: set[str] = set()
    for name in names:
        problem = field_name_problem(name)
        if name in seen:
            problem = "the column appears twice"
        seen.add(name)
        if problem is not None:
            violations.append(FieldViolation(f"{field_prefix}.{name}", problem))
    if violations:
        raise InvalidArgument.many(violations)
    if time_field not in seen:
        raise InvalidArgument(f"{field_prefix}.{time_field}", "the time field is missing")
    rows = RowNames(field_prefix, indexed=False)
    arrays: dict[str, pa.Array] = {}
    types: dict[str, FieldType] = {}
    for name in [time_field, *(c for c in names if c != time_field)]:
        chunked = table.column(name)
        # combine_chunks copies even a single chunk: skip it there (a Parquet row group, say).
        column = chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()
        arr, ftype = _normalize_arrow(
            f"{field_prefix}.{name}", column, name == time_field, string_dictionaries
        )
        if limits is not None and name == time_field:
            check_times(arr, limits, rows, name)
        arrays[name] = arr
        types[name] = ftype
    normalized = pa.table(arrays)
    if limits is not None:
        check_row_sizes(normalized, limits, rows)
    return Batch(normalized, types)


def is_normalized(table: pa.Table, time_field: str, *, string_dictionaries: bool = False) -> bool:
    """Whether ``batch_from_arrow`` would keep every column of ``table`` as it is, names aside:
    a caller whose names were checked before (a stored raw fragment) may then skip it."""
    kept = _KEPT_TYPES | ({STRING_DICTIONARY} if string_dictionaries else set())
    if any(f.type not in kept for f in table.schema):
        return False
    try:
        time = table.column(time_field)
    except KeyError:
        return False
    return bool(time.type == pa.int64() and time.null_count == 0)


def _timestamp_to_ms(label: str, arr: pa.Array) -> pa.Array:
    # Finer units are truncated to whole milliseconds, the unit of every stored time; seconds
    # are multiplied, which must not wrap around.
    target = pa.timestamp("ms", tz=arr.type.tz)
    try:
        as_ms = pc.cast(arr, target, safe=arr.type.unit == "s")
    except pa.ArrowInvalid:
        raise InvalidArgument(label, "has times outside 64-bit epoch milliseconds") from None
    return pc.cast(as_ms, pa.int64())


def _nested_to_json(label: str, arr: pa.Array) -> pa.Array:
    try:
        texts = [None if v is None else canonical_json(v) for v in arr.to_pylist()]
    except (ValueError, OverflowError, TypeError, pa.ArrowException) as exc:
        # Nested values Python or JSON cannot hold: a time outside datetime's years, a
        # decimal, a value nested past orjson's recursion limit.
        raise InvalidArgument(
            label, f"holds a value that cannot be stored as JSON: {exc}"
        ) from None
    return pa.array(texts, pa.string())


def _normalize_arrow(
    label: str, arr: pa.Array, is_time: bool, string_dictionaries: bool = False
) -> tuple[pa.Array, FieldType]:
    t = arr.type
    if string_dictionaries and t == STRING_DICTIONARY and not is_time:
        return arr, FieldType.STRING
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if is_time:
        if arr.null_count:
            raise InvalidArgument(label, "the time field must not be null")
        if pa.types.is_timestamp(t):
            return _timestamp_to_ms(label, arr), FieldType.LONG
        if not pa.types.is_integer(t):
            raise InvalidArgument(label, "the time field must be an integer (epoch milliseconds)")
    if pa.types.is_null(t):
        return arr, FieldType.NULL
    if pa.types.is_boolean(t):
        return arr, FieldType.BOOLEAN
    if pa.types.is_integer(t):
        try:
            return pc.cast(arr, pa.int64()), FieldType.LONG
        except pa.ArrowInvalid:
            raise InvalidArgument(label, "has values outside the 64-bit signed range") from None
    if pa.types.is_floating(t):
        return pc.cast(arr, pa.float64()), FieldType.DOUBLE
    if pa.types.is_timestamp(t):
        return _timestamp_to_ms(label, arr), FieldType.LONG
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pc.cast(arr, pa.string()), FieldType.STRING
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    ):
        return pc.cast(arr, pa.binary()), FieldType.BYTES
    if pa.types.is_nested(t):
        return _nested_to_json(label, arr), FieldType.JSON
    raise InvalidArgument(label, f"unsupported Arrow type {t}")


def conform(batch: Batch, target: dict[str, FieldType], order: list[str]) -> pa.Table:
    """Cast the batch's columns to the target version's types, adding null columns it lacks."""
    n = batch.num_rows
    columns: list[pa.Array] = []
    for name in order:
        ftype = target[name]
        if name in batch.types:
            arr = batch.table.column(name).combine_chunks()
            if batch.types[name] is not ftype:
                arr = pc.cast(arr, ARROW_TYPES[ftype])
        else:
            arr = pa.nulls(n, ARROW_TYPES[ftype])
        columns.append(arr)
    return pa.Table.from_arrays(columns, names=order)
