"""One simulated meter as a Modbus slave: reads from the register image, writes as commands.

The same answers serve every transport (Modbus TCP, a DTU's serial line, the 4G downlink).
Faults are applied by the transport through `reply_fault`: a silent meter sends nothing, a
slow one answers late, a corrupt reply has a damaged checksum.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from protocols.errors import ProtocolError
from protocols.modbus_rtu import (
    MAX_READ_COUNT,
    ExceptionReply,
    ReadHoldingRegisters,
    RegistersReply,
    Reply,
    Request,
    WriteMultipleRegisters,
    WriteReply,
    WriteSingleRegister,
)
from protocols.register_writes import IllegalWriteAddress, IllegalWriteValue, decode_write
from sim.faults import FaultTable
from sim.meter_commands import MeterCommands, UnsupportedCommand
from sim.register_image import IllegalAddress, RegisterImage

log = logging.getLogger(__name__)

ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
SERVER_DEVICE_FAILURE = 0x04


@dataclass(frozen=True, slots=True)
class ReplyFault:
    """What the fault table does to one reply: drop it, delay it (s), or damage it."""

    silent: bool = False
    delay_s: float = 0.0
    corrupt: bool = False


def reply_fault(faults: FaultTable, row: int) -> ReplyFault:
    """The faults of the meter at `row` for the reply it is about to send."""
    if faults.is_silent(row):
        return ReplyFault(silent=True)
    return ReplyFault(delay_s=faults.delay_s(row), corrupt=faults.corrupt(row))


def damage(frame: bytes, at: int = -2) -> bytes:
    """The frame with the byte at `at` inverted (by default the checksum's first byte)."""
    data = bytearray(frame)
    data[at] ^= 0xFF
    return bytes(data)


class ModbusSlaves:
    """Answers Modbus requests (function 03, 06, 16) for the meters of the fleet."""

    def __init__(self, image: RegisterImage, commands: MeterCommands) -> None:
        """Reads come from `image`; writes become `commands`."""
        self.image = image
        self.commands = commands

    def answer(self, row: int, request: Request, slave: int | None = None) -> Reply:
        """The reply of the meter at `row` (as slave `slave`, default the request's)."""
        unit = request.slave if slave is None else slave
        try:
            if isinstance(request, ReadHoldingRegisters):
                if not 1 <= request.count <= MAX_READ_COUNT:
                    return ExceptionReply(unit, request.function, ILLEGAL_DATA_VALUE)
                values = self.image.read(row, request.address, request.count)
                return RegistersReply(unit, request.function, tuple(values))
            self.write(row, request)
        except IllegalAddress:
            return ExceptionReply(unit, request.function, ILLEGAL_DATA_ADDRESS)
        except (IllegalWriteAddress, IllegalWriteValue, UnsupportedCommand) as exc:
            log.debug("meter row %d refused %s: %s", row, request, exc)
            return ExceptionReply(unit, request.function, exc.exception_code)
        except (ProtocolError, ValueError) as exc:
            log.debug("meter row %d could not apply %s: %s", row, request, exc)
            return ExceptionReply(unit, request.function, ILLEGAL_DATA_VALUE)
        if isinstance(request, WriteSingleRegister):
            return WriteReply(unit, request.function, request.address, request.value)
        return WriteReply(unit, request.function, request.address, len(request.values))

    def write(self, row: int, request: WriteSingleRegister | WriteMultipleRegisters) -> None:
        """Decode a write by the meter's profile and carry it out; raises the refusal."""
        values = (request.value,) if isinstance(request, WriteSingleRegister) else request.values
        command, params = decode_write(self.image.profile(row), request.address, values)
        self.commands.write(row, command, params)
