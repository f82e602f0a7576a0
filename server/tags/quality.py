"""Quality codes of tag values: the OPC UA StatusCodes parkgrid uses, and their severity."""

from __future__ import annotations

from enum import IntEnum
from typing import Final, overload

import numpy as np
import numpy.typing as npt

QualityArray = npt.NDArray[np.uint32]

# OPC UA Part 4 §7.34: the top two bits of a StatusCode are its severity.
_SEVERITY_SHIFT: Final = 30


class StatusCode(IntEnum):
    """The OPC UA StatusCodes a tag quality may hold (values from OPC UA Part 6 Annex A)."""

    GOOD = 0x00000000
    UNCERTAIN = 0x40000000
    UNCERTAIN_NO_COMMUNICATION_LAST_USABLE_VALUE = 0x408F0000
    UNCERTAIN_LAST_USABLE_VALUE = 0x40900000
    UNCERTAIN_SENSOR_NOT_ACCURATE = 0x40930000
    UNCERTAIN_ENGINEERING_UNITS_EXCEEDED = 0x40940000
    BAD = 0x80000000
    BAD_COMMUNICATION_ERROR = 0x80050000
    BAD_DECODING_ERROR = 0x80070000
    BAD_TIMEOUT = 0x800A0000
    BAD_NO_COMMUNICATION = 0x80310000
    BAD_WAITING_FOR_INITIAL_DATA = 0x80320000
    BAD_OUT_OF_RANGE = 0x803C0000
    BAD_CONFIGURATION_ERROR = 0x80890000
    BAD_NOT_CONNECTED = 0x808A0000
    BAD_DEVICE_FAILURE = 0x808B0000
    BAD_SENSOR_FAILURE = 0x808C0000
    BAD_OUT_OF_SERVICE = 0x808D0000


class Severity(IntEnum):
    """How far a value may be trusted: the severity bits of its StatusCode."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


NEVER_READ: Final = StatusCode.BAD_NO_COMMUNICATION
"""The quality of a group that has not been read since the server started."""

_SEVERITY_OF_BITS: Final = np.array([0, 1, 2, 2], dtype=np.uint8)
"""Severity per top-two-bit pattern; 0b11 is reserved by OPC UA and counted as bad."""


@overload
def severity(code: int) -> Severity: ...


@overload
def severity(code: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]: ...


def severity(code: int | npt.NDArray[np.integer]) -> Severity | npt.NDArray[np.uint8]:
    """The severity of one StatusCode, or of each code of an array (as `Severity` values)."""
    if isinstance(code, np.ndarray):
        bits = np.right_shift(code.astype(np.uint32, copy=False), _SEVERITY_SHIFT)
        result: npt.NDArray[np.uint8] = _SEVERITY_OF_BITS[bits]
        return result
    return Severity(int(_SEVERITY_OF_BITS[(check_code(code) >> _SEVERITY_SHIFT) & 0b11]))


def is_good(codes: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
    """Mask of the codes whose severity is good."""
    return np.equal(np.right_shift(codes.astype(np.uint32, copy=False), _SEVERITY_SHIFT), 0)


def is_bad(codes: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
    """Mask of the codes whose severity is bad (including the reserved severity bits)."""
    return np.greater_equal(np.right_shift(codes.astype(np.uint32, copy=False), _SEVERITY_SHIFT), 2)


def status_name(code: int) -> str:
    """The OPC UA name of a code (`BadNoCommunication`), or its hex value when unknown."""
    value = check_code(code)
    try:
        member = StatusCode(value)
    except ValueError:
        return f"0x{value:08X}"
    return "".join(part.capitalize() for part in member.name.split("_"))


def check_code(code: int) -> int:
    """`code` as an int, or a `ValueError` when it does not fit in 32 unsigned bits."""
    value = int(code)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"a StatusCode is a 32-bit unsigned integer, got {code!r}")
    return value
