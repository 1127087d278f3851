"""Turn a configured object store URL (``FUSOU_OBJECT_STORE_URL``) into a store."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from fusou.objectstore.base import ObjectStore
from fusou.objectstore.local import LocalObjectStore
from fusou.objectstore.s3 import S3ObjectStore

_EXPECTED = "expected s3://bucket[/prefix] or file:///absolute/path"


def open_object_store(
    url: str, *, endpoint_url: str | None = None, region: str | None = None
) -> ObjectStore:
    """The store ``url`` names. ``endpoint_url`` and ``region`` only apply to ``s3://`` URLs.

    No connection is made here; an S3 store connects on first use.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise ValueError(
            f"object store URL must not have a query or fragment: {url!r}; {_EXPECTED}"
        )
    if scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"object store URL has no bucket: {url!r}; {_EXPECTED}")
        # S3 keys are written literally in s3:// URLs (as the AWS CLI does), so no unquoting.
        return S3ObjectStore(
            parts.netloc,
            prefix=parts.path.removeprefix("/"),
            endpoint_url=endpoint_url,
            region=region,
        )
    if scheme == "file":
        # RFC 8089: file://host/path names a file on another host, which this process can't open.
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URL must not name a host: {url!r}; {_EXPECTED}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"file URL must hold an absolute path: {url!r}; {_EXPECTED}")
        return LocalObjectStore(Path(path))
    raise ValueError(f"unsupported object store URL {url!r}; {_EXPECTED}")
