"""The interceptor that turns every exception into a proper status (see ``status``)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from grpc import aio

from fusou.server.decoding import Undecodable, lenient_deserializer
from fusou.server.status import map_exception

log = logging.getLogger(__name__)


async def _abort(context: aio.ServicerContext[Any, Any], exc: BaseException) -> None:
    mapped = map_exception(exc)
    await context.abort(mapped.code, mapped.message, trailing_metadata=mapped.trailing_metadata)


async def _requests(iterator: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for item in iterator:
        if isinstance(item, Undecodable):
            raise item.error
        yield item


def _serialized_as_is(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """The handler's serializer, except that a servicer may yield an already serialized message
    as ``bytes`` (a large message framed by hand saves copying its payload twice)."""
    if serialize is None:
        return None
    encode = serialize

    def serialize_or_pass(message: Any) -> bytes:
        return message if isinstance(message, bytes) else encode(message)

    return serialize_or_pass


class ErrorMappingInterceptor(aio.ServerInterceptor):
    def __init__(self, request_types: Mapping[str, Any] | None = None) -> None:
        self._request_types = dict(request_types or {})

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        # grpc's handler type describes sync behaviors; under grpc.aio they are coroutines.
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return handler
        override = self._request_types.get(handler_call_details.method)
        parse = override.FromString if override is not None else handler.request_deserializer
        deserializer = (
            lenient_deserializer(parse, getattr(parse, "__self__", None)) if parse else None
        )
        serializer = _serialized_as_is(handler.response_serializer)

        if handler.unary_unary:
            unary_unary = handler.unary_unary

            async def uu(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
                try:
                    if isinstance(request, Undecodable):
                        raise request.error
                    return await unary_unary(request, context)
                except aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001 - this is the mapping point
                    await _abort(context, exc)

            return grpc.unary_unary_rpc_method_handler(uu, deserializer, serializer)

        if handler.unary_stream:
            unary_stream = handler.unary_stream
            if inspect.iscoroutinefunction(unary_stream):
                # Writer style (context.write), e.g. grpc's own health Watch.
                async def us_writer(request: Any, context: aio.ServicerContext[Any, Any]) -> None:
                    try:
                        if isinstance(request, Undecodable):
                            raise request.error
                        await unary_stream(request, context)
                    except aio.AbortError:
                        raise
                    except Exception as exc:  # noqa: BLE001
                        await _abort(context, exc)

                return grpc.unary_stream_rpc_method_handler(us_writer, deserializer, serializer)

            async def us(
                request: Any, context: aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                try:
                    if isinstance(request, Undecodable):
                        raise request.error
                    async for response in unary_stream(request, context):
                        yield response
                except aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    await _abort(context, exc)

            return grpc.unary_stream_rpc_method_handler(us, deserializer, serializer)

        if handler.stream_unary:
            stream_unary = handler.stream_unary

            async def su(
                iterator: AsyncIterator[Any], context: aio.ServicerContext[Any, Any]
            ) -> Any:
                try:
                    return await stream_unary(_requests(iterator), context)
                except aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    await _abort(context, exc)

            return grpc.stream_unary_rpc_method_handler(su, deserializer, serializer)

        stream_stream = handler.stream_stream
        if inspect.iscoroutinefunction(stream_stream):

            async def ss_writer(
                iterator: AsyncIterator[Any], context: aio.ServicerContext[Any, Any]
            ) -> None:
                try:
                    await stream_stream(_requests(iterator), context)
                except aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    await _abort(context, exc)

            return grpc.stream_stream_rpc_method_handler(ss_writer, deserializer, serializer)

        async def ss(
            iterator: AsyncIterator[Any], context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            try:
                async for response in stream_stream(_requests(iterator), context):
                    yield response
            except aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001
                await _abort(context, exc)

        return grpc.stream_stream_rpc_method_handler(ss, deserializer, serializer)
