"""`ChannelExecutor` against an in-test register-image meter: writes, read-backs, errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.profile import RegisterProfile, load_profile
from protocols.link_errors import (
    BadReply,
    Dlt645Refused,
    LinkDown,
    LinkError,
    LinkTimeout,
    ModbusException,
)
from protocols.register_writes import decode_write, encode_write
from server.acquisition.channels import ChannelDirectory
from server.clock import ManualClock
from server.commands import ChannelExecutor, Command, ExecutionError, register_write
from server.commands.kinds import validate_params
from server.commands.readback import clock_field, decode_clock, relay_field, relay_state
from tests.commands.fake_meters import Run

SH = ZoneInfo("Asia/Shanghai")
START = 1_700_000_000.0
MODELS = ("DDSY1352", "DTSY1352")
LATER = START + 86_400


class RegisterMeter:
    """A meter as a register dict: writes land through the profile, reads come from the dict.

    `drop` acknowledges writes without applying them; `trips` reopens the relay right after
    any close (a power-limit trip); `fail_write` / `fail_read` raise the next call's error.
    """

    def __init__(self, meter_id: str, profile: RegisterProfile) -> None:
        self.meter_id = meter_id
        self.profile = profile
        self.registers: dict[int, int] = {}
        self.writes: list[tuple[int, list[int]]] = []
        self.reads: list[tuple[int, int]] = []
        self.drop = False
        self.trips = False
        self.fail_write: Exception | None = None
        self.fail_read: Exception | None = None
        self.short_read = False

    def _store(self, pdu_address: int, values: Sequence[int]) -> None:
        for k, value in enumerate(values):
            self.registers[pdu_address + k] = value

    def set_relay(self, closed_bits: int) -> None:
        """Show relay bits `closed_bits` (of the profile's relay mask) in the status word."""
        f = relay_field(self.profile)
        address = self.profile.pdu(f.address)
        word = self.registers.get(address, 0) & ~f.mask
        self.registers[address] = word | (closed_bits & f.mask)

    def _apply(self, command: str, params: dict[str, object]) -> None:
        mask = relay_field(self.profile).mask
        if command == "relay_open":
            self.set_relay(0)
        elif command in ("relay_close", "relay_auto"):
            self.set_relay(0 if self.trips else mask)
        elif command == "clock":
            when = params["when"]
            assert isinstance(when, datetime)
            f = clock_field(self.profile)
            parts = {
                "YY": when.year - 2000,
                "MM": when.month,
                "DD": when.day,
                "hh": when.hour,
                "mm": when.minute,
                "ss": when.second,
                "WD": (when.weekday() + 1) % 7,
                "--": 0,
            }
            data = [parts[name] for name in f.layout]
            words = [data[i] << 8 | data[i + 1] for i in range(0, len(data), 2)]
            self._store(self.profile.pdu(f.address), words)

    async def write(self, pdu_address: int, values: Sequence[int]) -> None:
        if self.fail_write is not None:
            raise self.fail_write
        self.writes.append((pdu_address, list(values)))
        if self.drop:
            return
        command, params = decode_write(self.profile, pdu_address, values)
        self._store(pdu_address, values)
        self._apply(command, params)

    async def read(self, pdu_address: int, count: int) -> tuple[int, ...]:
        if self.fail_read is not None:
            raise self.fail_read
        self.reads.append((pdu_address, count))
        values = tuple(self.registers.get(pdu_address + k, 0) for k in range(count))
        return values[:-1] if self.short_read else values


def _command(kind: str, params: dict[str, object], meter: str = "M1", id_: int = 1) -> Command:
    return Command(
        id=id_,
        request_id=1,
        meter=meter,
        kind=kind,
        params=validate_params(kind, params, START),
        state="sending",
        attempts=1,
        max_attempts=3,
        next_attempt_at=START,
        lease_owner="d1",
        lease_until=START + 30,
        last_error=None,
        reissue_of=None,
        actor="op",
        channel="hmi",
        created_at=START,
        updated_at=START,
        finished_at=None,
    )


@pytest.fixture(params=MODELS)
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def meter(model: str) -> RegisterMeter:
    return RegisterMeter("M1", load_profile(model))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def executor(meter: RegisterMeter, clock: ManualClock) -> ChannelExecutor:
    directory = ChannelDirectory({"M1": meter}, {"M1": meter.profile})
    return ChannelExecutor(directory, clock=clock, tz=SH)


PERIODS = [[0, 0, 3], [8, 0, 1], [11, 30, 0], [17, 0, 1], [22, 0, 2]]
# (kind, params, an earlier command of the same slot that the meter showed before)
CASES: list[tuple[str, dict[str, object], str, dict[str, object]]] = [
    ("relay_open", {}, "relay_close", {}),
    ("relay_close", {}, "relay_open", {}),
    (
        "forced_mode_on",
        {"relay": "closed", "reason": "hospital", "expires_at": LATER},
        "relay_open",
        {},
    ),
    (
        "forced_mode_on",
        {"relay": "open", "reason": "works", "expires_at": LATER},
        "relay_close",
        {},
    ),
    ("forced_mode_off", {}, "relay_open", {}),
    ("prepaid_mode", {}, "relay_close", {}),
    (
        "price_set",
        {"sharp_e4": 11850, "peak_e4": 10210, "flat_e4": 6970, "valley_e4": 3720},
        "price_set",
        {"sharp_e4": 1, "peak_e4": 2, "flat_e4": 3, "valley_e4": 4},
    ),
    (
        "tou_day_table_set",
        {"table": 2, "periods": PERIODS},
        "tou_day_table_set",
        {"table": 2, "periods": [[0, 0, "flat"]]},
    ),
    ("time_sync", {}, "relay_open", {}),
    ("alarm1_set", {"fen": 50_000}, "alarm1_set", {"fen": 1}),
    ("alarm2_set", {"fen": 10_000}, "alarm2_set", {"fen": 1}),
    ("credit_limit_set", {"fen": 20_000}, "credit_limit_set", {"fen": 0}),
]
IDS = [f"{kind}-{i}" for i, (kind, *_) in enumerate(CASES)]
POWER_LIMIT: dict[str, object] = {"kw": "12.50"}


def _when(clock: ManualClock) -> datetime:
    return datetime.fromtimestamp(clock.time(), SH).replace(tzinfo=None)


# -- writes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "params", "_k", "_p"), [*CASES], ids=IDS)
def test_each_kind_writes_the_profile_encoding(
    run: Run,
    executor: ChannelExecutor,
    meter: RegisterMeter,
    clock: ManualClock,
    kind: str,
    params: dict[str, object],
    _k: str,
    _p: dict[str, object],
) -> None:
    command = _command(kind, params)
    run(executor.execute(command))
    write, arguments = register_write(kind, command.params, _when(clock))
    assert meter.writes == encode_write(meter.profile, write, **arguments)
    assert meter.reads == []


def test_power_limit_is_written_as_encoded(
    run: Run, executor: ChannelExecutor, meter: RegisterMeter
) -> None:
    run(executor.execute(_command("power_limit_set", POWER_LIMIT)))
    assert meter.writes == encode_write(meter.profile, "power_limit", kw=12.5)


def test_time_sync_writes_the_meters_local_time(
    run: Run, executor: ChannelExecutor, meter: RegisterMeter
) -> None:
    run(executor.execute(_command("time_sync", {})))
    [(address, values)] = meter.writes
    assert decode_write(meter.profile, address, values) == (
        "clock",
        {"when": datetime(2023, 11, 15, 6, 13, 20)},  # START in Asia/Shanghai
    )


def test_a_command_the_profile_cannot_encode_is_refused_for_good(
    run: Run, executor: ChannelExecutor, meter: RegisterMeter
) -> None:
    command = _command("tou_day_table_set", {"table": 3, "periods": PERIODS})
    with pytest.raises(ExecutionError) as caught:
        run(executor.execute(command))
    assert not caught.value.retryable
    assert "cannot take it" in caught.value.reason and "table must be 1..2" in caught.value.reason
    assert meter.writes == []


def test_an_unknown_meter_is_refused_for_good(run: Run, executor: ChannelExecutor) -> None:
    for call in (executor.execute, executor.confirm):
        with pytest.raises(ExecutionError) as caught:
            run(call(_command("relay_open", {}, meter="NOPE")))
        assert not caught.value.retryable and "'NOPE'" in caught.value.reason


# -- read-back -------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "params", "before", "before_params"), CASES, ids=IDS)
def test_each_kind_confirms_once_landed_and_not_before(
    run: Run,
    executor: ChannelExecutor,
    meter: RegisterMeter,
    kind: str,
    params: dict[str, object],
    before: str,
    before_params: dict[str, object],
) -> None:
    run(executor.execute(_command(before, before_params, id_=1)))
    command = _command(kind, params, id_=2)
    if kind != "time_sync":  # the double's clock registers start unset: nothing to show
        assert run(executor.confirm(command)) is False
    meter.drop = True  # written, acknowledged, not landed
    run(executor.execute(command))
    assert run(executor.confirm(command)) is False
    meter.drop = False
    run(executor.execute(command))
    assert run(executor.confirm(command)) is True


def test_relay_open_and_close_read_the_status_bits_not_the_command_register(
    run: Run, executor: ChannelExecutor, meter: RegisterMeter
) -> None:
    f = relay_field(meter.profile)
    run(executor.execute(_command("relay_close", {})))
    meter.reads.clear()
    assert run(executor.confirm(_command("relay_close", {})))
    assert meter.reads == [(meter.profile.pdu(f.address), 1)]
    # The meter opened by itself (prepaid logic): the command register still says "close".
    meter.set_relay(0)
    assert not run(executor.confirm(_command("relay_close", {})))
    assert run(executor.confirm(_command("relay_open", {})))


def test_a_close_the_meter_trips_at_once_is_not_confirmed(
    run: Run, executor: ChannelExecutor, meter: RegisterMeter
) -> None:
    meter.trips = True  # over its power limit: the relay reopens as soon as it closes
    command = _command("relay_close", {})
    run(executor.execute(command))
    assert not run(executor.confirm(command))
    assert run(executor.confirm(_command("relay_open", {})))


def test_a_three_phase_relay_half_closed_is_neither_open_nor_closed(
    run: Run, clock: ManualClock
) -> None:
    meter = RegisterMeter("M1", load_profile("DTSY1352"))
    directory = ChannelDirectory({"M1": meter}, {"M1": meter.profile})
    executor = ChannelExecutor(directory, clock=clock, tz=SH)
    meter.set_relay(1 << 13)  # L1 closed, L2 and L3 open
    assert not run(executor.confirm(_command("relay_open", {})))
    assert not run(executor.confirm(_command("relay_close", {})))


def test_time_sync_is_confirmed_within_the_tolerance(
    run: Run, executor: ChannelExecutor, clock: ManualClock
) -> None:
    command = _command("time_sync", {})
    run(executor.execute(command))
    clock.advance(10.0)  # the double's clock stands still: it is now 10 s behind
    assert run(executor.confirm(command))
    clock.advance(1.0)
    assert not run(executor.confirm(command))


def test_the_clock_tolerance_is_checked(meter: RegisterMeter, clock: ManualClock) -> None:
    directory = ChannelDirectory({"M1": meter}, {"M1": meter.profile})
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="clock_tolerance_s"):
            ChannelExecutor(directory, clock=clock, tz=SH, clock_tolerance_s=bad)


def test_power_limit_cannot_be_read_back_where_its_register_is_a_voltage(
    run: Run, executor: ChannelExecutor, meter: RegisterMeter
) -> None:
    command = _command("power_limit_set", POWER_LIMIT)
    run(executor.execute(command))
    with pytest.raises(ExecutionError) as caught:
        run(executor.confirm(command))
    assert not caught.value.retryable
    assert caught.value.reason == (
        f"{meter.profile.model}: power_limit cannot be read back: "
        "register 0x0061 reads as u_a in plans.realtime"
    )
    assert meter.reads == []


def test_power_limit_is_echoed_where_the_profile_reads_it_as_the_limit(
    run: Run, clock: ManualClock
) -> None:
    profile = load_profile("DDSY1352")
    realtime = profile.read_plan("realtime")
    moved = dataclasses.replace(
        realtime, fields=tuple(f for f in realtime.fields if f.tag != "u_a")
    )
    profile = dataclasses.replace(profile, plans={**profile.plans, "realtime": moved})
    meter = RegisterMeter("M1", profile)
    executor = ChannelExecutor(ChannelDirectory({"M1": meter}, {"M1": profile}), clock=clock, tz=SH)
    command = _command("power_limit_set", POWER_LIMIT)
    assert not run(executor.confirm(command))
    run(executor.execute(command))
    assert run(executor.confirm(command))
    assert meter.reads[-1] == (0x0061, 1)


# -- errors ----------------------------------------------------------------------------------

ERRORS: list[tuple[Exception, bool, str]] = [
    (LinkTimeout("GW003", "no reply within 1 s"), True, "GW003: no reply within 1 s"),
    (LinkDown("GW003", "connection refused"), True, "GW003: connection refused"),
    (BadReply("GW003", "reply from unit 2"), True, "reply from unit 2"),
    (ModbusException("GW003", 0x10, 1, "ILLEGAL FUNCTION"), False, "ILLEGAL FUNCTION"),
    (ModbusException("GW003", 0x10, 2, "ILLEGAL DATA ADDRESS"), False, "(Modbus exception 02)"),
    (ModbusException("GW003", 0x10, 3, "ILLEGAL DATA VALUE"), False, "ILLEGAL DATA VALUE"),
    (ModbusException("GW003", 0x10, 4, "SERVER DEVICE FAILURE"), True, "SERVER DEVICE FAILURE"),
    (ModbusException("GW003", 0x10, 6, "SERVER DEVICE BUSY"), True, "(Modbus exception 06)"),
    (ModbusException("GW003", 0x10, 0x0B, "GATEWAY TARGET FAILED"), True, "exception 0B"),
    (Dlt645Refused("GW002", 0x1C, 0x04, ("password",)), True, "refused: password"),
    (RuntimeError("socket closed"), True, "RuntimeError('socket closed')"),
]


@pytest.mark.parametrize(("error", "retryable", "says"), ERRORS, ids=lambda v: repr(v)[:40])
def test_write_errors_map_to_retryable_or_not(
    run: Run,
    executor: ChannelExecutor,
    meter: RegisterMeter,
    error: Exception,
    retryable: bool,
    says: str,
) -> None:
    meter.fail_write = error
    with pytest.raises(ExecutionError) as caught:
        run(executor.execute(_command("relay_open", {})))
    assert caught.value.retryable is retryable
    assert says in caught.value.reason
    assert caught.value.reason.startswith("write 0x0057+2: ")


@pytest.mark.parametrize(("error", "_retryable", "says"), ERRORS, ids=lambda v: repr(v)[:40])
def test_every_read_back_failure_is_retryable(
    run: Run,
    executor: ChannelExecutor,
    meter: RegisterMeter,
    error: Exception,
    _retryable: bool,
    says: str,
) -> None:
    meter.fail_read = error
    with pytest.raises(ExecutionError) as caught:
        run(executor.confirm(_command("alarm1_set", {"fen": 100})))
    assert caught.value.retryable
    assert caught.value.reason.startswith("read-back of 0x0046+2: ") and says in caught.value.reason


def test_a_short_read_is_a_retryable_error(
    run: Run, executor: ChannelExecutor, meter: RegisterMeter
) -> None:
    meter.short_read = True
    with pytest.raises(ExecutionError) as caught:
        run(executor.confirm(_command("price_set", CASES[6][1])))
    assert caught.value.retryable and "7 register(s) came back" in caught.value.reason


def test_link_errors_keep_their_cause(
    run: Run, executor: ChannelExecutor, meter: RegisterMeter
) -> None:
    meter.fail_write = LinkDown("GW001", "backing off")
    with pytest.raises(ExecutionError) as caught:
        run(executor.execute(_command("relay_close", {})))
    assert isinstance(caught.value.__cause__, LinkError)


# -- decoders (pure) -------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("code", ["binary", "bcd"])
@given(when=st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59)))
def test_clock_registers_decode_to_the_time_they_carry(
    model: str, code: str, when: datetime
) -> None:
    profile = dataclasses.replace(load_profile(model), time_code=code)
    f = clock_field(profile)
    when = when.replace(microsecond=0)
    parts = {"YY": when.year - 2000, "MM": when.month, "DD": when.day, "hh": when.hour}
    parts |= {"mm": when.minute, "ss": when.second, "WD": 3, "--": 0}
    data = [(v // 10) << 4 | v % 10 if code == "bcd" else v for v in (parts[n] for n in f.layout)]
    words = [data[i] << 8 | data[i + 1] for i in range(0, len(data), 2)]
    assert decode_clock(profile, f, words) == when


@pytest.mark.parametrize("code", ["binary", "bcd"])
@given(words=st.lists(st.integers(-5, 0x1_0005), max_size=6))
def test_any_clock_registers_decode_to_a_time_or_none(code: str, words: list[int]) -> None:
    profile = dataclasses.replace(load_profile("DDSY1352"), time_code=code)
    shown = decode_clock(profile, clock_field(profile), words)
    assert shown is None or isinstance(shown, datetime)
    if len(words) != 4:
        assert shown is None


@pytest.mark.parametrize("model", MODELS)
@given(word=st.integers(0, 0xFFFF))
def test_relay_state_follows_the_profile_bits(model: str, word: int) -> None:
    f = relay_field(load_profile(model))
    state = relay_state(f, word)
    assert (state == "closed") == (word & f.mask == f.mask)
    assert (state == "open") == (word & f.mask == 0)


def test_decoded_clock_ignores_the_weekday_byte() -> None:
    profile = load_profile("DDSY1352")
    f = clock_field(profile)
    base = datetime(2024, 2, 29, 23, 59, 58)
    words = [(24 << 8) | 2, (29 << 8) | 23, (59 << 8) | 58, (6 << 8) | 0]
    assert decode_clock(profile, f, words) == base
    assert decode_clock(profile, f, [(23 << 8) | 2, *words[1:]]) is None  # no 29 Feb 2023
