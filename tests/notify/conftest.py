"""Real local receivers for notification tests: an HTTP endpoint and an SMTP server."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from alarms.notify.events import AlarmEvent
from config import load_site
from config.model import NotifySettings, OnCallShift, Route, Site, SiteNotify
from server.clock import ManualClock

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "small"
# 2023-11-14 22:13:20 UTC = Wednesday 2023-11-15 06:13:20 in Asia/Shanghai
START = 1_700_000_000.0


class HttpReceiver:
    """An HTTP server in a thread that records JSON POSTs and answers with queued statuses."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, object]] = []
        self.statuses: list[int] = []
        self.reply = b"{}"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.bodies.append((self.path, json.loads(raw)))
                self.send_response(status)
                self.send_header("Content-Length", str(len(receiver.reply)))
                self.end_headers()
                self.wfile.write(receiver.reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="http-receiver")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def on(self, path: str) -> list[object]:
        return [body for where, body in self.bodies if where == path]


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        receiver.thread.join()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass
class SmtpServer:
    port: int
    client_tls: ssl.SSLContext
    mails: list[tuple[str, list[str], bytes]]
    logins: list[tuple[str, str]]
    refuse: list[int]


class Inbox:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, smtp, session, envelope, address, options):
        if self.server.refuse:
            code = self.server.refuse.pop(0)
            return f"{code} mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp, session, envelope):
        self.server.mails.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1: STARTTLS required, AUTH LOGIN/PLAIN as parkgrid / s3cret."""
    cert, key = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server = SmtpServer(free_port(), ssl.create_default_context(cafile=str(cert)), [], [], [])

    def authenticator(smtp_, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login,
            auth_data.password,
        ) == (b"parkgrid", b"s3cret")
        if ok:
            server.logins.append((mechanism, auth_data.login.decode()))
        return AuthResult(success=ok)

    controller = Controller(
        Inbox(server),
        hostname="127.0.0.1",
        port=server.port,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


def example_site() -> Site:
    return load_site(EXAMPLE, env={})


def site_with(
    routes: tuple[Route, ...],
    oncall: tuple[OnCallShift, ...] = (),
    **settings: Any,
) -> Site:
    """The example site with other routes, rota and notify settings."""
    base = example_site()
    notify = SiteNotify(dataclasses.replace(NotifySettings(), **settings), oncall)
    return dataclasses.replace(base, routes=routes, notify=notify)


def hook(route_id: str, url: str, **kwargs: object) -> Route:
    fields: dict[str, object] = {"format": "json", "areas": (), "min_priority": "low"}
    fields.update(kwargs)
    return Route(id=route_id, channel="webhook", target=url, **fields)  # type: ignore[arg-type]


def event(
    kind: str = "phase_loss",
    target: str = "E0001",
    *,
    state: str = "raised",
    area: str = "ENT",
    gateway: str | None = "GW001",
    priority: str = "urgent",
    at: float = START,
    target_kind: str = "meter",
) -> AlarmEvent:
    return AlarmEvent(
        kind=kind,
        target=target,
        target_kind=target_kind,
        area=area,
        gateway=gateway,
        priority=priority,
        state=state,
        at=at,
        text=f"电表 {target}（测试）",
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)
