"""Where client commands connect: the Flight port follows the server the command names."""

from __future__ import annotations

from fusou.cli.connection import Connection
from fusou.config import Settings


def test_the_flight_target_follows_the_server_named() -> None:
    client = Settings.from_env({}).client
    assert Connection.of(client).flight_address == "localhost:8815"
    assert Connection.of(client, "reader.internal:50051").flight_address == "reader.internal:8815"
    configured = Settings.from_env(
        {"FUSOU_TARGET": "a:50051", "FUSOU_FLIGHT_TARGET": "a-flight:9000"}
    ).client
    assert Connection.of(configured).flight_address == "a-flight:9000"
    # A target named on the command line is another server: not the configured Flight port.
    assert Connection.of(configured, "b:50051").flight_address == "b:8815"
    assert Connection.of(configured, "b:50051", "b:9001").flight_address == "b:9001"
