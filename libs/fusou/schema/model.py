"""The logical schema of a table version and its Avro rendering.

Every field but the time field is nullable (an Avro ``["null", T]`` union with default null), so
that adding a field never breaks older rows and older files resolve into newer schemas.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

from fusou.errors import InvalidArgument

# Avro name grammar; field names become Avro field names and Parquet columns.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_FIELD_NAME_LENGTH = 128
# Field names we add to files when rows leave the buffer.
RESERVED_PREFIX = "_fusou_"
AVRO_RECORD_NAME = "fusou_row"
JSON_ATTRIBUTE = "fusou.json"
NULL_ATTRIBUTE = "fusou.null"


class FieldType(enum.Enum):
    """Logical types, ordered so that ``widen`` can promote along LONG -> DOUBLE."""

    NULL = "null"
    BOOLEAN = "boolean"
    LONG = "long"
    DOUBLE = "double"
    STRING = "string"
    BYTES = "bytes"
    JSON = "json"  # nested objects and arrays, stored as canonical JSON text

    @property
    def avro(self) -> str:
        return "string" if self is FieldType.JSON else self.value


def widen(current: FieldType, incoming: FieldType) -> FieldType | None:
    """The narrowest type holding both, or None when they conflict."""
    if current is incoming or incoming is FieldType.NULL:
        return current
    if current is FieldType.NULL:
        return incoming
    if {current, incoming} == {FieldType.LONG, FieldType.DOUBLE}:
        return FieldType.DOUBLE
    return None


def field_name_problem(name: str) -> str | None:
    if not name:
        return "field names must not be empty"
    if len(name) > MAX_FIELD_NAME_LENGTH:
        return f"field names must be at most {MAX_FIELD_NAME_LENGTH} characters"
    if not _FIELD_NAME.fullmatch(name):
        return "field names must match [A-Za-z_][A-Za-z0-9_]* (Avro names)"
    if name.startswith(RESERVED_PREFIX):
        return f"field names starting with {RESERVED_PREFIX!r} are reserved"
    return None


@dataclass(frozen=True)
class SchemaField:
    name: str
    type: FieldType


@dataclass(frozen=True)
class TableSchema:
    """One version of a table's schema. The time field is always the first field."""

    time_field: str
    fields: tuple[SchemaField, ...]
    version: int = 0
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.fields or self.fields[0].name != self.time_field:
            raise ValueError("the time field must be the first field")
        if self.fields[0].type is not FieldType.LONG:
            raise ValueError("the time field must be a long")
        self._index.update({f.name: i for i, f in enumerate(self.fields)})

    @classmethod
    def initial(cls, time_field: str) -> TableSchema:
        return cls(time_field, (SchemaField(time_field, FieldType.LONG),), 0)

    def get(self, name: str) -> SchemaField | None:
        i = self._index.get(name)
        return None if i is None else self.fields[i]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def with_version(self, version: int) -> TableSchema:
        return TableSchema(self.time_field, self.fields, version)

    # -- Avro ---------------------------------------------------------------------------------

    def to_avro(self, extra_fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        avro_fields: list[dict[str, Any]] = []
        for f in self.fields:
            if f.name == self.time_field:
                avro_fields.append({"name": f.name, "type": "long"})
            elif f.type is FieldType.NULL:
                # Not Avro's bare "null": some readers (polars) cannot read it. A nullable
                # string that only ever holds null reads everywhere and widens like the rest.
                avro_fields.append(
                    {
                        "name": f.name,
                        "type": ["null", "string"],
                        "default": None,
                        NULL_ATTRIBUTE: True,
                    }
                )
            else:
                entry: dict[str, Any] = {
                    "name": f.name,
                    "type": ["null", f.type.avro],
                    "default": None,
                }
                if f.type is FieldType.JSON:
                    entry[JSON_ATTRIBUTE] = True
                avro_fields.append(entry)
        avro_fields.extend(extra_fields or [])
        return {
            "type": "record",
            "name": AVRO_RECORD_NAME,
            "fields": avro_fields,
            "fusou.time_field": self.time_field,
        }

    @classmethod
    def from_avro(
        cls, schema: dict[str, Any], version: int = 0, *, max_fields: int | None = None
    ) -> TableSchema:
        """Read a stored or declared Avro record schema back into a logical schema; a
        declared one (``max_fields`` given) is refused, before its fields are read, when it
        has more than that many."""
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise InvalidArgument("avro_schema", "must be an Avro record schema")
        raw_fields = schema.get("fields")
        if not isinstance(raw_fields, list):
            raise InvalidArgument("avro_schema", "the record has no 'fields' list")
        if max_fields is not None and len(raw_fields) > max_fields:
            raise InvalidArgument(
                "avro_schema",
                f"declares {len(raw_fields)} fields, over the limit of {max_fields} "
                "(FUSOU_MAX_FIELDS)",
            )
        time_field = schema.get("fusou.time_field")
        parsed: list[SchemaField] = []
        for raw in raw_fields:
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise InvalidArgument("avro_schema", "every field needs a name")
            name = raw["name"]
            problem = field_name_problem(name)
            if problem is not None:
                raise InvalidArgument(f"avro_schema.fields.{name}", problem)
            parsed.append(SchemaField(name, _logical_from_avro(name, raw)))
        if time_field is None:
            raise InvalidArgument("avro_schema", "the schema does not name its time field")
        ordered = [f for f in parsed if f.name == time_field] + [
            f for f in parsed if f.name != time_field
        ]
        if not ordered or ordered[0].name != time_field:
            raise InvalidArgument("avro_schema", f"the time field {time_field!r} is not a field")
        if ordered[0].type is not FieldType.LONG:
            raise InvalidArgument(
                f"avro_schema.fields.{time_field}", "the time field must be a long"
            )
        return cls(time_field, tuple(ordered), version)


def _logical_from_avro(name: str, raw: dict[str, Any]) -> FieldType:
    t = raw.get("type")
    if isinstance(t, list):
        branches = [b for b in t if b != "null"]
        if len(branches) > 1:
            raise InvalidArgument(
                f"avro_schema.fields.{name}", "unions other than [null, T] are not supported"
            )
        t = branches[0] if branches else "null"
    if isinstance(t, dict):
        t = t.get("type")
    if raw.get(JSON_ATTRIBUTE) and t == "string":
        return FieldType.JSON
    if raw.get(NULL_ATTRIBUTE):
        return FieldType.NULL
    mapping = {
        "null": FieldType.NULL,
        "boolean": FieldType.BOOLEAN,
        "int": FieldType.LONG,
        "long": FieldType.LONG,
        "float": FieldType.DOUBLE,
        "double": FieldType.DOUBLE,
        "string": FieldType.STRING,
        "bytes": FieldType.BYTES,
    }
    if not isinstance(t, str) or t not in mapping:
        raise InvalidArgument(f"avro_schema.fields.{name}", f"unsupported Avro type {t!r}")
    return mapping[t]
