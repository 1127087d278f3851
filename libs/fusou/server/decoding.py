"""Request decoding that reports bad bytes as INVALID_ARGUMENT naming the field.

grpc answers a request it cannot deserialize with a generic error; we deserialize in the
handler instead so that a malformed message (say, a ``rows`` entry that is not an object)
is rejected like any other bad input, naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import message as pb_message
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.internal import decoder

from fusou.errors import InvalidArgument

# protobuf has no public wire-format reader; its internal varint decoder is stable.
_read_varint: Callable[[bytes, int], tuple[int, int]] = getattr(decoder, "_DecodeVarint")  # noqa: B009


class Undecodable:
    """Stands in for a request whose bytes do not parse."""

    def __init__(self, error: InvalidArgument) -> None:
        self.error = error


def lenient_deserializer(
    parse: Callable[[bytes], Any], message_class: Any
) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except (pb_message.DecodeError, ValueError, RuntimeError) as exc:
            return Undecodable(locate_decode_error(data, message_class, exc))

    return deserialize


def locate_decode_error(data: bytes, message_class: Any, exc: Exception) -> InvalidArgument:
    """Find the first top-level field whose bytes do not parse as its declared type."""
    if message_class is None:
        return InvalidArgument("", f"the request is not a valid message: {exc}")
    descriptor = message_class.DESCRIPTOR
    counts: dict[int, int] = {}
    pos = 0
    try:
        while pos < len(data):
            tag, pos = _read_varint(data, pos)
            number, wire_type = tag >> 3, tag & 7
            field = descriptor.fields_by_number.get(number)
            name = field.name if field is not None else f"field {number}"
            index = counts.get(number, 0)
            counts[number] = index + 1
            label = f"{name}[{index}]" if field is not None and _is_repeated(field) else name
            if wire_type == 0:
                _, pos = _read_varint(data, pos)
            elif wire_type == 1:
                pos += 8
            elif wire_type == 5:
                pos += 4
            elif wire_type == 2:
                length, pos = _read_varint(data, pos)
                chunk = data[pos : pos + length]
                if len(chunk) != length:
                    return InvalidArgument(label, "truncated")
                pos += length
                if field is not None and field.message_type is not None:
                    sub = field.message_type._concrete_class  # noqa: SLF001
                    try:
                        sub.FromString(chunk)
                    except (pb_message.DecodeError, ValueError, RuntimeError):
                        kind = field.message_type.full_name
                        what = "object" if kind == "google.protobuf.Struct" else kind
                        return InvalidArgument(label, f"is not a valid {what}")
                if field is not None and field.type == FieldDescriptor.TYPE_STRING:
                    try:
                        chunk.decode("utf-8")
                    except UnicodeDecodeError:
                        return InvalidArgument(label, "is not valid UTF-8")
            else:
                return InvalidArgument(name, f"has an unsupported wire type {wire_type}")
            if field is not None and not _wire_type_matches(field, wire_type):
                return InvalidArgument(label, "has the wrong wire type for its declared type")
    except (IndexError, pb_message.DecodeError):
        pass
    return InvalidArgument("", f"the request is not a valid {descriptor.full_name}: {exc}")


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


_LENGTH_DELIMITED = {
    FieldDescriptor.TYPE_STRING,
    FieldDescriptor.TYPE_BYTES,
    FieldDescriptor.TYPE_MESSAGE,
}


def _wire_type_matches(field: FieldDescriptor, wire_type: int) -> bool:
    if field.type in _LENGTH_DELIMITED:
        return wire_type == 2
    # Packed repeated scalars are length-delimited too.
    return wire_type != 2 or _is_repeated(field)
