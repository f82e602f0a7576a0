"""Channels against real local receivers: SMTP with STARTTLS and AUTH, robot formats, SMS."""

from __future__ import annotations

import os
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from alarms.kinds import AlarmKind
from alarms.notify.channels import EmailChannel
from alarms.notify.events import from_transition
from alarms.notify.notifier import Notifier
from alarms.records import AlarmTransition
from alarms.states import AlarmEvent, AlarmState
from config.model import OnCallShift, Route, Site
from server.clock import ManualClock

from .conftest import SmtpServer, event, example_site, hook, site_with


def mail_site(smtp: SmtpServer, tmp_path: Path, **kwargs: Any) -> Site:
    password = tmp_path / "smtp.password"
    password.write_text("s3cret\n", encoding="utf-8")
    os.chmod(password, 0o600)
    route = Route("mail", "email", "lead@example.com", None, (), "low")
    return site_with(
        (route,),
        smtp_port=smtp.port,
        smtp_starttls=True,
        smtp_user="parkgrid",
        smtp_password_file=password,
        from_address="parkgrid@park.example",
        **kwargs,
    )


def email_notifier(site: Site, clock: ManualClock, smtp: SmtpServer) -> Notifier:
    channels = {"email": EmailChannel(site.notify.settings, tls=smtp.client_tls, timeout_s=3.0)}
    return Notifier(site, clock=clock, channels=channels)


def test_email_over_starttls_with_login(smtp, tmp_path, clock, run):
    notifier = email_notifier(mail_site(smtp, tmp_path), clock, smtp)
    notifier.submit(event())
    run(notifier.tick())
    [(sender, recipients, text)] = smtp.mails
    assert (sender, recipients) == ("parkgrid@park.example", ["lead@example.com"])
    mail = message_from_bytes(text, policy=policy.default)
    assert mail["Subject"] == "【告警】缺相：E0001"
    assert "电表 E0001（测试）" in mail.get_content()
    assert [login for _, login in smtp.logins] == ["parkgrid"]


def test_smtp_refusal_is_retried_then_delivered(smtp, tmp_path, clock, run):
    smtp.refuse[:] = [451]
    notifier = email_notifier(mail_site(smtp, tmp_path, retry_base_s=60), clock, smtp)
    notifier.submit(event())
    run(notifier.tick())
    assert smtp.mails == []
    clock.advance(60)
    run(notifier.tick())
    [message] = notifier.outbox.store.messages()
    assert [a.ok for a in message.attempts] == [False, True]
    assert "451" in message.attempts[0].detail
    assert len(smtp.mails) == 1


def test_wrong_password_is_a_failed_attempt(smtp, tmp_path, clock, run):
    site = mail_site(smtp, tmp_path)
    (tmp_path / "smtp.password").write_text("wrong", encoding="utf-8")
    notifier = email_notifier(site, clock, smtp)
    notifier.submit(event())
    run(notifier.tick())
    [message] = notifier.outbox.store.messages()
    assert message.state == "pending" and not message.attempts[0].ok
    assert smtp.mails == [] and smtp.logins == []


def test_robot_formats_and_sms_bodies(http, clock, run):
    routes = (
        hook("wecom", http.url("/wecom"), format="wecom"),
        hook("ding", http.url("/ding"), format="dingtalk"),
        Route("sms", "sms", http.url("/sms"), None, (), "low", contacts=("13900000000",)),
    )
    whole_week = tuple(range(7))
    shift = OnCallShift("ding", ("13800000001",), whole_week, 0, 1440)
    http.reply = b'{"errcode": 0, "errmsg": "ok"}'
    notifier = Notifier(site_with(routes, (shift,)), clock=clock)
    notifier.submit(event())
    run(notifier.tick())
    [wecom] = http.on("/wecom")
    assert wecom["msgtype"] == "markdown"
    assert wecom["markdown"]["content"].startswith("### 【告警】缺相：E0001\n> 对象：电表 E0001")
    [ding] = http.on("/ding")
    assert ding["msgtype"] == "markdown" and ding["markdown"]["title"] == "【告警】缺相：E0001"
    assert ding["at"] == {"atMobiles": ["13800000001"], "isAtAll": False}
    assert ding["markdown"]["text"].endswith("@13800000001")
    [sms] = http.on("/sms")
    assert sms["to"] == "13900000000" and sms["text"].startswith("【告警】缺相：E0001\n")


def test_a_robot_errcode_is_a_failure(http, clock, run):
    http.reply = b'{"errcode": 310000, "errmsg": "keywords not in content"}'
    notifier = Notifier(site_with((hook("d", http.url("/d"), format="dingtalk"),)), clock=clock)
    notifier.submit(event())
    run(notifier.tick())
    [message] = notifier.outbox.store.messages()
    assert message.state == "pending" and "errcode 310000" in message.attempts[0].detail


def transition(
    kind: AlarmKind,
    target: str,
    from_state: AlarmState,
    to_state: AlarmState,
    engine_event: AlarmEvent,
    **kwargs: Any,
) -> AlarmTransition:
    return AlarmTransition(kind, target, from_state, to_state, engine_event, 1.7e9, **kwargs)


def test_from_transition_names_the_meter_and_maps_states():
    site = example_site()
    S = AlarmState
    raised = from_transition(
        transition(AlarmKind.UNDERVOLTAGE, "E0001", S.NORMAL, S.UNACKED, AlarmEvent.ACTIVATE,
                   value=180.5, limit=187.0),
        site,
    )  # fmt: skip
    assert raised is not None
    assert (raised.state, raised.priority, raised.area, raised.gateway) == (
        "raised", "high", "ENT", "GW001",
    )  # fmt: skip
    assert raised.text == "电表 E0001（华东机械有限公司，101，企业区）"
    assert raised.kind_name == "欠压" and raised.value == 180.5
    cases = [
        (S.UNACKED, S.ACKED, AlarmEvent.ACK, "acknowledged"),
        (S.UNACKED, S.RTN_UNACKED, AlarmEvent.CLEAR, "cleared"),
        (S.ACKED, S.NORMAL, AlarmEvent.CLEAR, "cleared"),
        (S.NORMAL, S.SUPPRESSED, AlarmEvent.SUPPRESS, "suppressed"),
        (S.UNACKED, S.SHELVED, AlarmEvent.SHELVE, "withdrawn"),
        (S.SHELVED, S.NORMAL, AlarmEvent.UNSHELVE, None),
    ]
    for before, after, happened, expected in cases:
        found = from_transition(transition(AlarmKind.LOST_COMM, "E0001", before, after, happened),
                                site)  # fmt: skip
        assert (found.state if found else None) == expected, (before, after)
    gateway = from_transition(
        transition(AlarmKind.GATEWAY_LOST_COMM, "GW002", S.NORMAL, S.UNACKED, AlarmEvent.ACTIVATE),
        site,
    )
    assert gateway is not None and gateway.target_kind == "gateway"
    assert gateway.kind_name == "网关失联" and gateway.text.startswith("网关 GW002（")
    unknown = transition(AlarmKind.ARREARS, "NOPE", S.NORMAL, S.UNACKED, AlarmEvent.ACTIVATE)
    assert from_transition(unknown, site) is None
