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
import html
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from yarl import URL

from fusou.auth.tokens import TokenEntry
from fusou.config import ConfigError
from fusou.errors import PermissionDenied, Unauthenticated
from fusou.server.metrics import REGISTRY, TABLES, TABLES_RULE


class _Granted(Protocol):
    token: TokenEntry | None


class AccessControl(Protocol):
    """What admits a call (``fusou.api.access.AccessControl``): UNAUTHENTICATED or
    PERMISSION_DENIED errors, or the grant with the caller's token."""

    def admit(self, method: str, metadata: Sequence[tuple[str, str | bytes]]) -> _Granted: ...


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


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    # On every response as it is sent: errors and aiohttp's own 404s and 500s included.
    for key, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(scheme: str, host: str) -> tuple[str, str, int | None]:
    url = URL(f"{scheme.lower()}://{host}")
    port = url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme)
    return url.scheme, (url.host or "").lower(), port


def _forwarded(request: web.Request, header: str) -> str | None:
    # A proxy may list several hops: the first is the client's.
    value = request.headers.get(header)
    return value.split(",")[0].strip() if value else None


def _behind_tls(request: web.Request) -> bool:
    # A TLS-terminating ingress or proxy in front of this plaintext port says so.
    return request.secure or (_forwarded(request, "X-Forwarded-Proto") or "").lower() == "https"


def _same_origin(request: web.Request) -> bool:
    """A form posted from this port's own pages: a page elsewhere must not sign a browser in
    with its token, nor out. Browsers send Origin with every POST (or at least
    Sec-Fetch-Site); a request with neither is not from a browser (curl, scripts)."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
    try:
        claimed = _origin_of(*origin.split("://", 1))
    except (TypeError, ValueError):
        return False
    host = _forwarded(request, "X-Forwarded-Host") or request.host
    schemes = {request.scheme, "https" if _behind_tls(request) else request.scheme}
    return any(claimed == _origin_of(scheme, host) for scheme in schemes)


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


Metadata = list[tuple[str, str | bytes]]


def _credentials(request: web.Request) -> tuple[Metadata, bool]:
    """The request's credentials as a gRPC call's metadata (``fusou.api.access`` reads the
    bearer token from it), and whether they came from the cookie."""
    header = request.headers.get("Authorization")
    if header is not None:
        return [("authorization", header)], False
    cookie = request.cookies.get(COOKIE)
    if cookie is None:
        return [], False
    return [("authorization", f"Bearer {cookie}")], True


def _admit(access: AccessControl | None, rule_method: str, metadata: Metadata) -> Viewer:
    """The viewer the credentials are; Unauthenticated or PermissionDenied as for the RPC."""
    if access is None:
        return EVERYONE
    entry = access.admit(rule_method, metadata).token
    assert entry is not None  # a call admitted with a token
    return Viewer(entry.name, entry.may_touch, entry.all_datasets)


def _guarded(pages: Pages, handler: PageHandler, access: AccessControl | None) -> Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        metadata, from_cookie = _credentials(request)
        try:
            viewer = _admit(access, pages.rule_method, metadata)
        except Unauthenticated as exc:
            response = _login_page(pages, 401, str(exc))
            if from_cookie:
                response.del_cookie(COOKIE, path=pages.prefix)
            return response
        except PermissionDenied as exc:
            return _login_page(pages, 403, str(exc))
        return await handler(request, viewer)

    return serve


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _login(pages: Pages, access: AccessControl | None) -> Handler:
    async def login(request: web.Request) -> web.StreamResponse:
        if not _same_origin(request):
            return _login_page(pages, 403, "sign in from this dashboard's own page")
        form = await request.post()
        token = form.get(_LOGIN_FIELD)
        if not isinstance(token, str) or not token.strip():
            return _login_page(pages, 400, "enter a bearer token")
        try:
            _admit(access, pages.rule_method, [("authorization", f"Bearer {token.strip()}")])
        except Unauthenticated as exc:
            return _login_page(pages, 401, str(exc))
        except PermissionDenied as exc:
            return _login_page(pages, 403, str(exc))
        response = _see_other(pages.prefix)
        response.set_cookie(
            COOKIE,
            token.strip(),
            path=pages.prefix,
            max_age=COOKIE_MAX_AGE_S,
            httponly=True,
            samesite="Strict",
            secure=_behind_tls(request),
        )
        return response

    return login


def _logout(pages: Pages) -> Handler:
    async def logout(request: web.Request) -> web.StreamResponse:
        if not _same_origin(request):
            return _login_page(pages, 403, "sign out from this dashboard's own page")
        response = _see_other(pages.prefix)
        response.del_cookie(COOKIE, path=pages.prefix)
        return response

    return logout


def _asset(make: Callable[[], Asset]) -> Handler:
    async def serve(_request: web.Request) -> web.StreamResponse:
        asset = await asyncio.to_thread(make)  # the first call reads (and encodes) a file
        response = web.Response(body=asset.body, content_type=asset.content_type)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    return serve


@dataclass(frozen=True)
class _Collected:
    """What one scrape answers: some collectors' series (for prometheus_client's encoders)."""

    collect: Callable[[], Iterable[Metric]]


async def _exposition(request: web.Request, collected: _Collected) -> web.Response:
    # The text format, or OpenMetrics when the scraper asks for it (as prometheus_client's own
    # server does). Collecting reads /proc and every series: off the loop.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = await asyncio.to_thread(encoder, collected)
    response = web.Response(body=body, headers={"Content-Type": content_type})
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        response.enable_compression(web.ContentCoding.gzip)
    return response


def _metrics(access: AccessControl | None) -> Handler:
    """``/metrics``, open to scrapers. Without tokens configured it holds the per-table series
    too; with them, those (which name datasets) are on ``/metrics/tables``, behind a token."""
    collect: Callable[[], Iterable[Metric]] = REGISTRY.collect
    if access is None:
        collect = lambda: [*REGISTRY.collect(), *TABLES.collect()]  # noqa: E731

    async def metrics(request: web.Request) -> web.StreamResponse:
        return await _exposition(request, _Collected(collect))

    return metrics


def _table_metrics(access: AccessControl | None) -> Handler:
    """``/metrics/tables``: the per-table series of the datasets the bearer token may see,
    admitted by the rule of GetStats (Prometheus sends the token: ``authorization`` in the
    scrape job)."""

    async def tables(request: web.Request) -> web.StreamResponse:
        metadata, _ = _credentials(request)
        try:
            viewer = _admit(access, TABLES_RULE, metadata)
        except Unauthenticated as exc:
            return web.Response(status=401, text=f"{exc}\n", headers={"WWW-Authenticate": "Bearer"})
        except PermissionDenied as exc:
            return web.Response(status=403, text=f"{exc}\n")
        return await _exposition(
            request,
            _Collected(lambda: TABLES.collect_for(viewer.may_see, sees_all=viewer.sees_all)),
        )

    return tables


def application(pages: Sequence[Pages], access: AccessControl | None) -> web.Application:
    app = web.Application()
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/metrics", _metrics(access))
    app.router.add_get("/metrics/tables", _table_metrics(access))
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
        try:
            for task in self.tasks:
                task.cancel()
            # A cancellation of this call still propagates (gather is cancelled with it).
            results = await asyncio.gather(*self.tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    log.error("a background task of the HTTP port failed: %r", result)
        finally:
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
    runner: web.AppRunner | None = None
    try:
        # Open page requests get this long once the server stops (the pods' grace is short).
        runner = web.AppRunner(application(pages, access), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        if runner is not None:
            await runner.cleanup()
        sock.close()
        raise
    tasks = [asyncio.create_task(p.background()) for p in pages if p.background is not None]
    return HttpPort(runner, int(sock.getsockname()[1]), tasks)
