"""An object store on the S3 API (AWS, MinIO, R2, moto) through aioboto3."""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AsyncExitStack, contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, NoReturn

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    TokenRetrievalError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from fusou.objectstore.base import (
    DEFAULT_PART_SIZE,
    MiB,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailable,
    PutData,
    TransientObjectStoreError,
    validate_key,
    validate_prefix,
    validate_range,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import (
        CompletedPartTypeDef,
        ObjectIdentifierTypeDef,
    )

_log = logging.getLogger(__name__)

# S3's multipart limits: every part but the last must be at least 5 MiB, none above 5 GiB, and an
# upload has at most 10,000 parts.
MIN_PART_SIZE: Final = 5 * MiB
MAX_PART_SIZE: Final = 5 * 1024 * MiB
MAX_PARTS: Final = 10_000
# DeleteObjects takes at most this many keys per request; also ListObjectsV2's largest page.
_MAX_BATCH: Final = 1000

_NOT_FOUND_CODES: Final = frozenset({"NoSuchKey", "NotFound", "404"})
_TRANSIENT_CODES: Final = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
    }
)
# S3 refuses this service, whatever the request: its credentials, the bucket's policy, the
# account. Not transient (retrying at once does not help), but not a bug either: the store is
# unusable until an operator fixes the configuration, and no client can do anything about it.
# So UNAVAILABLE for clients, not PERMISSION_DENIED, which would blame the caller's own token.
_REFUSED_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidSecurity",
        "NoSuchBucket",
    }
)
# The same before any request: no credentials, region or token could be found.
_CONFIGURATION_EXCEPTIONS: Final = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
    NoRegionError,
)
# Errors below the HTTP layer: the request may never have reached S3, or its answer got lost.
_TRANSIENT_EXCEPTIONS: Final = (
    HTTPClientError,
    BotoConnectionError,
    IncompleteReadError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
)


def _translate_error(exc: Exception, key: str | None) -> ObjectStoreError:
    """The ObjectStoreError that ``exc`` (raised by botocore/aiohttp for ``key``) stands for."""
    where = f" for {key!r}" if key is not None else ""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if key is not None and code in _NOT_FOUND_CODES:
            return ObjectNotFound(key)
        if code in _TRANSIENT_CODES or status >= 500 or status in (408, 429):
            return TransientObjectStoreError(f"S3 {code or status}{where}: {exc}")
        if code == "NoSuchBucket":
            return ObjectStoreUnavailable(f"S3 bucket does not exist{where}: {exc}")
        if code in _REFUSED_CODES or status in (401, 403):
            return ObjectStoreUnavailable(
                f"S3 refused this service's access{where} (its credentials or the bucket's "
                f"policy): {exc}"
            )
        return ObjectStoreError(f"S3 {code or status}{where}: {exc}")
    if isinstance(exc, _TRANSIENT_EXCEPTIONS):
        return TransientObjectStoreError(f"S3 connection failed{where}: {exc!r}")
    if isinstance(exc, _CONFIGURATION_EXCEPTIONS):
        return ObjectStoreUnavailable(f"S3 cannot be used{where}: {exc}")
    return ObjectStoreError(f"S3 request failed{where}: {exc!r}")


@contextmanager
def _translated(key: str | None) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError, *_TRANSIENT_EXCEPTIONS) as exc:
        raise _translate_error(exc, key) from exc


def _raise_translated(exc: Exception, key: str | None) -> NoReturn:
    raise _translate_error(exc, key) from exc


def _normalize_prefix(prefix: str) -> str:
    if not prefix:
        return ""
    stripped = prefix.removesuffix("/")
    try:
        validate_key(stripped)
    except ValueError as exc:
        raise ValueError(f"invalid store prefix {prefix!r}: {exc}") from None
    # The separator is part of the prefix so "tenant" can never see keys of "tenant-2".
    return stripped + "/"


async def _slices(data: bytes, size: int) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


async def _parts(buffer: bytearray, rest: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """``buffer`` then ``rest``, re-cut into parts of exactly ``size`` bytes but the last."""
    while True:
        # Strictly greater: whatever the stream does next, at least one byte is left for a
        # final part, so the upload never ends with an empty part.
        while len(buffer) > size:
            part = bytes(buffer[:size])
            del buffer[:size]
            yield part
        try:
            chunk = await anext(rest)
        except StopAsyncIteration:
            break
        buffer += chunk
    if buffer:
        yield bytes(buffer)


class S3ObjectStore(ObjectStore):
    """Objects in ``bucket`` under ``prefix``; key "a/b" is the S3 key "{prefix}/a/b".

    Credentials and anything not given here come from botocore's usual sources (``AWS_*``
    environment variables, shared config files, instance metadata).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        max_pool_connections: int = 64,
        *,
        list_page_size: int = _MAX_BATCH,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"invalid S3 bucket name: {bucket!r}")
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            # Checked here rather than left to S3, which would only complain at the end of an
            # upload (EntityTooSmall) after all the bytes were sent.
            raise ValueError(f"part_size must be between 5 MiB and 5 GiB, got {part_size}")
        if not 1 <= list_page_size <= _MAX_BATCH:
            raise ValueError(f"list_page_size must be between 1 and 1000, got {list_page_size}")
        if max_pool_connections < 1:
            raise ValueError(f"max_pool_connections must be positive, got {max_pool_connections}")
        self._bucket = bucket
        self._prefix = _normalize_prefix(prefix)
        self._endpoint_url = endpoint_url
        self._region = region
        self._part_size = part_size
        self._list_page_size = list_page_size
        self._config = AioConfig(max_pool_connections=max_pool_connections)
        self._session = aioboto3.Session()
        self._client: S3Client | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._client_lock = asyncio.Lock()

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        """The normalized prefix: empty, or ending in '/'."""
        return self._prefix

    @property
    def part_size(self) -> int:
        return self._part_size

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self._bucket!r}, prefix={self._prefix!r})"

    async def _get_client(self) -> S3Client:
        self._ensure_open()
        if self._client is None:
            # One client per store: it owns the connection pool, so sharing it is what makes
            # connections get reused. The lock stops concurrent first calls from building several.
            async with self._client_lock:
                self._ensure_open()
                if self._client is None:
                    stack = AsyncExitStack()
                    self._client = await stack.enter_async_context(
                        self._session.client(
                            "s3",
                            endpoint_url=self._endpoint_url,
                            region_name=self._region,
                            config=self._config,
                        )
                    )
                    self._exit_stack = stack
        return self._client

    def _s3_key(self, key: str) -> str:
        return self._prefix + validate_key(key)

    async def put(self, key: str, data: PutData) -> ObjectInfo:
        s3_key = self._s3_key(key)
        client = await self._get_client()
        if isinstance(data, bytes | bytearray | memoryview):
            payload = bytes(data)
            if len(payload) <= self._part_size:
                with _translated(key):
                    await client.put_object(Bucket=self._bucket, Key=s3_key, Body=payload)
            else:
                await self._put_multipart(client, key, s3_key, _slices(payload, self._part_size))
        else:
            # Read ahead until the stream is known to be larger than one part; only then is a
            # multipart upload (three requests at least) worth starting.
            stream = aiter(data)
            buffer = bytearray()
            async for chunk in stream:
                buffer += chunk
                if len(buffer) > self._part_size:
                    break
            if len(buffer) <= self._part_size:
                with _translated(key):
                    await client.put_object(Bucket=self._bucket, Key=s3_key, Body=bytes(buffer))
            else:
                parts = _parts(buffer, stream, self._part_size)
                await self._put_multipart(client, key, s3_key, parts)
        # Neither PutObject nor CompleteMultipartUpload reports LastModified (and for multipart
        # S3 records the upload's start), so ask for it rather than return a guess.
        return await self.head(key)

    async def _put_multipart(
        self, client: S3Client, key: str, s3_key: str, parts: AsyncIterator[bytes]
    ) -> None:
        with _translated(key):
            created = await client.create_multipart_upload(Bucket=self._bucket, Key=s3_key)
        upload_id = created["UploadId"]
        try:
            completed: builtins.list[CompletedPartTypeDef] = []
            # Parts go up one at a time: the source is a stream consumed in order, and parallel
            # parts would multiply the memory held per put.
            async for part in parts:
                number = len(completed) + 1
                if number > MAX_PARTS:
                    raise ObjectStoreError(
                        f"{key!r} needs more than {MAX_PARTS} parts of {self._part_size} bytes"
                    )
                with _translated(key):
                    uploaded = await client.upload_part(
                        Bucket=self._bucket,
                        Key=s3_key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=part,
                    )
                completed.append({"ETag": uploaded["ETag"], "PartNumber": number})
            with _translated(key):
                await client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=s3_key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": completed},
                )
        except BaseException:
            # S3 keeps (and bills) the parts of an unfinished upload forever otherwise.
            await self._abort_multipart(client, key, s3_key, upload_id)
            raise

    async def _abort_multipart(
        self, client: S3Client, key: str, s3_key: str, upload_id: str
    ) -> None:
        try:
            await client.abort_multipart_upload(Bucket=self._bucket, Key=s3_key, UploadId=upload_id)
        except (BotoCoreError, ClientError, *_TRANSIENT_EXCEPTIONS):
            # The original failure is the one worth reporting; a bucket lifecycle rule
            # (AbortIncompleteMultipartUpload) is the backstop for what is left behind.
            _log.warning(
                "could not abort multipart upload %s of %r in bucket %r",
                upload_id,
                s3_key,
                self._bucket,
                exc_info=True,
            )

    async def get(self, key: str) -> bytes:
        s3_key = self._s3_key(key)
        client = await self._get_client()
        with _translated(key):
            response = await client.get_object(Bucket=self._bucket, Key=s3_key)
            async with response["Body"] as body:
                return await body.read()

    async def get_range(self, key: str, offset: int, length: int) -> bytes:
        s3_key = self._s3_key(key)
        validate_range(offset, length)
        if length == 0:
            # An HTTP range cannot be empty; still report a missing key like any other read.
            await self.head(key)
            return b""
        client = await self._get_client()
        try:
            response = await client.get_object(
                Bucket=self._bucket, Key=s3_key, Range=f"bytes={offset}-{offset + length - 1}"
            )
            async with response["Body"] as body:
                data = await body.read()
        except ClientError as exc:
            # 416 comes only for an existing object (a missing one is NoSuchKey), and means the
            # range starts at or after its end.
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            _raise_translated(exc, key)
        except (BotoCoreError, *_TRANSIENT_EXCEPTIONS) as exc:
            _raise_translated(exc, key)
        if "ContentRange" not in response:
            # Servers may answer an unsatisfiable range (e.g. on an empty object) with the
            # whole object instead of 416.
            data = data[offset : offset + length]
        return data

    async def check(self) -> None:
        client = await self._get_client()
        with _translated(None):
            await client.head_bucket(Bucket=self._bucket)

    async def head(self, key: str) -> ObjectInfo:
        s3_key = self._s3_key(key)
        client = await self._get_client()
        with _translated(key):
            response = await client.head_object(Bucket=self._bucket, Key=s3_key)
        return ObjectInfo(
            key=key,
            size=response["ContentLength"],
            last_modified=response["LastModified"].astimezone(UTC),
        )

    async def delete(self, key: str) -> None:
        s3_key = self._s3_key(key)
        client = await self._get_client()
        # DeleteObject succeeds for a missing key, which is exactly the contract.
        with _translated(key):
            await client.delete_object(Bucket=self._bucket, Key=s3_key)

    async def delete_many(self, keys: Iterable[str]) -> None:
        # Validate everything first so a bad key in the middle does not leave half the batch done;
        # dict.fromkeys drops duplicates, which S3 would otherwise report once each.
        s3_keys = builtins.list(dict.fromkeys(self._s3_key(key) for key in keys))
        if not s3_keys:
            return
        client = await self._get_client()
        for start in range(0, len(s3_keys), _MAX_BATCH):
            batch: builtins.list[ObjectIdentifierTypeDef] = [
                {"Key": k} for k in s3_keys[start : start + _MAX_BATCH]
            ]
            with _translated(None):
                response = await client.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True}
                )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                code = first.get("Code", "")
                message = (
                    f"S3 could not delete {len(errors)} object(s), first {first.get('Key')!r}: "
                    f"{code} {first.get('Message', '')}"
                )
                if code in _TRANSIENT_CODES:
                    raise TransientObjectStoreError(message)
                if code in _REFUSED_CODES:
                    raise ObjectStoreUnavailable(message)
                raise ObjectStoreError(message)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        validate_prefix(prefix)
        client = await self._get_client()
        paginator = client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self._bucket,
            Prefix=self._prefix + prefix,
            PaginationConfig={"PageSize": self._list_page_size},
        )
        strip = len(self._prefix)
        # ListObjectsV2 returns keys in UTF-8 byte order, which is also the order of the Python
        # strings, so pages can be passed on as they come.
        with _translated(None):
            async for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"][strip:],
                        size=item["Size"],
                        last_modified=item["LastModified"].astimezone(UTC),
                    )

    async def sweep_incomplete(self, older_than: datetime, prefix: str = "") -> int:
        """Abort the multipart uploads under ``prefix`` started before ``older_than`` and never
        completed: a killed put's parts, which S3 keeps (and bills) until they are aborted."""
        validate_prefix(prefix)
        client = await self._get_client()
        paginator = client.get_paginator("list_multipart_uploads")
        stale: builtins.list[tuple[str, str]] = []
        with _translated(None):
            async for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix + prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < older_than:
                        stale.append((upload["Key"], upload["UploadId"]))
        aborted = 0
        for s3_key, upload_id in stale:
            try:
                await client.abort_multipart_upload(
                    Bucket=self._bucket, Key=s3_key, UploadId=upload_id
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                    continue  # completed or aborted meanwhile
                _raise_translated(exc, s3_key[len(self._prefix) :])
            except (BotoCoreError, *_TRANSIENT_EXCEPTIONS) as exc:
                _raise_translated(exc, s3_key[len(self._prefix) :])
            aborted += 1
        return aborted

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._client_lock:
            stack, self._exit_stack, self._client = self._exit_stack, None, None
        if stack is not None:
            await stack.aclose()
