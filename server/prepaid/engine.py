"""The prepaid engine: settles energy batches into ledger postings and relay commands.

For each energy batch, in one PostgreSQL transaction: lock the meters' cursors, settle
the readings newer than them, post one `energy_deduction` per meter that owes whole fen
(provider "settlement", event id "<meter>:<source ts>", so a replay is a duplicate), move
the cursors, log flagged readings, and enqueue the relay commands those postings cause.
A meter's first reading only sets its cursor; `rebase` moves it for a replaced meter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import psycopg2.extensions

from config.model import Site
from config.tariffs import BUCKETS
from server.clock import Clock
from server.commands import CommandOutbox, Enqueued
from server.prepaid import control
from server.prepaid.ledger import Ledger
from server.prepaid.records import LedgerError, NoWallet, Posted
from server.prepaid.settlement import (
    Flag,
    Settled,
    centi_kwh,
    elapsed_seconds,
    max_delta,
    rated_kw,
    register_modulus,
    settle,
)
from server.prepaid.settlement_store import Anomaly, SettlementCursor, SettlementStore
from server.prepaid.tariff_columns import TariffBook
from server.tags import ChangeSet, TagTable, is_bad, is_good

Cursor = psycopg2.extensions.cursor
ENERGY_TAGS = tuple(f"e_{bucket}" for bucket in BUCKETS)
PROVIDER = "settlement"
_FLAG_KINDS = {
    Flag.ROLLOVER: "rollover",
    Flag.NEGATIVE: "negative",
    Flag.IMPLAUSIBLE: "implausible",
}


@dataclass(slots=True)
class SettlementReport:
    """What one energy batch did."""

    readings: int = 0
    started: int = 0  # first readings that only set a cursor
    stale: int = 0  # not newer than the cursor: already settled
    unpriced: int = 0
    flagged: int = 0  # readings with at least one bucket not charged
    postings: int = 0
    charged_fen: int = 0
    commands: list[Enqueued] = field(default_factory=list)


class PrepaidEngine:
    """Settles the site's prepaid meters from their energy registers (a pipeline consumer)."""

    def __init__(
        self,
        site: Site,
        table: TagTable,
        conn: psycopg2.extensions.connection,
        outbox: CommandOutbox,
        ledger: Ledger,
        *,
        clock: Clock,
        book: TariffBook | None = None,
    ) -> None:
        self.site = site
        self.table = table
        self.outbox = outbox
        self.ledger = ledger
        self.clock = clock
        self.book = book if book is not None else TariffBook(site)
        self.store = SettlementStore(conn, clock=clock)
        self._conn = conn
        self._zone = ZoneInfo(site.park.timezone)
        meters = [site.meter(str(m)) for m in table.ids]
        self._ids = [m.id for m in meters]
        self._prepaid = np.asarray([m.billing == "prepaid" for m in meters], dtype=np.bool_)
        self._credit = np.asarray([m.credit_limit_fen for m in meters], dtype=np.int64)
        pt = np.asarray([m.pt for m in meters], dtype=np.int64)
        ct = np.asarray([m.ct for m in meters], dtype=np.int64)
        self._step = pt * ct
        self._modulus = register_modulus(pt, ct)
        three = [m.three_phase for m in meters]
        self._rated = rated_kw(three, pt, ct, site.park.nominal_voltage)

    def on_batch(self, changes: ChangeSet) -> SettlementReport:
        """Settle an energy batch in one transaction; other groups are not money."""
        if changes.group != "energy":
            return SettlementReport()
        with self._conn, self._conn.cursor() as cur:
            report = self.settle_in(cur, changes)
        for enqueued in report.commands:
            self.outbox.publish(enqueued.events)
        return report

    def settle_in(self, cur: Cursor, changes: ChangeSet) -> SettlementReport:
        """Settle a batch inside the caller's transaction (commit, then publish the events)."""
        report = SettlementReport()
        batch = changes.batch
        if changes.group != "energy" or not all(t in batch.values for t in ENERGY_TAGS):
            return report
        readings = np.stack([np.asarray(batch.values[t], dtype=np.float64) for t in ENERGY_TAGS], 1)
        usable = ~is_bad(batch.quality) & np.isfinite(readings).all(axis=1) & (readings >= 0).all(1)
        usable &= self._prepaid[batch.rows] & np.isfinite(batch.source_ts)
        rows = batch.rows[usable]
        report.readings = len(rows)
        if not len(rows):
            return report
        meters = [self._ids[r] for r in rows.tolist()]
        registers = centi_kwh(readings[usable])
        times = batch.source_ts[usable]
        months = self._months(times)
        cursors = self.store.lock(cur, meters)
        fresh = [m not in cursors for m in meters]
        newer = np.asarray(
            [
                not f and times[i] > cursors[m].source_ts
                for i, (m, f) in enumerate(zip(meters, fresh, strict=True))
            ],
            dtype=np.bool_,
        )
        starts = [
            SettlementCursor(m, _four(registers[i]), 0, float(times[i]), int(months[i]), 0)
            for i, m in enumerate(meters)
            if fresh[i]
        ]
        report.started = len(starts)
        report.stale = len(meters) - len(starts) - int(newer.sum())
        self.store.save(cur, starts)
        picked = np.flatnonzero(newer)
        if len(picked):
            self._settle_rows(
                cur,
                report,
                rows[picked],
                [meters[i] for i in picked.tolist()],
                registers[picked],
                times[picked],
                months[picked],
                cursors,
            )
        return report

    def _settle_rows(
        self,
        cur: Cursor,
        report: SettlementReport,
        rows: npt.NDArray[np.int64],
        meters: list[str],
        registers: npt.NDArray[np.int64],
        times: npt.NDArray[np.float64],
        months: npt.NDArray[np.int64],
        cursors: dict[str, SettlementCursor],
    ) -> None:
        olds = [cursors[m] for m in meters]
        prices = self.book.columns(meters, times)
        unpriced = ~prices.priced
        report.unpriced = int(unpriced.sum())
        self.store.record(
            cur,
            [
                Anomaly(meters[i], float(times[i]), "", "unpriced", None, None)
                for i in np.flatnonzero(unpriced).tolist()
            ],
        )
        previous = np.asarray([c.registers for c in olds], dtype=np.int64)
        since = np.asarray([c.source_ts for c in olds], dtype=np.float64)
        same_month = np.asarray([c.month for c in olds]) == months
        used = np.where(same_month, [c.month_centi_kwh for c in olds], 0)
        limit = max_delta(self._rated[rows], elapsed_seconds(since, times), self._step[rows])
        settled = settle(
            previous,
            registers,
            modulus=self._modulus[rows],
            limit=limit,
            prices_e4=prices.prices_e4,
            carry_e4=[c.carry_e4 for c in olds],
            month_used=used,
            step_bounds=prices.step_bounds,
            step_prices_e4=prices.step_prices_e4,
        )
        self.store.record(
            cur, self._anomalies(meters, times, previous, registers, settled, unpriced)
        )
        report.flagged = int((settled.flagged.any(axis=1) & ~unpriced).sum())
        causes = np.zeros(len(meters), dtype=np.int64)
        balances = np.zeros(len(meters), dtype=np.int64)
        posted_ok = np.zeros(len(meters), dtype=np.bool_)
        moved: list[SettlementCursor] = []
        for i, old in enumerate(olds):
            if unpriced[i]:
                continue
            cost = int(settled.cost_fen[i])
            carry = int(settled.carry_e4[i])
            if cost > 0:
                posted = self._post(cur, old.meter, cost, float(times[i]))
                if posted is None:
                    carry = 0  # no wallet: the energy is nobody's debt
                elif not posted.duplicate:
                    report.postings += 1
                    report.charged_fen += cost
                    causes[i], balances[i], posted_ok[i] = (
                        posted.transaction_id,
                        posted.balance_after_fen,
                        True,
                    )
            clean = not settled.flagged[i].any()
            moved.append(
                old.moved(
                    registers=_four(settled.cursor[i]),
                    carry_e4=carry,
                    source_ts=float(times[i]) if clean else old.source_ts,
                    month=int(months[i]),
                    month_centi_kwh=int(used[i]) + int(settled.delta[i].sum()),
                )
            )
        self.store.save(cur, moved)
        self._relays(
            cur, report, rows, meters, posted_ok, causes, balances, {c.meter: c for c in olds}
        )

    def _post(self, cur: Cursor, meter: str, cost: int, source_ts: float) -> Posted | None:
        try:
            return self.ledger.post(
                "energy_deduction",
                meter=meter,
                amount_fen=cost,
                operator=control.ACTOR,
                channel=control.CHANNEL,
                reason="energy settlement",
                provider=PROVIDER,
                provider_event_id=f"{meter}:{source_ts!r}",
                cur=cur,
            )
        except NoWallet:
            return None
        except LedgerError:
            return None  # a closed (refunded) wallet takes no more deductions

    def _relays(
        self,
        cur: Cursor,
        report: SettlementReport,
        rows: npt.NDArray[np.int64],
        meters: list[str],
        posted: npt.NDArray[np.bool_],
        causes: npt.NDArray[np.int64],
        balances: npt.NDArray[np.int64],
        cursors: dict[str, SettlementCursor],
    ) -> None:
        if not posted.any():
            return
        forced = self.outbox.forced_modes(
            [m for m, p in zip(meters, posted, strict=True) if p], cur=cur
        )
        inputs = control.RelayInputs(
            prepaid=self._prepaid[rows],
            has_account=posted,
            forced=np.asarray([m in forced for m in meters], dtype=np.bool_),
            balance_fen=balances,
            credit_limit_fen=self._credit[rows],
            relay_known_open=self._relay_known_open(rows),
            held_open=np.asarray([cursors[m].relay_held_open for m in meters], dtype=np.bool_),
        )
        for request in control.requests(meters, control.decide(inputs), causes, balances):
            report.commands.append(control.enqueue(self.outbox, request, cur=cur))
            self.store.set_relay_held(cur, request.meter, request.kind == control.OPEN)

    def _relay_known_open(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        relay = np.asarray(self.table.column("relay"))[rows]
        good = is_good(self.table.quality("realtime")[rows])
        return np.asarray(good & (relay == 0), dtype=np.bool_)

    def on_recharge(self, meter: str, posted: Posted, *, cur: Cursor) -> Enqueued | None:
        """After a recharge posting (in its transaction): close the relay settlement opened.

        Returns the enqueued close command (publish its events after your commit), or None.
        """
        row = self.site.meter_row(meter)
        cursor = self.store.lock(cur, [meter]).get(meter)
        if cursor is None or posted.duplicate:
            return None
        forced = meter in self.outbox.forced_modes([meter], cur=cur)
        rows = np.asarray([row], dtype=np.int64)
        inputs = control.RelayInputs(
            prepaid=self._prepaid[rows],
            has_account=np.ones(1, dtype=np.bool_),
            forced=np.asarray([forced]),
            balance_fen=np.asarray([posted.balance_after_fen], dtype=np.int64),
            credit_limit_fen=self._credit[rows],
            relay_known_open=self._relay_known_open(rows),
            held_open=np.asarray([cursor.relay_held_open]),
        )
        decisions = control.decide(inputs)
        if not decisions.close[0]:
            return None
        request = control.RelayRequest(
            meter, control.CLOSE, posted.transaction_id, posted.balance_after_fen
        )
        enqueued = control.enqueue(self.outbox, request, cur=cur)
        self.store.set_relay_held(cur, meter, False)
        return enqueued

    def rebase(
        self,
        meter: str,
        registers_kwh: list[float],
        *,
        at: float,
        actor: str,
        channel: str,
        reason: str,
    ) -> SettlementCursor:
        """A replaced meter: settle from its new registers (primary kWh) without charging."""
        month = int(self._months(np.asarray([at]))[0])
        values = centi_kwh(np.asarray(registers_kwh, dtype=np.float64)).tolist()
        return self.store.rebase(
            meter, values, at=at, month=month, actor=actor, channel=channel, reason=reason
        )

    def _months(self, times: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """The month (yyyymm) of each time in the park's zone (batches share few distinct times)."""
        unique, inverse = np.unique(times, return_inverse=True)
        local = [datetime.fromtimestamp(float(t), self._zone) for t in unique.tolist()]
        keys = np.asarray([d.year * 100 + d.month for d in local], dtype=np.int64)
        return keys[inverse]

    def _anomalies(
        self,
        meters: list[str],
        times: npt.NDArray[np.float64],
        previous: npt.NDArray[np.int64],
        registers: npt.NDArray[np.int64],
        settled: Settled,
        unpriced: npt.NDArray[np.bool_],
    ) -> list[Anomaly]:
        found = []
        for i, b in zip(*np.nonzero(settled.flags), strict=True):
            if unpriced[i]:
                continue
            kind = _FLAG_KINDS[Flag(int(settled.flags[i, b]))]
            found.append(
                Anomaly(
                    meters[i],
                    float(times[i]),
                    BUCKETS[b],
                    kind,
                    int(previous[i, b]),
                    int(registers[i, b]),
                )
            )
        return found


def _four(values: npt.NDArray[np.int64]) -> tuple[int, int, int, int]:
    a, b, c, d = (int(v) for v in values)
    return (a, b, c, d)
