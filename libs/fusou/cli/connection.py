"""How client commands reach a server: the target, TLS, and the bearer token."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from fusou.config import ClientSettings, read_configured_file


@dataclass(frozen=True)
class Connection:
    target: str
    token: str | None = field(default=None, repr=False)
    # PEM certificates to trust; setting it implies TLS.
    ca_file: str | None = None
    # TLS with the system's certificate authorities.
    tls: bool = False

    @classmethod
    def of(cls, client: ClientSettings, target: str | None = None) -> Connection:
        return cls(target or client.target, client.token, client.ca_file, client.tls)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """What every call sends: the token as ``authorization: Bearer ...``, when there is one."""
        if not self.token:
            return ()
        return (("authorization", f"Bearer {self.token}"),)

    def channel(self, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        if self.ca_file is None and not self.tls:
            return grpc.insecure_channel(self.target, options=list(options))
        roots = None
        if self.ca_file is not None:
            roots = read_configured_file("FUSOU_TARGET_CA_FILE", self.ca_file)
        return grpc.secure_channel(
            self.target, grpc.ssl_channel_credentials(root_certificates=roots), list(options)
        )
