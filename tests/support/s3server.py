"""An S3-compatible server (moto) running in this process, for tests that need real S3 calls."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3  # type: ignore[import-untyped, unused-ignore]
from moto.server import ThreadedMotoServer

REGION = "us-east-1"

# Dummy credentials: botocore refuses to sign without some, and moto accepts any.
_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "fusou-test",
    "AWS_SECRET_ACCESS_KEY": "fusou-test-secret",
    "AWS_DEFAULT_REGION": REGION,
}
# Anything that could send the requests elsewhere or sign them with real credentials.
_REMOVED = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


class S3Server:
    """A started moto server and one bucket created on it."""

    def __init__(
        self, endpoint_url: str, region: str = REGION, server: ThreadedMotoServer | None = None
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.server = server
        self.bucket = self.new_bucket()

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The server down (connections to it refused), then up again on the same port with
        the same buckets and objects, which moto keeps in this process."""
        assert self.server is not None, "only a server started here can be stopped"
        host, port = self.server.get_host_and_port()
        self.server.stop()
        try:
            yield
        finally:
            self.server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
            self.server.start()

    def client(self) -> Any:
        """A plain (synchronous) boto3 S3 client for this server, to check what a test did."""
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region)

    def new_bucket(self) -> str:
        """Create a bucket with a name no other test uses, and return the name."""
        name = f"fusou-test-{uuid.uuid4().hex[:20]}"
        self.client().create_bucket(Bucket=name)
        return name


@contextmanager
def _environment() -> Iterator[None]:
    names = (*_ENVIRONMENT, *_REMOVED, "NO_PROXY", "no_proxy")
    saved = {name: os.environ.get(name) for name in names}
    try:
        os.environ.update(_ENVIRONMENT)
        for name in _REMOVED:
            os.environ.pop(name, None)
        # A proxy configured for the machine must not intercept requests to the local server.
        for name in ("NO_PROXY", "no_proxy"):
            current = os.environ.get(name)
            os.environ[name] = f"{current},127.0.0.1" if current else "127.0.0.1"
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """Start moto's S3 server on an ephemeral 127.0.0.1 port; stop it on exit.

    The credentials it needs are placed in ``os.environ`` for as long as the server runs, so
    clients built with botocore's default credential chain work unchanged.
    """
    # werkzeug logs every request at INFO, which would bury a failing test's own output.
    werkzeug_log = logging.getLogger("werkzeug")
    saved_level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)
    try:
        with _environment():
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            s3: S3Server | None = None
            try:
                host, port = server.get_host_and_port()
                s3 = S3Server(f"http://{host}:{port}", server=server)
                yield s3
            finally:
                # The one running now: ``stopped`` replaces it.
                (s3.server if s3 is not None and s3.server is not None else server).stop()
    finally:
        werkzeug_log.setLevel(saved_level)
