"""The object-key layout: where each kind of object lives in the store, and reading a key back.

    raw/{dataset}/{uuid}.bin                                    uploaded bundles (UploadRaw)
    cold/{dataset}/{table}/date={yyyy-mm-dd}/{uuid}.avro        archived buffer rows
    optimized/{dataset}/{table}-{uuid}.parquet                  compacted files
    lake/{dataset}/{table}/data/{time}_day={yyyy-mm-dd}/{uuid}.parquet   Iceberg data files
    lake/{dataset}/{table}/metadata/...                         Iceberg metadata (pyiceberg's)

Every key of a dataset lies under one of ``dataset_prefixes(dataset_id)``: what a run for one
dataset sweeps. Names cannot hold ``/`` (``fusou.names``) and a uuid's hex has no ``-``, so a
key parses back to its dataset and table unambiguously.
"""

from __future__ import annotations

import uuid
from typing import Final

RAW: Final = "raw"
COLD: Final = "cold"
OPTIMIZED: Final = "optimized"
# The top-level folders, one per kind of object the catalog's fusou_objects registers.
KINDS: Final = (RAW, COLD, OPTIMIZED)
# The Iceberg tables' folder: its data files are registered in fusou_lake_files, its metadata
# by the Iceberg catalog, so the orphan sweep of KINDS never lists it.
LAKE: Final = "lake"


def raw_key(dataset_id: str) -> str:
    """A fresh key for an uploaded bundle of ``dataset_id``."""
    return f"{RAW}/{dataset_id}/{uuid.uuid4().hex}.bin"


def cold_key(dataset_id: str, table: str, day: str) -> str:
    """A fresh key for a cold Avro file of the table whose first row falls on ``day``
    (ISO date)."""
    return f"{COLD}/{dataset_id}/{table}/date={day}/{uuid.uuid4().hex}.avro"


def optimized_key(dataset_id: str, table: str) -> str:
    """A fresh key for a compacted Parquet file of the table."""
    return f"{OPTIMIZED}/{dataset_id}/{table}-{uuid.uuid4().hex}.parquet"


def lake_data_key(dataset_id: str, table: str, time_field: str, day: str) -> str:
    """A fresh key for the Iceberg data file of the table's rows of ``day`` (ISO date); the
    folder is named as Iceberg's day partition of the time field."""
    return f"{LAKE}/{dataset_id}/{table}/data/{time_field}_day={day}/{uuid.uuid4().hex}.parquet"


def kind_prefix(kind: str, dataset_id: str | None = None) -> str:
    """The listing prefix of one kind's objects: of one dataset, or of all for ``None``."""
    return f"{kind}/{dataset_id}/" if dataset_id else f"{kind}/"


def dataset_prefixes(dataset_id: str) -> list[str]:
    """The listing prefixes that hold every object of the dataset."""
    return [kind_prefix(kind, dataset_id) for kind in KINDS]


def cold_owner(key: str) -> tuple[str, str]:
    """The (dataset, table) of a key under ``cold/``; ("", "") for one not laid out as a cold
    file (no table owns it)."""
    parts = key.split("/")  # cold/{dataset}/{table}/...
    return (parts[1], parts[2]) if len(parts) >= 4 else ("", "")


def optimized_table(key: str) -> str:
    """The table of a key under ``optimized/``."""
    return key.rsplit("/", 1)[-1].rsplit("-", 1)[0]  # optimized/{ds}/{table}-{uuid}...


def owner(key: str) -> tuple[str, str] | None:
    """The (dataset, table) whose run writes the object at ``key`` under that table's lock, or
    None when no table's lock covers it (raw bundles, registered in one transaction by their
    upload; keys not laid out as FUSOU's)."""
    kind = key.split("/", 1)[0]
    if kind == COLD:
        found = cold_owner(key)
        return found if found[0] else None
    if kind == OPTIMIZED:
        parts = key.split("/")
        return (parts[1], optimized_table(key)) if len(parts) == 3 else None
    return None
