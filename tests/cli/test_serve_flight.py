"""`fusou serve reader` stops on SIGTERM even while a Flight client holds a call it stopped
reading: after the grace period the process leaves without waiting for that write."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
from pyarrow import flight

from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.api.reader.v1 import reader_pb2
from fusou.api.timestamps import timestamp_of_ms
from fusou.records.wire_formats import arrow_ipc_bytes
from tests.support.grpcurl import FUSOU, clean_env

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
ROWS = 100_000  # about 30 MB of answer: more than the connection buffers while unread


async def test_a_stalled_flight_client_does_not_keep_the_server_alive(
    database_url: str, tmp_path: Path
) -> None:
    objects = tmp_path / "objects"
    objects.mkdir()
    env = clean_env(  # free Flight and metrics ports
        FUSOU_DATABASE_URL=database_url,
        FUSOU_OBJECT_STORE_URL=f"file://{objects}",
        FUSOU_GRPC_HOST="127.0.0.1",
        FUSOU_GRPC_PORT="0",
        FUSOU_SHUTDOWN_GRACE_S="1",
        FUSOU_GRPC_MAX_MESSAGE_BYTES=str(128 * 1024 * 1024),
    )
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            FUSOU,
            *("serve", "ingest", "reader"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    release = threading.Event()
    try:
        assert proc.stdout is not None
        grpc_port = int((await asyncio.wait_for(proc.stdout.readline(), 60)).split()[-1])
        flight_port = int((await asyncio.wait_for(proc.stdout.readline(), 10)).split()[-1])
        rows = pa.table(
            {
                "timestamp": pa.array(range(T0, T0 + ROWS), pa.int64()),
                "note": pa.array([f"{i:0300d}" for i in range(ROWS)]),
            }
        )
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{grpc_port}",
            options=[("grpc.max_send_message_length", 128 * 1024 * 1024)],
        ) as channel:
            answer = await ingest_pb2_grpc.IngestServiceStub(channel).Ingest(
                ingest_pb2.IngestRequest(
                    dataset_id="d", table="t", request_id="r", arrow_ipc=arrow_ipc_bytes(rows)
                ),
                timeout=120,
            )
        assert answer.rows_written == ROWS
        request = reader_pb2.ReadRangeRequest(
            dataset_id="d",
            table="t",
            start_time=timestamp_of_ms(T0),
            end_time=timestamp_of_ms(T0 + ROWS),
        )
        started = threading.Event()

        def stall() -> None:
            client = flight.connect(f"grpc://127.0.0.1:{flight_port}")
            stream = client.do_get(flight.Ticket(request.SerializeToString()))
            stream.read_chunk()  # one batch, then nothing more is read
            started.set()
            release.wait(120)

        threading.Thread(target=stall, daemon=True).start()
        assert await asyncio.to_thread(started.wait, 60), log.read_text()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        assert code == 0, log.read_text()
        assert "still running after the grace period" in log.read_text()
    finally:
        release.set()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
