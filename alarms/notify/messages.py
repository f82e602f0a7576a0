"""The Chinese text of every notice: an alarm, a repeat, an escalation, a digest, a clear."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from alarms.notify.events import PRIORITY_NAMES, AlarmEvent
from alarms.notify.throttle import Digest


@dataclass(frozen=True, slots=True)
class Notice:
    """A message for people: a title line and body lines, plus what it is about."""

    title: str
    lines: tuple[str, ...]
    kind: str  # alarm | repeat | escalation | digest | cleared
    keys: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        """Title and lines as plain text."""
        return "\n".join((self.title, *self.lines))

    def with_line(self, line: str) -> Notice:
        """A copy with one more body line."""
        return replace(self, lines=(*self.lines, line))


class NoticeWriter:
    """Writes notices with times in the park's time zone."""

    def __init__(self, timezone: str) -> None:
        """Show times in `timezone`."""
        self._zone = ZoneInfo(timezone)

    def clock(self, at: float) -> str:
        """A Unix time as local `YYYY-MM-DD HH:MM:SS`."""
        return datetime.fromtimestamp(at, self._zone).strftime("%Y-%m-%d %H:%M:%S")

    def _facts(self, event: AlarmEvent) -> tuple[str, ...]:
        lines = [f"对象：{event.text or event.target}", f"时间：{self.clock(event.at)}"]
        if event.value is not None:
            limit = f"（限值 {event.limit:g}）" if event.limit is not None else ""
            lines.append(f"测量值：{event.value:g}{limit}")
        lines.append(f"优先级：{PRIORITY_NAMES.get(event.priority, event.priority)}")
        return tuple(lines)

    def alarm(self, event: AlarmEvent, folded: int = 0) -> Notice:
        """The first notice of a raised alarm (a gateway's tells how many meters it hides)."""
        lines = self._facts(event)
        if folded:
            lines = (*lines, f"其下 {folded} 条电表告警已合并，不再逐条通知")
        return Notice(f"【告警】{event.kind_name}：{event.target}", lines, "alarm", (event.key,))

    def repeat(self, event: AlarmEvent, count: int) -> Notice:
        """A reminder of an alarm nobody has acknowledged yet."""
        title = f"【未确认·第{count}次提醒】{event.kind_name}：{event.target}"
        return Notice(title, self._facts(event), "repeat", (event.key,))

    def escalation(self, event: AlarmEvent, minutes: int) -> Notice:
        """An alarm escalated to the next contact after `minutes` without acknowledgement."""
        title = f"【升级】{event.kind_name}：{event.target} 已 {minutes} 分钟无人确认"
        return Notice(title, self._facts(event), "escalation", (event.key,))

    def cleared(self, event: AlarmEvent, folded: tuple[AlarmEvent, ...] = ()) -> Notice:
        """An alarm's condition is gone (a gateway's also closes the alarms folded behind it)."""
        lines = [f"对象：{event.text or event.target}", f"恢复时间：{self.clock(event.at)}"]
        if folded:
            lines.append(f"期间合并的 {len(folded)} 条电表告警随之结束")
        title = f"【恢复】{event.kind_name}：{event.target}"
        return Notice(title, tuple(lines), "cleared", (event.key,))

    def digest(self, digest: Digest) -> Notice:
        """One notice for a burst of alarms under one gateway or area."""
        scope, _, name = digest.key.partition(":")
        where = f"网关 {name}" if scope == "gateway" else f"区域 {name}"
        counts = Counter(event.kind_name for event in digest.events)
        summary = "，".join(f"{kind} {n} 条" for kind, n in counts.most_common())
        lines = [
            f"时段：{self.clock(digest.start)} 至 {self.clock(digest.end)}",
            f"共 {len(digest.events)} 条：{summary}",
        ]
        shown = digest.events[:10]
        lines.extend(f"- {e.kind_name} {e.text or e.target}" for e in shown)
        if len(digest.events) > len(shown):
            lines.append(f"- 另有 {len(digest.events) - len(shown)} 条")
        keys = tuple(event.key for event in digest.events)
        return Notice(f"【告警汇总】{where} 短时告警过多", tuple(lines), "digest", keys)
