"""Request replay: a write that carries a request id stores its answer with its data, in the
same transaction, and a retry of the same request (same dataset, same id) gets that answer back
instead of writing again.

Ingest and UploadRaw keep their answers in tables of their own (the ids of the two RPCs are
separate spaces); the answer is opaque bytes to this module, each caller encodes its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import asyncpg


class Answers(Enum):
    """Where an RPC's answers are kept: the value is the table."""

    INGEST = "fusou_ingest_requests"
    UPLOAD = "fusou_upload_requests"


async def stored_answer(
    conn: asyncpg.Connection, answers: Answers, dataset_id: str, request_id: str
) -> bytes | None:
    """The answer stored for the request, None when it was never applied."""
    raw: bytes | None = await conn.fetchval(
        f"SELECT response FROM {answers.value} WHERE dataset_id = $1 AND request_id = $2",
        dataset_id,
        request_id,
    )
    return raw


async def record_answer(
    conn: asyncpg.Connection, answers: Answers, dataset_id: str, request_id: str, answer: bytes
) -> bool:
    """Store the request's answer (inside the caller's transaction); False when the request
    already has one: a concurrent retry won, and the caller must answer with its answer."""
    inserted = await conn.fetchval(
        f"INSERT INTO {answers.value} (dataset_id, request_id, response) "
        "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1",
        dataset_id,
        request_id,
        answer,
    )
    return inserted is not None


async def record_answers(
    conn: asyncpg.Connection, answers: Answers, entries: Sequence[tuple[str, str, bytes]]
) -> set[tuple[str, str]]:
    """Store several requests' (dataset, request id, answer) at once; returns the (dataset,
    request id) pairs stored, the others having an answer already."""
    claimed = await conn.fetch(
        f"INSERT INTO {answers.value} (dataset_id, request_id, response) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) "
        "ON CONFLICT DO NOTHING RETURNING dataset_id, request_id",
        [e[0] for e in entries],
        [e[1] for e in entries],
        [e[2] for e in entries],
    )
    return {(r["dataset_id"], r["request_id"]) for r in claimed}
