"""Simulated meters answering DL/T 645-2007: reads of the DOMAIN §3 DIs, relay, time, freeze.

Relay control: 1A trips and holds the relay open, 3A (power protect) holds it closed, 1B
and 3B hand it back to the meter's own logic, which closes it. Run status word 3
(04000503) reports the relay open (bit 4), a trip in force (bit 6) and power protect in
force (bit 12); 04000101/04000102 report the meter's date and time.

Values are secondary-side, like the Modbus registers: primary = value × PT × CT (energy,
power, demand), × PT (voltage) or × CT (current), with PT and CT from the site. Energies
are the meter's own counters (0.01 kWh), which wrap at 1,000,000 kWh. Parameter writes (14)
are refused with "unauthorised": the simulated meters take settings over Modbus only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Final

import numpy as np

from protocols.dlt645 import BROADCAST, Dlt645Frame, Function
from protocols.dlt645_di import (
    DI_TABLE,
    METER_DATE,
    METER_TIME,
    POWER_PROTECT_BIT,
    RELAY_OPEN_BIT,
    RELAY_ORDERED_OPEN_BIT,
    RUN_STATUS_3,
    DayHour,
    FieldValue,
    Value,
)
from protocols.dlt645_messages import (
    Acknowledgement,
    BroadcastTime,
    ErrorReply,
    FreezeRequest,
    Message,
    ReadAddressReply,
    ReadAddressRequest,
    ReadFollowUpRequest,
    ReadReply,
    ReadRequest,
    RelayAction,
    RelayRequest,
    WriteRequest,
)
from protocols.errors import EncodeError
from sim.daytables import BUCKET_CODE
from sim.meter_commands import FREEZE_DAY, FREEZE_HOUR, MeterCommands

OTHER_ERROR: Final = 0x01
NO_DATA: Final = 0x02
UNAUTHORISED: Final = 0x04
ENERGY_WRAP: Final = 100_000_000  # XXXXXX.XX: eight digits of 0.01 kWh
MONEY_MAX: Final = 99_999_999
POWER_MAX: Final = Decimal("79.9999")  # signed XX.XXXX
TARIFFS: Final = ("total", *BUCKET_CODE)  # DL/T 645 tariff 1..4 = sharp, peak, flat, valley

_RELAY: Final = {
    RelayAction.TRIP: "open",
    RelayAction.ALLOW_CLOSE: "auto",
    RelayAction.POWER_PROTECT_ON: "close",
    RelayAction.POWER_PROTECT_OFF: "auto",
}
_PHASED: Final = {0x0201: ("u", "pt", 1), 0x0202: ("i", "ct", 3)}
_POWERED: Final = {0x0203: ("p", 4), 0x0206: ("pf", 3)}


class NoData(LookupError):
    """The meter has no value for this DI (error bit 0x02)."""


def _fixed(value: float, decimals: int) -> Decimal:
    return Decimal(round(value * 10**decimals)).scaleb(-decimals)


class Dlt645Meters:
    """The meters on one DL/T 645 line, by address; `answer` turns a request into replies."""

    def __init__(self, commands: MeterCommands, rows_by_address: Mapping[str, int]) -> None:
        """Meters of the fleet behind `commands`, addressed by their 12-digit addresses."""
        self.commands = commands
        self.fleet = commands.fleet
        self.rows = dict(rows_by_address)

    def match(self, address: str) -> list[tuple[str, int]]:
        """The meters an address names: itself, or every one a wildcard (A nibbles) fits."""
        if address in self.rows:
            return [(address, self.rows[address])]
        if "A" not in address:
            return []
        return [
            (own, row)
            for own, row in self.rows.items()
            if all(a == "A" or a == o for a, o in zip(address, own, strict=True))
        ]

    def answer(self, message: Message) -> list[tuple[int, Dlt645Frame]]:
        """(meter row, reply frame) for each meter that answers; broadcasts get none."""
        if isinstance(message, BroadcastTime):
            self.commands.set_clock(list(self.rows.values()), message.when)
            return []
        address = getattr(message, "address", None)
        if address is None:
            return []
        if address == BROADCAST:
            return []  # a broadcast is never answered
        targets = self.match(address)
        if len(targets) != 1:
            return []  # nobody, or several meters talking over each other on the line
        own, row = targets[0]
        return [(row, self._reply(own, row, message).to_frame())]

    def _reply(self, address: str, row: int, message: Message) -> Message:
        if isinstance(message, ReadAddressRequest):
            return ReadAddressReply(address)
        if isinstance(message, ReadRequest):
            try:
                return ReadReply.of(address, message.di, self.value(row, message.di))
            except (NoData, EncodeError):
                return ErrorReply(address, Function.READ, NO_DATA)
        if isinstance(message, ReadFollowUpRequest):
            return ErrorReply(address, Function.READ_FOLLOW_UP, NO_DATA)
        if isinstance(message, RelayRequest):
            if message.expiry < self._meter_time(row):
                return ErrorReply(address, Function.RELAY, OTHER_ERROR)
            self.commands.relay(row, _RELAY[message.action])  # type: ignore[arg-type]
            return Acknowledgement(address, Function.RELAY)
        if isinstance(message, FreezeRequest):
            monthly = (message.minute, message.hour, message.day) == (0, FREEZE_HOUR, FREEZE_DAY)
            if monthly and message.month is None:
                return Acknowledgement(address, Function.FREEZE)
            return ErrorReply(address, Function.FREEZE, OTHER_ERROR)
        if isinstance(message, WriteRequest):
            return ErrorReply(address, Function.WRITE, UNAUTHORISED)
        return ErrorReply(address, Function.READ, OTHER_ERROR)

    def _meter_time(self, row: int) -> datetime:
        fleet = self.fleet
        local = datetime.fromtimestamp(fleet.now + float(fleet.clock_offset[row]), fleet.tz)
        return local.replace(tzinfo=None)

    def value(self, row: int, di: int) -> Value:
        """The value of `di` for the meter at `row`; NoData when the meter has none."""
        if di not in DI_TABLE:
            raise NoData(f"DI {di:08X}")
        high, tariff, low = di >> 16, (di >> 8) & 0xFF, di & 0xFF
        if high in (0x0000, 0x0001) and low <= 12:
            if tariff == 0xFF:
                return tuple(self._energy(row, t, low) for t in range(len(TARIFFS)))
            return self._energy(row, tariff, low)
        if high == 0x0101 and tariff in (0x00, 0xFF) and low <= 12:
            pair = self._demand(row, low)
            return (pair,) if tariff == 0xFF else pair
        tags = self.fleet.tags([row])
        ratio = {"pt": float(self.fleet.pt[row]), "ct": float(self.fleet.ct[row])}
        if high in _PHASED:
            name, by, decimals = _PHASED[high]
            return self._phases(tags, name, ratio[by], decimals, tariff)
        if high in _POWERED:
            name, decimals = _POWERED[high]
            scale = ratio["pt"] * ratio["ct"] if name == "p" else 1.0
            if tariff == 0xFF:
                keys = (name, f"{name}_a", f"{name}_b", f"{name}_c")
                return tuple(self._number(tags, k, scale, decimals, True) for k in keys)
            key = name if tariff == 0 else f"{name}_{'abc'[tariff - 1]}"
            return self._number(tags, key, scale, decimals, False)
        if di == 0x02800002:
            return self._number(tags, "f", 1.0, 2, False)
        if di == RUN_STATUS_3:
            return self.status_word(row)
        if di in (METER_DATE, METER_TIME):
            now = self._meter_time(row)
            if di == METER_TIME:
                return Decimal(int(now.strftime("%H%M%S")))
            return Decimal(int(now.strftime("%y%m%d")) * 100 + (now.weekday() + 1) % 7)
        if high == 0x0400 and tariff == 0x0B:
            return DayHour(FREEZE_DAY, FREEZE_HOUR)
        balance = int(tags["balance_fen"][0])
        if di == 0x00900200:
            return min(max(balance, 0), MONEY_MAX)
        if di == 0x00900201:
            return min(max(-balance, 0), MONEY_MAX)
        raise NoData(f"DI {di:08X}")

    def status_word(self, row: int) -> int:
        """Run status word 3: relay open, a trip in force (1A), power protect in force (3A)."""
        fleet = self.fleet
        closed, forced = bool(fleet.closed[row]), bool(fleet.forced[row])
        word = 0 if closed else RELAY_OPEN_BIT
        if forced:
            word |= POWER_PROTECT_BIT if closed else RELAY_ORDERED_OPEN_BIT
        return word

    def _energy(self, row: int, tariff: int, settlement: int) -> Decimal:
        if tariff >= len(TARIFFS):
            raise NoData(f"tariff {tariff}")
        fleet = self.fleet
        if settlement == 0:
            counts = (
                fleet.energy.total[row]
                if tariff == 0
                else fleet.energy.buckets[row, BUCKET_CODE[TARIFFS[tariff]]]
            )
        else:
            counts = fleet.freezes.counts[settlement - 1, row, tariff]
        return Decimal(int(counts) % ENERGY_WRAP).scaleb(-2)

    def _demand(self, row: int, settlement: int) -> tuple[FieldValue, FieldValue]:
        fleet = self.fleet
        ratio = float(fleet.ratio[row])
        if settlement == 0:
            tags = fleet.tags([row])
            kw, when = float(tags["demand"][0]), float(tags["demand_time"][0])
        else:
            block = fleet.freeze_block(settlement, np.array([row]))
            kw, when = float(block["demand"][0]), float(block["demand_time"][0])
        value = _fixed(0.0 if math.isnan(kw) else kw / ratio, 4)
        if math.isnan(when):
            return value, None
        local = datetime.fromtimestamp(when, fleet.tz).replace(tzinfo=None, second=0)
        return value, local

    def _phases(
        self, tags: Mapping[str, np.ndarray], name: str, ratio: float, decimals: int, index: int
    ) -> Value:
        if index == 0xFF:
            return tuple(self._number(tags, f"{name}_{p}", ratio, decimals, True) for p in "abc")
        if not 1 <= index <= 3:
            raise NoData(f"phase {index}")
        return self._number(tags, f"{name}_{'abc'[index - 1]}", ratio, decimals, False)

    @staticmethod
    def _number(
        tags: Mapping[str, np.ndarray], key: str, ratio: float, decimals: int, zero_nan: bool
    ) -> Decimal:
        value = float(tags[key][0])
        if math.isnan(value):
            if not zero_nan:
                raise NoData(key)
            value = 0.0
        number = _fixed(value / ratio, decimals)
        if decimals == 4:
            number = max(-POWER_MAX, min(POWER_MAX, number))
        return number
