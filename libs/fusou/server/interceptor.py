"""The interceptor that admits calls (``fusou.auth.policy``) and turns every exception into a
proper status (see ``status``): refusals are exceptions like any other, mapped in one place."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from grpc import aio

from fusou.auth.policy import OPEN, AccessControl, Grant
from fusou.logs import CURRENT_CALL
from fusou.server.decoding import Undecodable, lenient_deserializer
from fusou.server.status import map_exception

log = logging.getLogger(__name__)


async def _abort(context: aio.ServicerContext[Any, Any], exc: BaseException) -> None:
    mapped = map_exception(exc)
    await context.abort(mapped.code, mapped.message, trailing_metadata=mapped.trailing_metadata)


def _checked(request: Any, grant: Grant) -> Any:
    if isinstance(request, Undecodable):
        raise request.error
    grant.check(request)
    return request


async def _requests(iterator: AsyncIterator[Any], grant: Grant) -> AsyncIterator[Any]:
    """A client stream's messages; the first one names the dataset the call touches."""
    first = True
    async for item in iterator:
        if isinstance(item, Undecodable):
            raise item.error
        if first:
            grant.check(item)
            first = False
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
    def __init__(
        self,
        request_types: Mapping[str, Any] | None = None,
        access: AccessControl | None = None,
    ) -> None:
        self._request_types = dict(request_types or {})
        # None: no tokens are configured, every call is admitted.
        self._access = access

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
        access = self._access
        method = handler_call_details.method
        metadata = handler_call_details.invocation_metadata

        def admit() -> Grant:
            # Called on the call's task, where a refusal is mapped like any error.
            if access is None:
                return OPEN
            grant = access.admit(method, metadata)
            call = CURRENT_CALL.get()
            if call is not None:
                call.principal = grant.principal
            return grant

        if handler.unary_unary:
            unary_unary = handler.unary_unary

            async def uu(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
                try:
                    return await unary_unary(_checked(request, admit()), context)
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
                        await unary_stream(_checked(request, admit()), context)
                    except aio.AbortError:
                        raise
                    except Exception as exc:  # noqa: BLE001
                        await _abort(context, exc)

                return grpc.unary_stream_rpc_method_handler(us_writer, deserializer, serializer)

            async def us(
                request: Any, context: aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                try:
                    async for response in unary_stream(_checked(request, admit()), context):
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
                    return await stream_unary(_requests(iterator, admit()), context)
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
                    await stream_stream(_requests(iterator, admit()), context)
                except aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    await _abort(context, exc)

            return grpc.stream_stream_rpc_method_handler(ss_writer, deserializer, serializer)

        async def ss(
            iterator: AsyncIterator[Any], context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            try:
                async for response in stream_stream(_requests(iterator, admit()), context):
                    yield response
            except aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001
                await _abort(context, exc)

        return grpc.stream_stream_rpc_method_handler(ss, deserializer, serializer)
