"""How client commands reach a server: the target, TLS, and the bearer token."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from fusou.config import ClientSettings, read_configured_file
from fusou.config.sections import DEFAULT_FLIGHT_PORT

if TYPE_CHECKING:
    from pyarrow import flight


@dataclass(frozen=True)
class Connection:
    target: str
    token: str | None = field(default=None, repr=False)
    # PEM certificates to trust; setting it implies TLS.
    ca_file: str | None = None
    # TLS with the system's certificate authorities.
    tls: bool = False
    # The reader's Arrow Flight host:port; None: the target's host on the default port.
    flight_target: str | None = None

    @classmethod
    def of(
        cls, client: ClientSettings, target: str | None = None, flight_target: str | None = None
    ) -> Connection:
        # A target named on the command line names the server: its Flight port too, unless
        # that is named as well (FUSOU_FLIGHT_TARGET goes with FUSOU_TARGET).
        return cls(
            target or client.target,
            client.token,
            client.ca_file,
            client.tls,
            flight_target or (None if target else client.flight_target),
        )

    @property
    def flight_address(self) -> str:
        if self.flight_target:
            return self.flight_target
        host = self.target.rsplit(":", 1)[0] if ":" in self.target else self.target
        return f"{host}:{DEFAULT_FLIGHT_PORT}"

    def flight_client(self) -> flight.FlightClient:
        """A client of the reader's Flight port, with the same TLS as the gRPC channel."""
        from pyarrow import flight

        if not self.secure:
            return flight.connect(f"grpc+tcp://{self.flight_address}")
        return flight.connect(f"grpc+tls://{self.flight_address}", tls_root_certs=self._roots())

    def flight_options(self, timeout: float) -> flight.FlightCallOptions:
        from pyarrow import flight

        headers = [(key.encode(), value.encode()) for key, value in self.metadata]
        return flight.FlightCallOptions(headers=headers, timeout=timeout)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """What every call sends: the token as ``authorization: Bearer ...``, when there is one."""
        if not self.token:
            return ()
        return (("authorization", f"Bearer {self.token}"),)

    def channel(self, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        if not self.secure:
            return grpc.insecure_channel(self.target, options=list(options))
        return grpc.secure_channel(
            self.target,
            grpc.ssl_channel_credentials(root_certificates=self._roots()),
            list(options),
        )

    @property
    def secure(self) -> bool:
        return self.ca_file is not None or self.tls

    def _roots(self) -> bytes | None:
        """The certificates to trust: the CA file's, or None for the system's."""
        if self.ca_file is None:
            return None
        return read_configured_file("FUSOU_TARGET_CA_FILE", self.ca_file)
