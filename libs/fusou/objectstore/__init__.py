"""Async object storage: S3 (through aioboto3) or a local directory, behind one interface."""

from fusou.objectstore.base import (
    DEFAULT_PART_SIZE,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailable,
    PutData,
    TransientObjectStoreError,
    validate_key,
)
from fusou.objectstore.factory import open_object_store
from fusou.objectstore.local import LocalObjectStore
from fusou.objectstore.s3 import S3ObjectStore

__all__ = [
    "DEFAULT_PART_SIZE",
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "ObjectStoreUnavailable",
    "PutData",
    "S3ObjectStore",
    "TransientObjectStoreError",
    "open_object_store",
    "validate_key",
]
