"""How a read through Arrow Flight failed: the server answered with an error, or its Flight
port did not answer at all."""

from __future__ import annotations


class FlightCallFailed(Exception):
    """The Flight call failed: the server's code and message (not an error of this process,
    such as a full disk under the output file)."""

    def __init__(self, cause: BaseException) -> None:
        from fusou.server.flight_status import flight_code, flight_message

        super().__init__(f"{flight_code(cause)}: {flight_message(cause)}")


class FlightUnreachable(Exception):
    """The Flight port did not answer (as opposed to answering with a refusal)."""

    def __init__(self, address: str, cause: BaseException) -> None:
        from fusou.server.flight_status import flight_message

        super().__init__(
            f"Arrow Flight at {address} did not answer ({flight_message(cause)}); set "
            "FUSOU_FLIGHT_TARGET or --flight-target to the reader's Flight port, or read "
            "through ReadRange with --grpc"
        )
