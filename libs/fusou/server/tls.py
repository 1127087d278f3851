"""The server's TLS credentials, read from FUSOU_TLS_CERT_FILE and FUSOU_TLS_KEY_FILE."""

from __future__ import annotations

import grpc

from fusou.config import ConfigError, Settings, read_configured_file


def _pem(variable: str, path: str) -> bytes:
    data = read_configured_file(variable, path)
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{variable}: {path} holds no PEM block")
    return data


def server_key_pair(settings: Settings) -> tuple[bytes, bytes] | None:
    """The PEM certificate chain and its key, or None for plaintext (neither variable set):
    what the gRPC port and the Arrow Flight port both serve TLS with."""
    if settings.server.tls_cert_file is None or settings.server.tls_key_file is None:
        return None
    chain = _pem("FUSOU_TLS_CERT_FILE", settings.server.tls_cert_file)
    key = _pem("FUSOU_TLS_KEY_FILE", settings.server.tls_key_file)
    return chain, key


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials, or None for plaintext (neither variable set)."""
    pair = server_key_pair(settings)
    if pair is None:
        return None
    chain, key = pair
    return grpc.ssl_server_credentials([(key, chain)])
