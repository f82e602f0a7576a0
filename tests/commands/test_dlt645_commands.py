"""Commands to the DL/T 645 meters of GW002 (small example) through the dial-in simulator.

The acquisition service builds the directory (D0001 and D0002 get DL/T 645 routes), the
outbox runs on PostgreSQL, and what the simulated meter shows is read from its fleet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.model import Site
from protocols.dlt645_di import (
    POWER_PROTECT_BIT,
    RELAY_OPEN_BIT,
    RELAY_ORDERED_OPEN_BIT,
    RUN_STATUS_3,
    decode_value,
    encode_value,
)
from protocols.errors import EncodeError
from server.clock import ManualClock
from server.commands import ChannelExecutor, CommandDispatcher, CommandOutbox, DispatchReport
from server.commands.dlt645_executor import meter_clock, relay_shown
from server.commands.states import Command
from tests.acquisition.conftest import Harness, acquiring
from tests.commands.fake_meters import POLICY

Run = Callable[[Awaitable[Any]], Any]
METER = "D0001"
ADDRESS = "000000000011"
TIMEOUT_S = 0.25  # the harness's request timeout: real seconds a silent meter costs


@dataclass
class Park:
    """The simulator, the acquisition (for its directory and listener) and a dispatcher."""

    h: Harness
    row: int
    outbox: CommandOutbox
    dispatcher: CommandDispatcher

    def enqueue(self, kind: str, params: Mapping[str, object]) -> int:
        enqueued = self.outbox.enqueue(kind, params, METER, actor="op", channel="hmi")
        return enqueued.commands[0].id

    async def dispatch(self) -> DispatchReport:
        return await self.dispatcher.run_once()

    def relay(self) -> tuple[bool, bool]:
        """(closed, forced) of the simulated relay."""
        fleet = self.h.sim.fleet
        return bool(fleet.closed[self.row]), bool(fleet.forced[self.row])


@asynccontextmanager
async def park(site: Site, outbox: CommandOutbox, clock: ManualClock) -> AsyncIterator[Park]:
    async with acquiring(site, clock, request_timeout=TIMEOUT_S) as h:
        assert h.acq.directory.dlt645_route(METER) is not None
        assert METER not in h.acq.directory  # no register channel
        executor = ChannelExecutor(h.acq.directory, clock=clock, tz=ZoneInfo(site.park.timezone))
        dispatcher = CommandDispatcher(outbox, executor, owner="d1", attempt_timeout_s=2.0)
        yield Park(h, site.meter_row(METER), outbox, dispatcher)


def test_relay_open_then_close_reach_the_simulated_relay(
    run: Run, site: Site, outbox: CommandOutbox, clock: ManualClock
) -> None:
    async def scenario() -> None:
        async with park(site, outbox, clock) as p:
            assert p.relay() == (True, False)
            opened = p.enqueue("relay_open", {})
            assert (await p.dispatch()).done == 1
            assert p.relay() == (False, True)
            closed = p.enqueue("relay_close", {})
            assert (await p.dispatch()).done == 1
            assert p.relay() == (True, False)  # 1B: back to the meter, which closes
            for command_id in (opened, closed):
                done = outbox.get(command_id)
                assert (done.state, done.attempts, done.last_error) == ("done", 1, None)

    run(scenario())


def test_forced_mode_on_and_off_are_power_protect(
    run: Run, site: Site, outbox: CommandOutbox, clock: ManualClock
) -> None:
    async def scenario() -> None:
        async with park(site, outbox, clock) as p:
            params = {"relay": "closed", "reason": "hospital", "expires_at": clock.time() + 3600}
            forced = p.enqueue("forced_mode_on", params)
            assert (await p.dispatch()).done == 1
            assert p.relay() == (True, True)
            released = p.enqueue("forced_mode_off", {})
            assert (await p.dispatch()).done == 1
            assert p.relay() == (True, False)
            assert [outbox.get(c).state for c in (forced, released)] == ["done", "done"]

    run(scenario())


def test_time_sync_broadcast_sets_a_drifted_meter_clock(
    run: Run, site: Site, outbox: CommandOutbox, clock: ManualClock
) -> None:
    async def scenario() -> None:
        async with park(site, outbox, clock) as p:
            p.h.sim.fleet.set_clock(p.row, clock.time() - 3600)  # an hour slow
            synced = p.enqueue("time_sync", {})
            assert (await p.dispatch()).done == 1
            assert outbox.get(synced).state == "done"
            assert abs(float(p.h.sim.fleet.clock_offset[p.row])) < 1.0

    run(scenario())


def test_other_kinds_are_refused_for_good_naming_dlt645(
    run: Run, site: Site, outbox: CommandOutbox, clock: ManualClock
) -> None:
    async def scenario() -> None:
        async with park(site, outbox, clock) as p:
            alarm = p.enqueue("alarm1_set", {"fen": 77_700})
            assert (await p.dispatch()).failed == 1
            command = outbox.get(alarm)
            assert command.state == "failed"
            assert command.last_error is not None
            assert command.last_error.startswith("alarm1_set: DL/T 645 meters cannot take it")

    run(scenario())


def test_a_silent_meter_is_retried_with_the_reason_then_read_back(
    run: Run, site: Site, outbox: CommandOutbox, clock: ManualClock
) -> None:
    async def scenario() -> None:
        async with park(site, outbox, clock) as p:
            faults = p.h.sim.fleet.faults
            faults.silence(p.row)
            command_id = p.enqueue("relay_open", {})
            assert (await p.dispatch()).retried == 1
            waiting = outbox.get(command_id)
            assert (waiting.state, waiting.attempts) == ("pending", 1)
            assert waiting.last_error == (
                f"relay control 1A to {ADDRESS}: GW002: no reply within {TIMEOUT_S:g} s"
            )
            clock.advance(POLICY.base_s)
            assert (await p.dispatch()).retried == 1  # read back first: unknown, no re-send
            assert outbox.get(command_id).last_error == (
                f"read-back: read-back of DI 04000503 from {ADDRESS}: "
                f"GW002: no reply within {TIMEOUT_S:g} s"
            )
            faults.clear(rows=p.row)
            clock.advance(POLICY.delay(2))
            assert (await p.dispatch()).done == 1  # the silent meter had tripped all along
            assert outbox.get(command_id).state == "done"
            assert p.relay() == (False, True)

    run(scenario())


def _command(kind: str, params: Mapping[str, object]) -> Command:
    return Command(
        id=1,
        request_id=1,
        meter=METER,
        kind=kind,
        params=dict(params),
        state="pending",
        attempts=0,
        max_attempts=3,
        next_attempt_at=0.0,
        lease_owner=None,
        lease_until=None,
        last_error=None,
        reissue_of=None,
        actor="op",
        channel="hmi",
        created_at=0.0,
        updated_at=0.0,
        finished_at=None,
    )


WORDS = {
    "closed": 0,
    "open": RELAY_OPEN_BIT,
    "tripped": RELAY_OPEN_BIT | RELAY_ORDERED_OPEN_BIT,
    "protected": POWER_PROTECT_BIT,
}
SHOWN = {  # (kind, relay param) → the states that confirm it
    ("relay_open", None): {"open", "tripped"},
    ("relay_close", None): {"closed", "protected"},
    ("forced_mode_on", "closed"): {"protected"},
    ("forced_mode_on", "open"): {"tripped"},
    ("forced_mode_off", None): {"closed", "open"},
}


@pytest.mark.parametrize(("kind", "relay"), sorted(SHOWN, key=str))
@pytest.mark.parametrize("state", sorted(WORDS))
def test_status_word_judgement(kind: str, relay: str | None, state: str) -> None:
    params = {} if relay is None else {"relay": relay}
    assert relay_shown(_command(kind, params), WORDS[state]) == (state in SHOWN[kind, relay])


@given(st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59)))
def test_meter_clock_reads_the_date_and_time_digits(when: datetime) -> None:
    when = when.replace(microsecond=0)
    date = Decimal(int(when.strftime("%y%m%d")) * 100 + (when.weekday() + 1) % 7)
    time = Decimal(int(when.strftime("%H%M%S")))
    assert meter_clock(date, time) == when


@given(st.integers(0, 99_999_999), st.integers(0, 999_999))
def test_meter_clock_is_none_or_a_time_for_any_digits(date: int, time: int) -> None:
    shown = meter_clock(Decimal(date), Decimal(time))
    assert shown is None or shown.strftime("%H%M%S") == f"{time:06d}"


@given(st.integers(0, 0xFFFF))
def test_run_status_word_is_binary_not_bcd(word: int) -> None:
    data = encode_value(RUN_STATUS_3, word)
    assert data == word.to_bytes(2, "little")
    assert decode_value(RUN_STATUS_3, data) == word


@pytest.mark.parametrize("bad", [-1, 0x10000, Decimal("1.5"), True, None])
def test_run_status_word_refuses_what_is_no_word(bad: Any) -> None:
    with pytest.raises(EncodeError, match="04000503"):
        encode_value(RUN_STATUS_3, bad)
