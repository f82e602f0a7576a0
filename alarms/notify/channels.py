"""The delivery channels: webhook (JSON, WeCom, DingTalk), e-mail over SMTP, and HTTP SMS."""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from alarms.notify.messages import Notice
from alarms.notify.routing import Recipient
from config.model import NotifySettings

HTTP_TIMEOUT_S = 10.0
SMTP_TIMEOUT_S = 20.0
JsonObject = dict[str, object]


class DeliveryFailed(Exception):
    """A message did not reach its recipient; the text says why (for the attempt log)."""


class Channel(Protocol):
    """Sends one notice to one recipient, or raises DeliveryFailed."""

    async def deliver(self, recipient: Recipient, notice: Notice) -> None:
        """Send `notice` to `recipient`."""
        ...


def webhook_body(notice: Notice, form: str | None, mentions: tuple[str, ...]) -> JsonObject:
    """The JSON body of a webhook: plain JSON, or a WeCom / DingTalk robot markdown message."""
    if form == "wecom":
        content = [f"### {notice.title}", *(f"> {line}" for line in notice.lines)]
        if mentions:
            content.append(f"值班：{'、'.join(mentions)}")
        return {"msgtype": "markdown", "markdown": {"content": "\n".join(content)}}
    if form == "dingtalk":
        text = [f"### {notice.title}", "", *(f"- {line}" for line in notice.lines)]
        if mentions:
            text += ["", " ".join(f"@{phone}" for phone in mentions)]
        return {
            "msgtype": "markdown",
            "markdown": {"title": notice.title, "text": "\n".join(text)},
            "at": {"atMobiles": list(mentions), "isAtAll": False},
        }
    return {
        "title": notice.title,
        "text": notice.text,
        "kind": notice.kind,
        "alarms": [{"kind": kind, "target": target} for kind, target in notice.keys],
        "mentions": list(mentions),
    }


def sms_body(phone: str, notice: Notice) -> JsonObject:
    """The JSON body for a generic HTTP SMS gateway: one phone, plain text."""
    return {"to": phone, "text": notice.text}


def _post_json(url: str, body: JsonObject, robot: bool) -> None:
    """POST `body`; anything but 2xx (or a robot's non-zero errcode) is DeliveryFailed."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - routes only hold http(s) URLs
        url, data=data, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
            reply = response.read(65536)
    except urllib.error.HTTPError as problem:
        problem.close()
        raise DeliveryFailed(f"HTTP {problem.code} from {url}") from None
    except (urllib.error.URLError, OSError) as problem:
        reason = getattr(problem, "reason", problem)
        raise DeliveryFailed(f"cannot reach {url}: {reason}") from None
    if robot:
        try:
            answer = json.loads(reply or b"{}")
        except ValueError:
            raise DeliveryFailed(f"{url} answered with non-JSON {reply[:80]!r}") from None
        if isinstance(answer, dict) and answer.get("errcode", 0) != 0:
            raise DeliveryFailed(f"{url} refused: errcode {answer.get('errcode')} {answer}")


class WebhookChannel:
    """POSTs JSON to a webhook URL (urllib in a worker thread)."""

    async def deliver(self, recipient: Recipient, notice: Notice) -> None:
        """Send `notice` to the recipient's URL in its route's format."""
        body = webhook_body(notice, recipient.format, recipient.mentions)
        robot = recipient.format in ("wecom", "dingtalk")
        await asyncio.to_thread(_post_json, recipient.endpoint, body, robot)


class SmsChannel:
    """POSTs `{"to", "text"}` to a generic HTTP SMS gateway."""

    async def deliver(self, recipient: Recipient, notice: Notice) -> None:
        """Text `notice` to the recipient's phone through its route's gateway URL."""
        body = sms_body(recipient.address, notice)
        await asyncio.to_thread(_post_json, recipient.endpoint, body, False)


class EmailChannel:
    """Sends mail over SMTP (smtplib in a worker thread), with STARTTLS and AUTH if set."""

    def __init__(
        self,
        settings: NotifySettings,
        tls: ssl.SSLContext | None = None,
        timeout_s: float = SMTP_TIMEOUT_S,
    ) -> None:
        """Use the SMTP server of `settings`; `tls` checks the server (default: system CAs)."""
        self._settings = settings
        self._tls = tls
        self._timeout_s = timeout_s

    def _password(self) -> str:
        path: Path | None = self._settings.smtp_password_file
        if path is None:
            return ""
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as problem:
            raise DeliveryFailed(f"cannot read SMTP password file {path}: {problem}") from None

    def message(self, recipient: Recipient, notice: Notice) -> EmailMessage:
        """The e-mail for `notice`."""
        mail = EmailMessage()
        mail["From"] = self._settings.from_address
        mail["To"] = recipient.address
        mail["Subject"] = notice.title
        mail.set_content(notice.text)
        return mail

    def _send(self, mail: EmailMessage) -> None:
        settings = self._settings
        try:
            server = (settings.smtp_host, settings.smtp_port)
            with smtplib.SMTP(*server, timeout=self._timeout_s) as smtp:
                if settings.smtp_starttls:
                    smtp.starttls(context=self._tls or ssl.create_default_context())
                if settings.smtp_user is not None:
                    smtp.login(settings.smtp_user, self._password())
                smtp.send_message(mail)
        except smtplib.SMTPResponseException as problem:
            error = problem.smtp_error
            text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
            raise DeliveryFailed(f"SMTP {problem.smtp_code} {text}") from None
        except (smtplib.SMTPException, OSError) as problem:
            where = f"{settings.smtp_host}:{settings.smtp_port}"
            raise DeliveryFailed(f"SMTP {where}: {problem}") from None

    async def deliver(self, recipient: Recipient, notice: Notice) -> None:
        """Mail `notice` to the recipient's address."""
        await asyncio.to_thread(self._send, self.message(recipient, notice))


def default_channels(settings: NotifySettings) -> dict[str, Channel]:
    """A channel for each route kind: webhook, email and sms."""
    return {"webhook": WebhookChannel(), "email": EmailChannel(settings), "sms": SmsChannel()}
