"""What the notifier is told: one alarm event, and its adapter from engine transitions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from config.model import PRIORITIES, Site

NOTIFY_STATES: Final = ("raised", "cleared", "acknowledged", "suppressed", "withdrawn")
"""raised: needs attention; cleared: condition gone; acknowledged: an operator has it;
suppressed: hidden by design (its gateway is down); withdrawn: shelved or out of service."""

KIND_NAMES: Final = {
    "phase_loss": "缺相",
    "undervoltage": "欠压",
    "overvoltage": "过压",
    "lost_comm": "失联",
    "arrears": "欠费",
    "low_balance_1": "余额不足（一级）",
    "low_balance_2": "余额不足（二级）",
    "unexpected_trip": "跳闸",
    "over_power": "超功率",
    "meter_fault": "电表故障",
    "gateway_lost_comm": "网关失联",
}
PRIORITY_NAMES: Final = {"low": "低", "medium": "中", "high": "高", "urgent": "紧急"}
GATEWAY_KINDS: Final = ("gateway_lost_comm",)


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One alarm change the notifier acts on; `text` describes the target for people."""

    kind: str
    target: str
    target_kind: str
    area: str
    gateway: str | None
    priority: str
    state: str
    at: float
    value: float | None = None
    limit: float | None = None
    text: str = ""
    user: str | None = None

    def __post_init__(self) -> None:
        """Refuse an event the notifier could not route."""
        if self.target_kind not in ("meter", "gateway"):
            raise ValueError(f"target_kind must be meter or gateway, got {self.target_kind!r}")
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {PRIORITIES}, got {self.priority!r}")
        if self.state not in NOTIFY_STATES:
            raise ValueError(f"state must be one of {NOTIFY_STATES}, got {self.state!r}")

    @property
    def key(self) -> tuple[str, str]:
        """The alarm instance this event belongs to: (kind, target)."""
        return (self.kind, self.target)

    @property
    def kind_name(self) -> str:
        """The alarm's Chinese name, e.g. 缺相 (the label itself for an unknown kind)."""
        return KIND_NAMES.get(self.kind, self.kind)


class Transition(Protocol):
    """The attributes of an engine transition record that the adapter reads."""

    @property
    def kind(self) -> object:
        """The record's `kind`."""
        ...

    @property
    def target(self) -> str:
        """The record's `target`."""
        ...

    @property
    def from_state(self) -> object:
        """The record's `from_state`."""
        ...

    @property
    def to_state(self) -> object:
        """The record's `to_state`."""
        ...

    @property
    def at(self) -> float:
        """The record's `at`."""
        ...

    @property
    def value(self) -> float | None:
        """The record's `value`."""
        ...

    @property
    def limit(self) -> float | None:
        """The record's `limit`."""
        ...

    @property
    def user(self) -> str | None:
        """The record's `user`."""
        ...


def _label(value: object) -> str:
    """An enum's `label` (the engine's names), else the value as lower-case text."""
    label = getattr(value, "label", None)
    return label if isinstance(label, str) else str(value).lower()


def notify_state(from_state: str, to_state: str) -> str | None:
    """What a state change means to the notifier, or None when it means nothing."""
    if to_state == "unacked":
        return "raised"
    if to_state == "acked":
        return "acknowledged"
    if to_state == "rtn_unacked":
        return "cleared"
    if to_state == "suppressed":
        return "suppressed"
    if to_state in ("shelved", "out_of_service"):
        return "withdrawn"
    if to_state == "normal":
        return {"acked": "cleared", "rtn_unacked": "acknowledged", "unacked": "cleared"}.get(
            from_state
        )
    return None


def from_transition(transition: Transition, site: Site) -> AlarmEvent | None:
    """The event for an engine transition, or None when it is nothing to notify about.

    A target the site does not know gives None as well: a stale record must not stop
    the notifier.
    """
    kind = _label(transition.kind)
    state = notify_state(_label(transition.from_state), _label(transition.to_state))
    if state is None:
        return None
    spec = getattr(transition.kind, "spec", None)
    priority = getattr(spec, "priority", "medium")
    try:
        if kind in GATEWAY_KINDS:
            gateway = site.gateway(transition.target)
            area_name = site.area(gateway.area).name
            count = len(site.meters_on(gateway.id))
            text = f"网关 {gateway.id}（{area_name}，下挂电表 {count} 块）"
            area, target_kind = gateway.area, "gateway"
            gateway_id: str | None = gateway.id
        else:
            meter = site.meter(transition.target)
            text = describe_meter(site, meter.id)
            area, gateway_id, target_kind = meter.area, meter.gateway, "meter"
    except KeyError:
        return None
    return AlarmEvent(
        kind=kind,
        target=transition.target,
        target_kind=target_kind,
        area=area,
        gateway=gateway_id,
        priority=priority if priority in PRIORITIES else "medium",
        state=state,
        at=float(transition.at),
        value=transition.value,
        limit=transition.limit,
        text=text,
        user=transition.user,
    )


def describe_meter(site: Site, meter_id: str) -> str:
    """A meter for people: id, owner, room and area, e.g. 电表 E0001（华东机械，101，企业区）."""
    meter = site.meter(meter_id)
    parts = [part for part in (meter.owner, meter.room, site.area(meter.area).name) if part]
    return f"电表 {meter.id}（{'，'.join(parts)}）"
