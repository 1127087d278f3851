"""The interceptor that admits calls (``fusou.api.access``) and turns every exception into a
proper status (see ``status``): refusals are exceptions like any other, mapped in one place."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc
from grpc import aio

from fusou.api.access import OPEN, AccessControl, Grant
from fusou.api.decoding import Undecodable, lenient_deserializer
from fusou.logs import CURRENT_CALL
from fusou.server.handlers import Behavior, Found, RewrappingInterceptor
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


class _MappedErrors:
    """Around a call's handler: any exception but an abort becomes the call's status."""

    __slots__ = ("_context",)

    def __init__(self, context: aio.ServicerContext[Any, Any]) -> None:
        self._context = context

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> bool:
        # BaseExceptions (cancellation, a closed response stream) pass, as do aborts.
        if not isinstance(exc, Exception) or isinstance(exc, aio.AbortError):
            return False
        await _abort(self._context, exc)  # this is the mapping point
        return True


def _awaited(behavior: Behavior, admitted: Callable[[Any], Any]) -> Behavior:
    """A handler whose one response (or, writer style, none) the coroutine returns."""

    async def call(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        async with _MappedErrors(context):
            return await behavior(admitted(request), context)

    return call


def _responding(behavior: Behavior, admitted: Callable[[Any], Any]) -> Behavior:
    """A streaming response: from an async generator, or written by the coroutine itself
    (``context.write``, e.g. grpc's own health Watch)."""
    if inspect.iscoroutinefunction(behavior):
        return _awaited(behavior, admitted)

    async def responses(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        async with _MappedErrors(context):
            async for response in behavior(admitted(request), context):
                yield response

    return responses


class ErrorMappingInterceptor(RewrappingInterceptor):
    def __init__(
        self,
        request_types: Mapping[str, Any] | None = None,
        access: AccessControl | None = None,
    ) -> None:
        self._request_types = dict(request_types or {})
        # None: no tokens are configured, every call is admitted.
        self._access = access

    def rewrap(self, found: Found) -> grpc.RpcMethodHandler[Any, Any]:
        handler, details, shape, behavior = found
        override = self._request_types.get(details.method)
        parse = override.FromString if override is not None else handler.request_deserializer
        deserializer = (
            lenient_deserializer(parse, getattr(parse, "__self__", None)) if parse else None
        )
        serializer = _serialized_as_is(handler.response_serializer)
        access = self._access
        method = details.method
        metadata = details.invocation_metadata

        def admit() -> Grant:
            # Called on the call's task, where a refusal is mapped like any error.
            if access is None:
                return OPEN
            grant = access.admit(method, metadata)
            call = CURRENT_CALL.get()
            if call is not None:
                call.principal = grant.principal
            return grant

        take: Callable[[Any, Grant], Any] = _requests if shape.streamed_requests else _checked

        def admitted(request: Any) -> Any:
            return take(request, admit())

        respond = _responding if shape.streamed_responses else _awaited
        return shape.build(respond(behavior, admitted), deserializer, serializer)
