"""The notifier end to end against a real local HTTP receiver, timed by a ManualClock."""

from __future__ import annotations

import dataclasses

from alarms.notify.notifier import Notifier
from config.model import Site
from server.clock import ManualClock

from .conftest import HttpReceiver, event, hook, site_with


def notifier_for(site: Site, clock: ManualClock) -> Notifier:
    return Notifier(site, clock=clock)


def titles(http: HttpReceiver, path: str = "/a") -> list[str]:
    return [str(body["title"]) for body in http.on(path)]  # type: ignore[index]


def test_repeats_until_acknowledged(http, clock, run):
    site = site_with((hook("a", http.url("/a"), repeat_min=30),))
    notifier = notifier_for(site, clock)
    notifier.submit(event())
    run(notifier.tick())
    assert titles(http) == ["【告警】缺相：E0001"]
    clock.advance(29 * 60)
    run(notifier.tick())
    assert len(http.bodies) == 1
    clock.advance(60)
    run(notifier.tick())
    clock.advance(30 * 60)
    run(notifier.tick())
    reminder = "【未确认·第{}次提醒】缺相：E0001"
    assert titles(http)[1:] == [reminder.format(1), reminder.format(2)]
    assert notifier.acknowledged("phase_loss", "E0001", "op1")
    clock.advance(3 * 3600)
    run(notifier.tick())
    assert len(http.bodies) == 3
    assert notifier.status()["reminders_pending"] == 0


def test_escalates_after_n_minutes_and_ack_cancels(http, clock, run):
    first = hook("first", http.url("/a"), escalate_after_min=15, escalate_to="lead")
    lead = hook("lead", http.url("/lead"), min_priority="urgent", areas=("PUB",), repeat_min=10)
    notifier = notifier_for(site_with((first, lead)), clock)
    notifier.submit(event())
    run(notifier.tick())
    assert (len(http.on("/a")), len(http.on("/lead"))) == (1, 0)
    clock.advance(15 * 60 - 1)
    run(notifier.tick())
    assert http.on("/lead") == []
    clock.advance(1)
    run(notifier.tick())
    assert titles(http, "/lead") == ["【升级】缺相：E0001 已 15 分钟无人确认"]
    clock.advance(10 * 60)
    run(notifier.tick())
    assert titles(http, "/lead")[1] == "【未确认·第1次提醒】缺相：E0001"
    notifier.submit(dataclasses.replace(event(), state="acknowledged"))
    clock.advance(3600)
    run(notifier.tick())
    assert len(http.on("/lead")) == 2 and len(http.on("/a")) == 1


def test_clear_cancels_and_tells_once(http, clock, run):
    route = hook("a", http.url("/a"), repeat_min=5, escalate_after_min=5, escalate_to="b")
    notifier = notifier_for(site_with((route, hook("b", http.url("/b"), areas=("PUB",)))), clock)
    notifier.submit(event())
    clock.advance(60)
    assert notifier.cleared("phase_loss", "E0001")
    clock.advance(3600)
    run(notifier.tick())
    assert titles(http) == ["【告警】缺相：E0001", "【恢复】缺相：E0001"]
    assert http.on("/b") == []


def test_rate_limit_per_recipient_is_told_later(http, clock, run):
    site = site_with((hook("a", http.url("/a")),), rate_per_recipient_per_hour=3)
    notifier = notifier_for(site, clock)
    for n in range(5):
        notifier.submit(event(target=f"E{n:04d}", gateway=None, area=f"A{n}"))
    run(notifier.tick())
    assert len(http.bodies) == 3
    assert notifier.status()["rate_limited"] == 2
    clock.advance(3600)
    notifier.submit(event(target="E0100", gateway=None))
    run(notifier.tick())
    assert "另有 2 条通知因发送频率限制未发出" in http.on("/a")[-1]["text"]
    assert notifier.status()["rate_limited"] == 0


def test_gateway_down_gives_one_message_and_recovery_one_clear(http, clock, run):
    notifier = notifier_for(site_with((hook("a", http.url("/a")),)), clock)
    gateway = event("gateway_lost_comm", "GW002", target_kind="gateway", gateway="GW002")
    notifier.submit(gateway)
    for n in range(19):
        clock.advance(1)
        notifier.submit(event("lost_comm", f"D{n:04d}", state="suppressed", gateway="GW002"))
    run(notifier.tick())
    assert titles(http) == ["【告警】网关失联：GW002"]
    assert notifier.status()["folded_alarms"] == 19
    clock.advance(600)
    run(notifier.tick())
    assert len(http.bodies) == 1
    notifier.submit(dataclasses.replace(gateway, state="cleared", at=clock.time()))
    for n in range(19):
        notifier.submit(event("lost_comm", f"D{n:04d}", state="cleared", gateway="GW002"))
    run(notifier.tick())
    assert titles(http) == ["【告警】网关失联：GW002", "【恢复】网关失联：GW002"]
    assert "期间合并的 19 条电表告警随之结束" in http.bodies[-1][1]["text"]
    assert notifier.status()["folded_alarms"] == 0


def test_a_burst_beyond_the_threshold_becomes_one_digest(http, clock, run):
    site = site_with((hook("a", http.url("/a")),), flood_threshold=3, flood_window_s=120)
    notifier = notifier_for(site, clock)
    for n in range(20):
        notifier.submit(event("undervoltage", f"E{n:04d}", priority="high"))
        clock.advance(2)
    run(notifier.tick())
    assert len(http.bodies) == 3
    clock.advance(120)
    run(notifier.tick())
    assert len(http.bodies) == 4
    digest = http.bodies[-1][1]
    assert digest["title"] == "【告警汇总】网关 GW001 短时告警过多"
    assert "共 17 条：欠压 17 条" in digest["text"]
    assert digest["kind"] == "digest" and len(digest["alarms"]) == 17


def test_failed_delivery_is_retried_with_backoff(http, clock, run):
    http.statuses[:] = [500, 500]
    site = site_with((hook("a", http.url("/a")),), retry_base_s=30)
    notifier = notifier_for(site, clock)
    notifier.submit(event())
    assert run(notifier.tick()) == 1
    assert notifier.status()["queue_depth"] == 1
    clock.advance(29)
    assert run(notifier.tick()) == 0
    clock.advance(1)
    assert run(notifier.tick()) == 1  # second failure: next try 60 s later
    clock.advance(59)
    assert run(notifier.tick()) == 0
    clock.advance(1)
    assert run(notifier.tick()) == 1
    [message] = notifier.outbox.store.messages()
    assert [a.ok for a in message.attempts] == [False, False, True]
    assert [a.at - message.created for a in message.attempts] == [0, 30, 90]
    assert "HTTP 500" in message.attempts[0].detail
    assert notifier.status() | {"sent": 1, "failed_attempts": 2, "queue_depth": 0} == (
        notifier.status()
    )
    assert len(http.bodies) == 1


def test_an_unreachable_endpoint_never_raises_and_is_given_up(clock, run):
    from .conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/nobody"
    site = site_with((hook("a", url),), retry_base_s=10, retry_max_attempts=3)
    notifier = notifier_for(site, clock)
    notifier.submit(event())
    for _ in range(5):
        run(notifier.tick())
        clock.advance(3600)
    [message] = notifier.outbox.store.messages()
    assert message.state == "failed" and len(message.attempts) == 3
    assert all("cannot reach" in a.detail for a in message.attempts)
    assert notifier.status()["failed"] == 1


def test_a_missing_channel_is_a_logged_failure(clock, run):
    notifier = Notifier(site_with((hook("a", "http://127.0.0.1:9/x"),)), clock=clock, channels={})
    notifier.submit(event())
    run(notifier.tick())
    [message] = notifier.outbox.store.messages()
    assert "no webhook channel" in message.attempts[0].detail
