"""Server reflection under both names clients ask for: ``grpc.reflection.v1`` (the stable
protocol, which current grpcurl and gRPC tools try first) and ``grpc.reflection.v1alpha`` (what
grpcio-reflection implements, and what older clients speak).

The two protocols are the same messages, field for field, under two package names, so the one
servicer grpcio-reflection provides answers both: its messages parse and serialize v1 calls
unchanged. The v1 file descriptor is v1alpha's renamed, added to the default pool, so that
reflection describes the v1 service too (``grpcurl describe grpc.reflection.v1.ServerReflection``).
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc import aio
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1ALPHA_SERVICE: str = reflection.SERVICE_NAME
V1_SERVICE = "grpc.reflection.v1.ServerReflection"
SERVICE_NAMES = (V1_SERVICE, V1ALPHA_SERVICE)

_V1ALPHA_PACKAGE = reflection_pb2.DESCRIPTOR.package
_V1_PACKAGE = "grpc.reflection.v1"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _renamed(type_name: str) -> str:
    old = f".{_V1ALPHA_PACKAGE}."
    return f".{_V1_PACKAGE}." + type_name[len(old) :] if type_name.startswith(old) else type_name


def _rename_message(message: descriptor_pb2.DescriptorProto) -> None:
    for message_field in message.field:
        if message_field.type_name:
            message_field.type_name = _renamed(message_field.type_name)
    for nested in message.nested_type:
        _rename_message(nested)


def v1_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The v1 protocol's file: v1alpha's, under the v1 package and file name."""
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = _V1_FILE
    proto.package = _V1_PACKAGE
    # Language options (Java package and the like) name v1alpha; a described file needs none.
    proto.ClearField("options")
    for message in proto.message_type:
        _rename_message(message)
    for service in proto.service:
        for method in service.method:
            method.input_type = _renamed(method.input_type)
            method.output_type = _renamed(method.output_type)
    return proto


def _register_v1_descriptor() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
    except KeyError:
        pool.AddSerializedFile(v1_file_descriptor().SerializeToString())


def enable_reflection(service_names: Iterable[str], server: aio.Server) -> None:
    """Reflection on ``server`` for ``service_names`` and the reflection services themselves,
    as both v1 and v1alpha."""
    _register_v1_descriptor()
    servicer = reflection.aio.ReflectionServicer([*service_names, *SERVICE_NAMES])
    handlers = {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
    }
    for name in SERVICE_NAMES:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
