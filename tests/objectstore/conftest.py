"""Fixtures that give every contract test each backend in turn, freshly isolated."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from fusou.objectstore import LocalObjectStore, ObjectStore, S3ObjectStore
from fusou.objectstore.base import MiB
from tests.support.s3server import S3Server, running_s3_server

# The smallest part S3 (and moto) accept, so multipart tests need only a few MiB.
S3_PART_SIZE = 5 * MiB
# Tiny pages make every S3 listing in the suite go through pagination.
S3_LIST_PAGE_SIZE = 2


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


class Backend:
    """Makes stores of one backend over one test's private space, and inspects that space."""

    def __init__(self, name: str, *, root: Path | None = None, s3: S3Server | None = None) -> None:
        self.name = name
        self._root = root
        self._s3 = s3
        self._bucket = s3.new_bucket() if s3 is not None else ""
        self._stores: list[ObjectStore] = []

    @property
    def is_s3(self) -> bool:
        return self._s3 is not None

    @property
    def s3(self) -> S3Server:
        assert self._s3 is not None, "not the S3 backend"
        return self._s3

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def root(self) -> Path:
        assert self._root is not None, "not the local backend"
        return self._root

    def store(self, namespace: str = "") -> ObjectStore:
        """A store over ``namespace`` (an S3 prefix, or a subdirectory of the local root)."""
        store: ObjectStore
        if self._s3 is not None:
            store = S3ObjectStore(
                self._bucket,
                prefix=namespace,
                endpoint_url=self._s3.endpoint_url,
                region=self._s3.region,
                part_size=S3_PART_SIZE,
                list_page_size=S3_LIST_PAGE_SIZE,
            )
        else:
            store = LocalObjectStore(self.root / namespace if namespace else self.root)
        self._stores.append(store)
        return store

    def s3_etag(self, s3_key: str) -> str:
        return str(self.s3.client().head_object(Bucket=self._bucket, Key=s3_key)["ETag"])

    def pending_multipart_uploads(self) -> list[str]:
        response = self.s3.client().list_multipart_uploads(Bucket=self._bucket)
        return [str(upload["Key"]) for upload in response.get("Uploads", [])]

    def files_on_disk(self) -> list[str]:
        """Every file under the local root, temp files included, as '/'-separated paths."""
        found = []
        for directory, _, files in os.walk(self.root):
            for name in files:
                found.append(Path(directory, name).relative_to(self.root).as_posix())
        return sorted(found)

    async def close(self) -> None:
        for store in self._stores:
            await store.close()


@pytest_asyncio.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "s3":
        # Looked up here, not declared, so local-only runs never start the server.
        server: S3Server = request.getfixturevalue("s3_server")
        made = Backend("s3", s3=server)
    else:
        made = Backend("local", root=tmp_path / "objects")
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
def store(backend: Backend) -> ObjectStore:
    return backend.store()
