"""The process's web application on [services].hmi_listen: health and payment callbacks.

The HMI grows on this same Tornado application; for now it serves `GET /healthz` and the
WeChat Pay / Alipay notify endpoints of every merchant (`callback_routes`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg2
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.routing import URLSpec
from tornado.web import Application, RequestHandler

from config.values import Endpoint
from server.tags import CommState, TagTable

log = logging.getLogger(__name__)

DB_PROBE_TIMEOUT_S = 2
OK = 200
UNAVAILABLE = 503


def database_reachable(db_url: str) -> bool:
    """Whether PostgreSQL answers `SELECT 1` within a short timeout."""
    try:
        conn = psycopg2.connect(db_url, connect_timeout=DB_PROBE_TIMEOUT_S)
    except psycopg2.Error:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)
    except psycopg2.Error:
        return False
    finally:
        conn.close()


def meters_online(table: TagTable) -> dict[str, int]:
    """Meters online, offline and not yet heard from, out of the total, from the tag table."""
    comm = np.asarray(table.comm)
    return {
        "online": int(np.count_nonzero(comm == CommState.ONLINE)),
        "offline": int(np.count_nonzero(comm == CommState.OFFLINE)),
        "unknown": int(np.count_nonzero(comm == CommState.UNKNOWN)),
        "total": len(comm),
    }


class HealthHandler(RequestHandler):
    """`GET /healthz`: 200 with the database and meter counts, 503 when the database is away."""

    def initialize(self, db_url: str, table: TagTable) -> None:
        """Bind the database URL and the live tag table."""
        self.db_url = db_url
        self.table = table

    async def get(self) -> None:
        """Answer the health document as JSON."""
        reachable = await asyncio.to_thread(database_reachable, self.db_url)
        body = {"db": {"reachable": reachable}, "meters": meters_online(self.table)}
        self.set_status(OK if reachable else UNAVAILABLE)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))


def build_application(db_url: str, table: TagTable, routes: Sequence[URLSpec] = ()) -> Application:
    """The Tornado application: `/healthz` and the given routes (payment callbacks)."""
    health: dict[str, Any] = {"db_url": db_url, "table": table}
    handlers: list[Any] = [URLSpec(r"/healthz$", HealthHandler, health), *routes]
    return Application(handlers, xsrf_cookies=True, compress_response=True)


class WebApp:
    """The web application listening on one endpoint; `start` binds, `stop` closes."""

    def __init__(
        self,
        listen: Endpoint,
        db_url: str,
        table: TagTable,
        routes: Sequence[URLSpec] = (),
    ) -> None:
        """Serve `/healthz` and `routes` on `listen`."""
        self.listen = listen
        self.application = build_application(db_url, table, routes)
        self._server: HTTPServer | None = None
        self._sockets: list[socket.socket] = []

    @property
    def port(self) -> int:
        """The bound port (useful when listening on port 0)."""
        if not self._sockets:
            raise RuntimeError("the web application is not listening")
        port: int = self._sockets[0].getsockname()[1]
        return port

    def start(self) -> None:
        """Bind the listening socket(s) and serve; OSError when the port is taken."""
        sockets = bind_sockets(self.listen.port, self.listen.host, reuse_port=False)
        server = HTTPServer(self.application, xheaders=False)
        server.add_sockets(sockets)
        self._sockets = sockets
        self._server = server
        log.info("web application listening on %s (port %d)", self.listen, self.port)

    async def stop(self) -> None:
        """Stop listening and close the open connections."""
        if self._server is not None:
            self._server.stop()  # closes the listening sockets
            await self._server.close_all_connections()
            self._server = None
            self._sockets = []
