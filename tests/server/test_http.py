"""The HTTP port over a real connection: /metrics open as scrapers expect, pages behind the
bearer tokens (a header, or the cookie their login form sets), admitted by the rule of the RPC
they mirror and limited to the token's datasets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from fusou.api.access import AccessControl
from fusou.auth.tokens import Role, TokenEntry, hash_token, new_token
from fusou.server.http import COOKIE, Asset, HttpPort, Pages, Viewer, serve

RULE = "/fusou.reader.v1.ReaderService/GetStats"  # admins of the datasets
ADMIN_A, ADMIN_ALL, READER = new_token(), new_token(), new_token()
TOKENS = {
    hash_token(ADMIN_A): TokenEntry(
        "admin-a", hash_token(ADMIN_A), frozenset({Role.ADMIN}), ("a*",)
    ),
    hash_token(ADMIN_ALL): TokenEntry(
        "root", hash_token(ADMIN_ALL), frozenset({Role.ADMIN}), ("*",)
    ),
    hash_token(READER): TokenEntry("reader", hash_token(READER), frozenset({Role.READ}), ("*",)),
}


class Recorder:
    def __init__(self) -> None:
        self.viewers: list[Viewer] = []

    async def page(self, _request: web.Request, viewer: Viewer) -> web.StreamResponse:
        self.viewers.append(viewer)
        return web.Response(text="the figures", content_type="text/html")


def pages(recorder: Recorder) -> Pages:
    return Pages(
        prefix="/board",
        title="Board",
        rule_method=RULE,
        handlers={"": recorder.page},
        assets={"/app.js": lambda: Asset(b"console.log(1)", "application/javascript")},
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def port(recorder: Recorder) -> AsyncIterator[HttpPort]:
    served = await serve("127.0.0.1", 0, [pages(recorder)], AccessControl(TOKENS))
    try:
        yield served
    finally:
        await served.close()


@pytest.fixture
async def client(port: HttpPort) -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep cookies of an IP address host.
    async with aiohttp.ClientSession(
        f"http://127.0.0.1:{port.port}", cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        yield session


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_metrics_and_assets_are_open(client: aiohttp.ClientSession) -> None:
    async with client.get("/metrics") as r:
        assert r.status == 200
        assert "process_resident_memory_bytes" in await r.text()
    async with client.get("/board/app.js") as r:
        assert r.status == 200
        assert await r.read() == b"console.log(1)"


async def test_a_page_without_a_token_asks_for_one(
    client: aiohttp.ClientSession, recorder: Recorder
) -> None:
    for headers in ({}, bearer("fusou_not-a-token"), {"Authorization": "Basic eDp5"}):
        async with client.get("/board", headers=headers) as r:
            assert r.status == 401, headers
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            text = await r.text()
            assert 'action="/board/login"' in text
            assert "the figures" not in text
    assert recorder.viewers == []


async def test_a_token_without_the_role_is_refused(
    client: aiohttp.ClientSession, recorder: Recorder
) -> None:
    async with client.get("/board", headers=bearer(READER)) as r:
        assert r.status == 403
        assert "needs the role admin" in await r.text()
    assert recorder.viewers == []


async def test_a_viewer_sees_the_datasets_of_the_token(
    client: aiohttp.ClientSession, recorder: Recorder
) -> None:
    async with client.get("/board", headers=bearer(ADMIN_A)) as r:
        assert r.status == 200
        assert await r.text() == "the figures"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["Cache-Control"] == "no-store"
    async with client.get("/board", headers=bearer(ADMIN_ALL)) as r:
        assert r.status == 200
    limited, everything = recorder.viewers
    assert limited.name == "admin-a"
    assert limited.may_see("a1") and not limited.may_see("b1")
    assert not limited.sees_all
    assert everything.sees_all and everything.may_see("b1")


async def test_login_sets_a_strict_cookie_and_logout_clears_it(
    client: aiohttp.ClientSession, recorder: Recorder
) -> None:
    async with client.post("/board/login", data={"token": "fusou_wrong"}) as r:
        assert r.status == 401
        assert "unknown bearer token" in await r.text()
        assert COOKIE not in r.cookies
    async with client.post("/board/login", data={"token": READER}) as r:
        assert r.status == 403
        assert COOKIE not in r.cookies
    async with client.post("/board/login", data={"token": ""}) as r:
        assert r.status == 400
    async with client.post(
        "/board/login", data={"token": f" {ADMIN_A} "}, allow_redirects=False
    ) as r:
        assert r.status == 303
        assert r.headers["Location"] == "/board"
        cookie = r.cookies[COOKIE]
        assert cookie.value == ADMIN_A
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert cookie["path"] == "/board"
    async with client.get("/board") as r:
        assert r.status == 200
    assert [v.name for v in recorder.viewers] == ["admin-a"]
    async with client.post("/board/logout", allow_redirects=False) as r:
        assert r.status == 303
    async with client.get("/board") as r:
        assert r.status == 401


async def test_without_tokens_everyone_sees_everything(recorder: Recorder) -> None:
    served = await serve("127.0.0.1", 0, [pages(recorder)], None)
    try:
        async with (
            aiohttp.ClientSession(f"http://127.0.0.1:{served.port}") as session,
            session.get("/", allow_redirects=False) as r,
        ):
            assert r.status == 302
            assert r.headers["Location"] == "/board"
            async with session.get("/board") as page:
                assert page.status == 200
    finally:
        await served.close()
    (viewer,) = recorder.viewers
    assert viewer.name is None and viewer.sees_all


async def test_a_port_in_use_is_a_configuration_error() -> None:
    from fusou.config import ConfigError

    first = await serve("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match="FUSOU_METRICS_PORT"):
            await serve("127.0.0.1", first.port)
    finally:
        await first.close()
