"""Which routes an alarm goes to, and who is reached on a route at a given moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from alarms.notify.events import AlarmEvent
from config.model import PRIORITIES, Route, Site


@dataclass(frozen=True, slots=True)
class Recipient:
    """One delivery address of a route.

    `address` is the URL (webhook), the e-mail address (email) or the phone (sms);
    `endpoint` is where the message is sent: the URL, or for sms the gateway URL;
    `mentions` are phones a webhook message @-mentions (the on-call staff).
    """

    route: str
    channel: str
    address: str
    endpoint: str
    format: str | None = None
    mentions: tuple[str, ...] = ()


def route_matches(route: Route, event: AlarmEvent) -> bool:
    """Whether `route` takes `event`: its area is listed (or none are) and priority is enough."""
    if route.areas and event.area not in route.areas:
        return False
    return PRIORITIES.index(event.priority) >= PRIORITIES.index(route.min_priority)


class Router:
    """Routes events by area and priority, and resolves the on-call rota in the park's zone."""

    def __init__(self, site: Site) -> None:
        """Route by `site.routes` and `site.notify.oncall`."""
        self._site = site
        self._zone = ZoneInfo(site.park.timezone)

    def routes_for(self, event: AlarmEvent) -> tuple[Route, ...]:
        """The routes that take `event`, in file order."""
        return tuple(route for route in self._site.routes if route_matches(route, event))

    def route(self, route_id: str) -> Route:
        """The route with this id."""
        return self._site.route(route_id)

    def on_call(self, route_id: str, at: float) -> tuple[str, ...]:
        """The contacts of every shift of `route_id` covering Unix time `at` (may be empty)."""
        local = datetime.fromtimestamp(at, self._zone)
        weekday, minute = local.weekday(), local.hour * 60 + local.minute
        found: list[str] = []
        for shift in self._site.notify.oncall:
            if shift.route == route_id and shift.covers(weekday, minute):
                found.extend(c for c in shift.contacts if c not in found)
        return tuple(found)

    def recipients(self, route: Route, at: float) -> tuple[Recipient, ...]:
        """Who `route` reaches at `at`: the on-call contacts, else the route's own target."""
        contacts = self.on_call(route.id, at)
        if route.channel == "email":
            return tuple(
                Recipient(route.id, "email", address, address)
                for address in contacts or (route.target,)
            )
        if route.channel == "sms":
            return tuple(
                Recipient(route.id, "sms", phone, route.target)
                for phone in contacts or route.contacts
            )
        return (Recipient(route.id, "webhook", route.target, route.target, route.format, contacts),)
