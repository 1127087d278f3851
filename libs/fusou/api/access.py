"""The rules per RPC: which roles may call it and which dataset its request names.

``AccessControl.admit`` runs when a call arrives (the token and the role); the ``Grant`` it
returns then checks the dataset of the request, or of the first message of a client stream.
Health and reflection are open to all; an RPC without a rule here is for admins of every dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fusou.api.archiver.v1 import archiver_pb2
from fusou.api.compactor.v1 import compactor_pb2
from fusou.api.ingest.v1 import ingest_pb2
from fusou.api.reader.v1 import reader_pb2
from fusou.auth.tokens import Role, TokenEntry, hash_token
from fusou.errors import PermissionDenied, Unauthenticated

OPEN_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)
Metadata = Sequence[tuple[str, str | bytes]]


@dataclass(frozen=True)
class MethodRule:
    roles: frozenset[Role]
    # The dataset a request names; None when it names none (the servicer rejects such a
    # request as invalid, or it means "every dataset" where ``empty_means_all``).
    dataset: Callable[[Any], str | None]
    # An empty dataset_id asks for every dataset (Archive, Compact, GetStats).
    empty_means_all: bool = False


def _method(module: Any, service: str, name: str) -> str:
    return f"/{module.DESCRIPTOR.services_by_name[service].full_name}/{name}"


def _dataset_id(request: Any) -> str | None:
    return str(request.dataset_id)


def _manifest_dataset(message: Any) -> str | None:
    # UploadRaw: the first message carries the manifest; without one the servicer refuses.
    if message.WhichOneof("payload") != "manifest":
        return None
    return str(message.manifest.dataset_id)


_WRITERS = frozenset({Role.INGEST, Role.ADMIN})
_READERS = frozenset({Role.READ, Role.ADMIN})
_ADMINS = frozenset({Role.ADMIN})

RULES: Mapping[str, MethodRule] = {
    _method(ingest_pb2, "IngestService", "Ingest"): MethodRule(_WRITERS, _dataset_id),
    _method(ingest_pb2, "IngestService", "UploadRaw"): MethodRule(_WRITERS, _manifest_dataset),
    _method(ingest_pb2, "IngestService", "DeclareTable"): MethodRule(_WRITERS, _dataset_id),
    _method(reader_pb2, "ReaderService", "ReadRange"): MethodRule(_READERS, _dataset_id),
    _method(reader_pb2, "ReaderService", "GetStats"): MethodRule(
        _ADMINS, _dataset_id, empty_means_all=True
    ),
    _method(archiver_pb2, "ArchiverService", "Archive"): MethodRule(
        _ADMINS, _dataset_id, empty_means_all=True
    ),
    _method(archiver_pb2, "ArchiverService", "PurgeDataset"): MethodRule(_ADMINS, _dataset_id),
    _method(archiver_pb2, "ArchiverService", "DeleteRows"): MethodRule(_ADMINS, _dataset_id),
    _method(archiver_pb2, "ArchiverService", "EnforceRetention"): MethodRule(
        _ADMINS, _dataset_id, empty_means_all=True
    ),
    _method(compactor_pb2, "CompactorService", "Compact"): MethodRule(
        _ADMINS, _dataset_id, empty_means_all=True
    ),
}
_UNLISTED = MethodRule(_ADMINS, lambda request: "", empty_means_all=True)


def _short(method: str) -> str:
    return method.rsplit("/", 1)[-1]


class Grant:
    """What one admitted call may touch."""

    def __init__(self, method: str, rule: MethodRule | None, token: TokenEntry | None) -> None:
        self.method = method
        self._rule = rule
        self.token = token

    @property
    def principal(self) -> str | None:
        return None if self.token is None else self.token.name

    def check(self, request: Any) -> None:
        """Refuse a request naming a dataset outside the token's (PERMISSION_DENIED)."""
        if self._rule is None or self.token is None:
            return
        dataset = self._rule.dataset(request)
        if dataset is None or (dataset == "" and not self._rule.empty_means_all):
            return
        if dataset == "":
            if not self.token.all_datasets:
                raise PermissionDenied(
                    f"token {self.token.name!r} may not call {_short(self.method)} for every "
                    "dataset: name a dataset_id it may touch"
                )
        elif not self.token.may_touch(dataset):
            raise PermissionDenied(f"token {self.token.name!r} may not touch dataset {dataset!r}")


OPEN = Grant("", None, None)


def bearer_token(metadata: Metadata | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


class AccessControl:
    def __init__(self, tokens: Mapping[str, TokenEntry]) -> None:
        self._tokens = dict(tokens)

    def admit(self, method: str, metadata: Metadata | None) -> Grant:
        """The call's grant; UNAUTHENTICATED without a known token, PERMISSION_DENIED for a
        role that may not call ``method``."""
        service = method.strip("/").split("/", 1)[0]
        if service in OPEN_SERVICES:
            return OPEN
        token = bearer_token(metadata)
        if token is None:
            raise Unauthenticated(
                "this server needs a bearer token: send the metadata "
                "'authorization: Bearer <token>'"
            )
        entry = self._tokens.get(hash_token(token))
        if entry is None:
            raise Unauthenticated("unknown bearer token")
        rule = RULES.get(method, _UNLISTED)
        if not entry.roles & rule.roles:
            needed = " or ".join(sorted(r.value for r in rule.roles))
            held = ", ".join(sorted(r.value for r in entry.roles))
            raise PermissionDenied(
                f"token {entry.name!r} (role {held}) may not call {_short(method)}: "
                f"it needs the role {needed}"
            )
        return Grant(method, rule, entry)
