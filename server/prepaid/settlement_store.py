"""The settled register cursor of each meter in PostgreSQL, and the flagged-reading log.

Every method works inside the caller's transaction (a `cur`), so the cursor moves in the
same transaction as the ledger posting it paid for; `rebase` may also run on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

import psycopg2.extensions
from psycopg2.extras import execute_values

from config.tariffs import BUCKETS
from server.clock import Clock, SystemClock
from server.commands.events import check_actor, write_audit

Cursor = psycopg2.extensions.cursor
ANOMALY_KINDS: Final = ("rollover", "negative", "implausible", "unpriced", "rebase")
_COLUMNS: Final = (
    "meter, sharp_centi_kwh, peak_centi_kwh, flat_centi_kwh, valley_centi_kwh, carry_e4,"
    " source_ts, month, month_centi_kwh, relay_held_open, updated_at"
)


@dataclass(frozen=True, slots=True)
class SettlementCursor:
    """Where a meter's settlement stands: registers settled up to `source_ts`."""

    meter: str
    registers: tuple[int, int, int, int]
    carry_e4: int
    source_ts: float
    month: int
    month_centi_kwh: int
    relay_held_open: bool = False

    def moved(self, **changes: object) -> SettlementCursor:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A reading settlement refused or remarked on (bucket '' for the whole reading)."""

    meter: str
    source_ts: float
    bucket: str
    kind: str
    previous: int | None
    reading: int | None


def _cursor(row: Sequence[object]) -> SettlementCursor:
    meter, sharp, peak, flat, valley, carry, ts, month, used, held, _ = row
    return SettlementCursor(
        meter=str(meter),
        registers=(int(sharp), int(peak), int(flat), int(valley)),  # type: ignore[call-overload]
        carry_e4=int(carry),  # type: ignore[call-overload]
        source_ts=float(ts),  # type: ignore[arg-type]
        month=int(month),  # type: ignore[call-overload]
        month_centi_kwh=int(used),  # type: ignore[call-overload]
        relay_held_open=bool(held),
    )


class SettlementStore:
    """Reads and writes settlement cursors and anomalies in the caller's transaction."""

    def __init__(self, conn: psycopg2.extensions.connection, *, clock: Clock | None = None):
        self._conn = conn
        self.clock: Clock = clock if clock is not None else SystemClock()

    def lock(self, cur: Cursor, meters: Iterable[str]) -> dict[str, SettlementCursor]:
        """The cursors of `meters` that exist, locked until the transaction ends."""
        wanted = sorted(set(meters))
        if not wanted:
            return {}
        cur.execute(
            f"SELECT {_COLUMNS} FROM prepaid_settlement_cursors"  # noqa: S608 - fixed columns
            " WHERE meter = ANY(%s) ORDER BY meter FOR UPDATE",
            (wanted,),
        )
        return {row[0]: _cursor(row) for row in cur.fetchall()}

    def get(self, meter: str, *, cur: Cursor | None = None) -> SettlementCursor | None:
        """One meter's cursor, or None before its first reading."""
        if cur is not None:
            return self._get(cur, meter)
        with self._conn, self._conn.cursor() as own:
            return self._get(own, meter)

    @staticmethod
    def _get(cur: Cursor, meter: str) -> SettlementCursor | None:
        cur.execute(
            f"SELECT {_COLUMNS} FROM prepaid_settlement_cursors WHERE meter = %s",  # noqa: S608
            (meter,),
        )
        row = cur.fetchone()
        return None if row is None else _cursor(row)

    def save(self, cur: Cursor, cursors: Iterable[SettlementCursor]) -> int:
        """Insert or move cursors; return how many rows were written."""
        now = self.clock.time()
        rows = [
            (
                c.meter,
                *c.registers,
                c.carry_e4,
                c.source_ts,
                c.month,
                c.month_centi_kwh,
                c.relay_held_open,
                now,
            )
            for c in cursors
        ]
        if not rows:
            return 0
        execute_values(
            cur,
            f"INSERT INTO prepaid_settlement_cursors ({_COLUMNS}) VALUES %s"  # noqa: S608
            " ON CONFLICT (meter) DO UPDATE SET"
            " sharp_centi_kwh = EXCLUDED.sharp_centi_kwh,"
            " peak_centi_kwh = EXCLUDED.peak_centi_kwh,"
            " flat_centi_kwh = EXCLUDED.flat_centi_kwh,"
            " valley_centi_kwh = EXCLUDED.valley_centi_kwh,"
            " carry_e4 = EXCLUDED.carry_e4, source_ts = EXCLUDED.source_ts,"
            " month = EXCLUDED.month, month_centi_kwh = EXCLUDED.month_centi_kwh,"
            " relay_held_open = EXCLUDED.relay_held_open, updated_at = EXCLUDED.updated_at",
            rows,
        )
        return len(rows)

    def set_relay_held(self, cur: Cursor, meter: str, held: bool) -> None:
        """Record whether settlement holds this meter's relay open."""
        cur.execute(
            "UPDATE prepaid_settlement_cursors SET relay_held_open = %s, updated_at = %s"
            " WHERE meter = %s",
            (held, self.clock.time(), meter),
        )

    def record(self, cur: Cursor, anomalies: Iterable[Anomaly]) -> None:
        """Log flagged readings once each (a replayed reading adds nothing)."""
        now = self.clock.time()
        rows = []
        for item in anomalies:
            if item.kind not in ANOMALY_KINDS:
                raise ValueError(f"anomaly kind must be one of {ANOMALY_KINDS}, got {item.kind!r}")
            rows.append(
                (
                    item.meter,
                    item.source_ts,
                    item.bucket,
                    item.kind,
                    item.previous,
                    item.reading,
                    now,
                )
            )
        if rows:
            execute_values(
                cur,
                "INSERT INTO prepaid_settlement_anomalies"
                " (meter, source_ts, bucket, kind, previous, reading, recorded_at) VALUES %s"
                " ON CONFLICT (meter, source_ts, bucket, kind) DO NOTHING",
                rows,
            )

    def anomalies(self, meter: str, *, cur: Cursor | None = None) -> list[Anomaly]:
        """A meter's flagged readings, oldest first."""
        query = (
            "SELECT meter, source_ts, bucket, kind, previous, reading"
            " FROM prepaid_settlement_anomalies WHERE meter = %s ORDER BY id"
        )
        if cur is None:
            with self._conn, self._conn.cursor() as own:
                own.execute(query, (meter,))
                rows = own.fetchall()
        else:
            cur.execute(query, (meter,))
            rows = cur.fetchall()
        return [Anomaly(r[0], float(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    def rebase(
        self,
        meter: str,
        registers: Sequence[int],
        *,
        at: float,
        month: int,
        actor: str,
        channel: str,
        reason: str,
        cur: Cursor | None = None,
    ) -> SettlementCursor:
        """Move a meter's cursor to new registers without charging (meter replacement).

        The carried remainder and the month's usage stay: they belong to the tenant, not
        to the meter. Later readings are settled from here; it is audited.
        """
        actor, channel = check_actor(actor, channel)
        values = tuple(int(v) for v in registers)
        if len(values) != len(BUCKETS) or min(values) < 0:
            raise ValueError(
                f"rebase of {meter}: registers must be {len(BUCKETS)} centi-kWh values ≥ 0"
                f" ({', '.join(BUCKETS)}), got {list(registers)!r}"
            )
        if not reason.strip():
            raise ValueError(f"rebase of {meter}: a reason is required")
        if cur is None:
            with self._conn, self._conn.cursor() as own:
                return self._rebase(own, meter, values, at, month, actor, channel, reason)
        return self._rebase(cur, meter, values, at, month, actor, channel, reason)

    def _rebase(
        self,
        cur: Cursor,
        meter: str,
        values: tuple[int, ...],
        at: float,
        month: int,
        actor: str,
        channel: str,
        reason: str,
    ) -> SettlementCursor:
        old = self.lock(cur, [meter]).get(meter)
        registers = (values[0], values[1], values[2], values[3])
        if old is None:
            moved = SettlementCursor(meter, registers, 0, float(at), month, 0)
        else:
            moved = old.moved(registers=registers, source_ts=float(at))
        self.save(cur, [moved])
        self.record(cur, [Anomaly(meter, float(at), "", "rebase", None, None)])
        write_audit(
            cur,
            at=self.clock.time(),
            actor=actor,
            channel=channel,
            action="prepaid.rebase",
            target=meter,
            detail={
                "reason": reason,
                "from": None if old is None else list(old.registers),
                "to": list(registers),
                "source_ts": at,
            },
        )
        return moved
