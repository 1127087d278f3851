"""Request decoding that reports bad bytes as INVALID_ARGUMENT naming the field.

grpc answers a request it cannot deserialize with a generic error; we deserialize in the
handler instead so that a malformed message (say, a ``rows`` entry that is not an object)
is rejected like any other bad input, naming the field. A message that parses but holds an
enum number its enum does not define (proto3 keeps those) is refused the same way, for every
request type, before any handler sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from google.protobuf import message as pb_message
from google.protobuf.descriptor import Descriptor, FieldDescriptor
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
            message = parse(data)
        except (pb_message.DecodeError, ValueError, RuntimeError) as exc:
            return Undecodable(locate_decode_error(data, message_class, exc))
        if isinstance(message, pb_message.Message):
            problem = undefined_enum(message)
            if problem is not None:
                return Undecodable(problem)
        return message

    return deserialize


@cache
def _holds_enums(descriptor: Descriptor) -> bool:
    """Whether messages of this type can hold an enum field, at any depth."""
    seen: set[str] = set()
    pending = [descriptor]
    while pending:
        current = pending.pop()
        if current.full_name in seen:
            continue
        seen.add(current.full_name)
        for field in current.fields:
            if field.enum_type is not None:
                return True
            if field.message_type is not None:
                pending.append(field.message_type)
    return False


def undefined_enum(message: pb_message.Message, prefix: str = "") -> InvalidArgument | None:
    """The first enum field (at any depth) whose number its enum does not define, or None.
    Costs nothing for types without enums (most requests)."""
    if not _holds_enums(message.DESCRIPTOR):
        return None
    for field, value in message.ListFields():
        name = prefix + field.name
        target = field
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            target = field.message_type.fields_by_name["value"]
            items = [(f"{name}[{key!r}]", item) for key, item in value.items()]
        elif _is_repeated(field):
            items = [(f"{name}[{i}]", item) for i, item in enumerate(value)]
        else:
            items = [(name, value)]
        for label, item in items:
            if target.enum_type is not None:
                if item not in target.enum_type.values_by_number:
                    defined = ", ".join(f"{v.name} = {v.number}" for v in target.enum_type.values)
                    return InvalidArgument(
                        label, f"{item} is not a value of {target.enum_type.full_name} ({defined})"
                    )
            elif target.message_type is not None:
                problem = undefined_enum(item, label + ".")
                if problem is not None:
                    return problem
    return None


def locate_decode_error(data: bytes, message_class: Any, exc: Exception) -> InvalidArgument:
    """Find the first top-level field whose bytes do not parse as its declared type."""
    if message_class is None:
        return InvalidArgument("", f"the request is not a valid message: {exc}")
    descriptor = message_class.DESCRIPTOR
    counts: dict[int, int] = {}
    # A message nested past protobuf's depth limit parses alone, one level shallower, and
    # fails only inside the request: the deepest field is then the one to name.
    deepest: tuple[int, str] = (0, "")
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
                        parsed = sub.FromString(chunk)
                    except (pb_message.DecodeError, ValueError, RuntimeError) as sub_exc:
                        if _too_deep(sub_exc):
                            return InvalidArgument(label, _TOO_DEEP)
                        kind = field.message_type.full_name
                        what = "object" if kind == "google.protobuf.Struct" else kind
                        return InvalidArgument(label, f"is not a valid {what}")
                    depth = _message_depth(parsed)
                    if depth > deepest[0]:
                        deepest = (depth, label)
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
    if _too_deep(exc) and deepest[1]:
        return InvalidArgument(deepest[1], _TOO_DEEP)
    return InvalidArgument("", f"the request is not a valid {descriptor.full_name}: {exc}")


_TOO_DEEP = "nests objects or lists deeper than protobuf parses (about 32 levels)"


def _too_deep(exc: Exception) -> bool:
    # upb's message: "... Exceeded upb_DecodeOptions_MaxDepth"
    return "maxdepth" in str(exc).lower()


def _message_depth(message: pb_message.Message) -> int:
    """Levels of messages within ``message`` (on the error path only: it visits everything)."""
    deepest = 0
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is None:
                continue
            items = list(value.values())
        else:
            items = list(value) if _is_repeated(field) else [value]
        for item in items:
            deepest = max(deepest, _message_depth(item))
    return deepest + 1


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
