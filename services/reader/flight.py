"""ReadRange over Arrow Flight: each ticket translated (``fusou.api.reader.flight``) into a
call of the Reader, its answer handed back as an Arrow table."""

from __future__ import annotations

import pyarrow as pa

from fusou.api.access import Grant
from fusou.api.reader.answers import arrow_rows_per_message, mark_json_fields
from fusou.api.reader.flight import READ_RANGE_METHOD, stats_metadata, ticket_request
from fusou.api.reader.translate import read_request, read_stats
from fusou.read.reader import Reader
from fusou.server.flight import FlightAnswer
from fusou.services.reader.servicer import count_read


class ReaderFlight:
    method = READ_RANGE_METHOD

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    async def describe(self, command: bytes, grant: Grant) -> pa.Schema:
        request = ticket_request(command)
        grant.check(request)
        schema, info = await self._reader.answer_schema(read_request(request))
        return mark_json_fields(schema.empty_table(), info.latest).schema

    async def fetch(self, ticket: bytes, grant: Grant) -> FlightAnswer:
        request = ticket_request(ticket)
        grant.check(request)
        result = await self._reader.read(read_request(request))
        count_read(result.stats)
        table = mark_json_fields(result.table, result.info.latest)
        return FlightAnswer(
            table, stats_metadata(read_stats(result.stats)), arrow_rows_per_message(table)
        )
