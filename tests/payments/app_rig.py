"""A real Tornado app with the payment callbacks on 127.0.0.1, and an HTTP client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from config.model import Site
from server.clock import Clock
from server.prepaid.ledger import Ledger
from server.prepaid.payments import MerchantKeys, SettlementWorkers, callback_routes


@dataclass
class PaymentApp:
    """A running app: its base URL and a client that does not raise on 4xx/5xx."""

    base: str
    client: AsyncHTTPClient

    async def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> HTTPResponse:
        response: HTTPResponse = await self.client.fetch(
            self.base + path,
            method="POST",
            body=body,
            headers=headers or {},
            raise_error=False,
            request_timeout=60,
        )
        return response


@asynccontextmanager
async def payment_app(
    site: Site,
    db_url: str,
    clock: Clock,
    *,
    keys: MerchantKeys | None = None,
    workers: int = 4,
    max_clients: int = 10,
) -> AsyncIterator[PaymentApp]:
    """Serve the callbacks of `site` until the block ends, then close everything."""
    settlement = SettlementWorkers(
        db_url, lambda conn: Ledger(conn, clock=clock), workers=workers, clock=clock
    )
    app = Application(callback_routes(site, settlement, keys=keys), xsrf_cookies=True)
    # A backlog for a thousand connections arriving at once (the default is 128).
    sockets = bind_sockets(0, "127.0.0.1", backlog=2048)
    server = HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    client = AsyncHTTPClient(force_instance=True, max_clients=max_clients)
    try:
        yield PaymentApp(f"http://127.0.0.1:{port}", client)
    finally:
        client.close()
        server.stop()
        await server.close_all_connections()
        settlement.close()
