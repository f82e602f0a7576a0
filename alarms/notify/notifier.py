"""The notifier: takes alarm events, routes, folds, repeats and escalates, and delivers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Mapping

from alarms.notify.channels import Channel, DeliveryFailed, default_channels
from alarms.notify.delivery import MemoryOutboxStore, Outbox, OutboxMessage, OutboxStore
from alarms.notify.events import AlarmEvent
from alarms.notify.messages import Notice, NoticeWriter
from alarms.notify.routing import Router
from alarms.notify.scheduler import ReminderSchedule
from alarms.notify.throttle import FloodGuard, RecipientRateLimit
from config.model import Route, Site
from server.clock import Clock

log = logging.getLogger(__name__)


class Notifier:
    """Maintenance notifications for one site; `submit` never blocks, `tick` does the I/O."""

    def __init__(
        self,
        site: Site,
        *,
        clock: Clock,
        channels: Mapping[str, Channel] | None = None,
        store: OutboxStore | None = None,
    ) -> None:
        """Notify by `site`'s routes and rota, timed by `clock`, sending through `channels`."""
        settings = site.notify.settings
        self._clock = clock
        self._router = Router(site)
        self._writer = NoticeWriter(site.park.timezone)
        self._schedule = ReminderSchedule(site.route)
        self._guard = FloodGuard(settings.flood_window_s, settings.flood_threshold)
        self._limit = RecipientRateLimit(settings.rate_per_recipient_per_hour)
        self.outbox = Outbox(
            store or MemoryOutboxStore(), settings.retry_base_s, settings.retry_max_attempts
        )
        self._channels = channels if channels is not None else default_channels(settings)
        self._notified: dict[tuple[str, str], tuple[AlarmEvent, tuple[Route, ...]]] = {}

    def submit(self, event: AlarmEvent) -> None:
        """Take one alarm event: queue what it needs sent and update repeats and floods."""
        now = self._clock.time()
        if event.state == "raised":
            self._raised(event, now)
        elif event.state == "suppressed":
            self._forget(event.key)
            if event.target_kind == "meter":
                self._guard.fold(event, now)
        elif event.state == "cleared":
            self._cleared(event, now)
        elif event.state == "acknowledged":
            self._schedule.close(event.key)
        else:  # withdrawn: shelved or out of service, nothing more to say about it
            self._forget(event.key)

    def acknowledged(self, kind: str, target: str, user: str | None = None) -> bool:
        """An operator acknowledged alarm (kind, target): stop its repeats and escalation."""
        closed = self._schedule.close((kind, target))
        if closed:
            log.info("alarm %s on %s acknowledged by %s: reminders stopped", kind, target, user)
        return closed

    def cleared(self, kind: str, target: str) -> bool:
        """Alarm (kind, target) is gone: stop reminders and tell whoever was told of it."""
        found = self._notified.get((kind, target))
        if found is None:
            return self._schedule.close((kind, target))
        event = dataclasses.replace(found[0], state="cleared", at=self._clock.time())
        self._cleared(event, event.at)
        return True

    def _raised(self, event: AlarmEvent, now: float) -> None:
        if event.key in self._notified:
            return
        if event.target_kind == "gateway":
            notice = self._writer.alarm(event, self._guard.gateway_raised(event))
        elif self._guard.fold(event, now):
            return
        else:
            notice = self._writer.alarm(event)
        routes = self._router.routes_for(event)
        self._notified[event.key] = (event, routes)
        self._schedule.open(event, routes, now)
        self._send(notice, routes, now)

    def _cleared(self, event: AlarmEvent, now: float) -> None:
        self._schedule.close(event.key)
        folded = self._guard.gateway_cleared(event) if event.target_kind == "gateway" else ()
        found = self._notified.pop(event.key, None)
        if found is not None:
            self._send(self._writer.cleared(event, folded), found[1], now)

    def _forget(self, key: tuple[str, str]) -> None:
        self._schedule.close(key)
        self._notified.pop(key, None)

    def _send(self, notice: Notice, routes: Iterable[Route], now: float) -> None:
        """Queue `notice` for every recipient of `routes`, within each one's rate limit."""
        for route in routes:
            for recipient in self._router.recipients(route, now):
                if not self._limit.take(recipient.address, now):
                    continue
                withheld = self._limit.withheld(recipient.address)
                copy = notice
                if withheld:
                    copy = notice.with_line(f"另有 {withheld} 条通知因发送频率限制未发出")
                    self._limit.told(recipient.address)
                self.outbox.put(recipient, copy, now)

    def _queue_due(self, now: float) -> None:
        for digest in self._guard.due(now):
            routes: list[Route] = []
            for event in digest.events:
                routes.extend(r for r in self._router.routes_for(event) if r not in routes)
            self._send(self._writer.digest(digest), routes, now)
        for reminder in self._schedule.due(now):
            if reminder.reason == "escalation":
                notice = self._writer.escalation(reminder.event, reminder.count)
            else:
                notice = self._writer.repeat(reminder.event, reminder.count)
            self._send(notice, (reminder.route,), now)

    async def tick(self, now: float | None = None) -> int:
        """Queue what is due at `now` (default: the clock) and try every due message.

        Returns the number of delivery attempts made. A failure is logged and retried
        later; nothing raises into the caller.
        """
        moment = self._clock.time() if now is None else now
        self._queue_due(moment)
        due = self.outbox.due(moment)
        queues: dict[tuple[str, str], list[OutboxMessage]] = {}
        for message in due:
            queues.setdefault((message.recipient.channel, message.recipient.address), []).append(
                message
            )
        await asyncio.gather(*(self._attempt_in_order(queue, moment) for queue in queues.values()))
        return len(due)

    async def _attempt_in_order(self, queue: list[OutboxMessage], now: float) -> None:
        """One recipient's messages one after another, so a clear never overtakes its alarm."""
        for message in queue:
            await self._attempt(message, now)

    async def _attempt(self, message: OutboxMessage, now: float) -> None:
        channel = self._channels.get(message.recipient.channel)
        try:
            if channel is None:
                raise DeliveryFailed(f"no {message.recipient.channel} channel is configured")
            await channel.deliver(message.recipient, message.notice)
        except DeliveryFailed as problem:
            self.outbox.failed_attempt(message, now, str(problem))
        except Exception as problem:  # a channel bug must not stop the other notices
            log.exception("notice %d: channel error", message.id)
            self.outbox.failed_attempt(message, now, f"{type(problem).__name__}: {problem}")
        else:
            self.outbox.succeeded(message, now)

    def next_due(self) -> float | None:
        """The earliest time `tick` has anything to do, or None."""
        times = [self._guard.next_due(), self._schedule.next_due(), self.outbox.next_due()]
        return min((t for t in times if t is not None), default=None)

    async def run(self, stop: asyncio.Event, poll_s: float = 1.0) -> None:
        """Tick every `poll_s` seconds until `stop` is set."""
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_s)

    def status(self) -> dict[str, int]:
        """Figures for /metrics: queue depth, deliveries and failures, open and folded alarms."""
        return {
            "queue_depth": self.outbox.depth(),
            "sent": self.outbox.sent,
            "failed": self.outbox.failed,
            "failed_attempts": self.outbox.failed_attempts,
            "open_alarms": len(self._notified),
            "reminders_pending": len(self._schedule),
            "folded_alarms": self._guard.folded_count(),
            "rate_limited": self._limit.total_withheld(),
        }
