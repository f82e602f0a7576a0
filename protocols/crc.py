"""CRC16-Modbus (reflected polynomial 0xA001, initial value 0xFFFF), table-driven."""

from __future__ import annotations

from typing import TypeAlias

BytesLike: TypeAlias = bytes | bytearray | memoryview

POLYNOMIAL = 0xA001
INITIAL = 0xFFFF


def _build_table() -> tuple[int, ...]:
    """The CRC of each single byte value, shifted through eight rounds."""
    table = []
    for value in range(256):
        crc = value
        for _ in range(8):
            crc = (crc >> 1) ^ POLYNOMIAL if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


TABLE = _build_table()


def crc16_modbus(data: BytesLike, start: int = 0, end: int | None = None) -> int:
    """The CRC16-Modbus of `data[start:end]`; on the wire it goes low byte first."""
    view = memoryview(data).cast("B")
    crc = INITIAL
    table = TABLE
    for byte in view[start:end]:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def crc16_modbus_bytes(data: BytesLike) -> bytes:
    """The two CRC bytes to append to `data`, low byte first."""
    return crc16_modbus(data).to_bytes(2, "little")


def crc_matches(frame: BytesLike, start: int, end: int) -> bool:
    """Whether `frame[end:end + 2]` holds the CRC16-Modbus of `frame[start:end]`, low byte first."""
    view = memoryview(frame).cast("B")
    if end + 2 > len(view):
        return False
    return crc16_modbus(view, start, end) == view[end] | (view[end + 1] << 8)
