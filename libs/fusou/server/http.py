"""The HTTP port (FUSOU_METRICS_PORT), served on the event loop: Prometheus's ``/metrics``,
open as scrapers expect, and the pages hosted services hand the server (the dashboard),
behind the bearer tokens when authentication is on.

A browser cannot send an ``authorization`` header on its own, so a page also takes the token
from a cookie that its login form sets (HttpOnly, SameSite=Strict, scoped to the pages'
path); curl and scripts send the header as a gRPC client does. A viewer is admitted by the
rule of the RPC the pages mirror (the dashboard: GetStats), and sees only the datasets the
token may touch."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fusou.auth.tokens import TokenEntry
from fusou.config import ConfigError
from fusou.errors import PermissionDenied, Unauthenticated
from fusou.server.metrics import REGISTRY


class _Granted(Protocol):
    token: TokenEntry | None


class AccessControl(Protocol):
    """What admits a call (``fusou.api.access.AccessControl``): UNAUTHENTICATED or
    PERMISSION_DENIED errors, or the grant with the caller's token."""

    def admit(
        self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None
    ) -> _Granted: ...


log = logging.getLogger(__name__)

COOKIE = "fusou_token"
COOKIE_MAX_AGE_S = 12 * 3600
_LOGIN_FIELD = "token"
# No framing (clickjacking), no inline script, no sources but this port.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page, and which datasets they may see."""

    # The token's name; None when authentication is off.
    name: str | None
    may_see: Callable[[str], bool]
    # May see every dataset ("*"): figures that mix datasets are shown only to such viewers.
    sees_all: bool


EVERYONE = Viewer(None, lambda _dataset: True, True)

PageHandler = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Pages:
    """A set of read-only pages under one path."""

    prefix: str  # e.g. "/dashboard"
    title: str
    # The RPC ("/pkg.Service/Method") whose access rule admits a viewer.
    rule_method: str
    # By path below the prefix ("" is the prefix itself): what viewers see.
    handlers: Mapping[str, PageHandler]
    # By path below the prefix: files that hold no data (scripts), served to anyone.
    assets: Mapping[str, Callable[[], Asset]] = field(default_factory=dict)
    # Runs while the port is served (sampling, say); cancelled when it closes.
    background: Callable[[], Coroutine[Any, Any, None]] | None = None


def _secured(response: web.StreamResponse) -> web.StreamResponse:
    for key, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


def _login_page(pages: Pages, status: int, message: str) -> web.Response:
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(pages.title)}: sign in</title>
</head><body style="font-family: sans-serif; max-width: 32em; margin: 4em auto">
<h1>{html.escape(pages.title)}</h1>
<p id="message">{html.escape(message)}</p>
<form method="post" action="{pages.prefix}/login">
<label>Bearer token <input type="password" name="{_LOGIN_FIELD}" autocomplete="off" size="50"
 autofocus></label>
<button type="submit">Sign in</button>
</form></body></html>"""
    response = web.Response(status=status, text=body, content_type="text/html")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="fusou"'
    return response


def _token_of(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
    return request.cookies.get(COOKIE)


def _admit(access: AccessControl | None, pages: Pages, token: str | None) -> Viewer:
    """The viewer a token is; Unauthenticated or PermissionDenied as for the RPC."""
    if access is None:
        return EVERYONE
    grant = access.admit(
        pages.rule_method, [] if token is None else [("authorization", f"Bearer {token}")]
    )
    entry = grant.token
    assert entry is not None
    return Viewer(entry.name, entry.may_touch, entry.all_datasets)


def _guarded(pages: Pages, handler: PageHandler, access: AccessControl | None) -> Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        try:
            viewer = _admit(access, pages, _token_of(request))
        except Unauthenticated as exc:
            response = _login_page(pages, 401, str(exc))
            if COOKIE in request.cookies:
                response.del_cookie(COOKIE, path=pages.prefix)
            return _secured(response)
        except PermissionDenied as exc:
            return _secured(_login_page(pages, 403, str(exc)))
        return _secured(await handler(request, viewer))

    return serve


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _login(pages: Pages, access: AccessControl | None) -> Handler:
    async def login(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        token = form.get(_LOGIN_FIELD)
        if not isinstance(token, str) or not token.strip():
            return _secured(_login_page(pages, 400, "enter a bearer token"))
        try:
            _admit(access, pages, token.strip())
        except Unauthenticated as exc:
            return _secured(_login_page(pages, 401, str(exc)))
        except PermissionDenied as exc:
            return _secured(_login_page(pages, 403, str(exc)))
        response = _see_other(pages.prefix)
        response.set_cookie(
            COOKIE,
            token.strip(),
            path=pages.prefix,
            max_age=COOKIE_MAX_AGE_S,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return _secured(response)

    return login


def _logout(pages: Pages) -> Handler:
    async def logout(_request: web.Request) -> web.StreamResponse:
        response = _see_other(pages.prefix)
        response.del_cookie(COOKIE, path=pages.prefix)
        return _secured(response)

    return logout


def _asset(make: Callable[[], Asset]) -> Handler:
    async def serve(_request: web.Request) -> web.StreamResponse:
        asset = make()
        response = web.Response(body=asset.body, content_type=asset.content_type)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    return serve


async def _metrics(_request: web.Request) -> web.StreamResponse:
    # Collecting reads /proc and every series: off the loop that answers health checks.
    body = await asyncio.to_thread(generate_latest, REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def application(pages: Sequence[Pages], access: AccessControl | None) -> web.Application:
    app = web.Application()
    app.router.add_get("/metrics", _metrics)
    for page in pages:
        for path, handler in page.handlers.items():
            app.router.add_get(page.prefix + path, _guarded(page, handler, access))
        for path, make in page.assets.items():
            app.router.add_get(page.prefix + path, _asset(make))
        app.router.add_post(page.prefix + "/login", _login(page, access))
        app.router.add_post(page.prefix + "/logout", _logout(page))
    if pages:
        first = pages[0].prefix

        async def index(_request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(first)

        app.router.add_get("/", index)
    return app


@dataclass
class HttpPort:
    runner: web.AppRunner
    port: int
    tasks: list[asyncio.Task[None]]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.runner.cleanup()


def _bind(host: str, port: int) -> socket.socket:
    host = host.strip("[]")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        raise ConfigError(f"FUSOU_METRICS_PORT: cannot listen on {host}:{port} ({exc})") from None
    return sock


async def serve(
    host: str, port: int, pages: Sequence[Pages] = (), access: AccessControl | None = None
) -> HttpPort:
    """Serve ``/metrics`` and ``pages`` on ``host:port`` (0 picks a free port)."""
    sock = _bind(host, port)
    runner = web.AppRunner(application(pages, access), access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        raise
    tasks = [asyncio.create_task(p.background()) for p in pages if p.background is not None]
    return HttpPort(runner, int(sock.getsockname()[1]), tasks)
