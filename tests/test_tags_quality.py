"""Quality codes: severity of OPC UA StatusCodes, scalar and vectorised, and their names."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.tags.quality import (
    NEVER_READ,
    Severity,
    StatusCode,
    check_code,
    is_bad,
    is_good,
    severity,
    status_name,
)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (StatusCode.GOOD, Severity.GOOD),
        (0x00A20000, Severity.GOOD),  # GoodLocalOverride-like: still good
        (StatusCode.UNCERTAIN_LAST_USABLE_VALUE, Severity.UNCERTAIN),
        (StatusCode.UNCERTAIN_SENSOR_NOT_ACCURATE, Severity.UNCERTAIN),
        (StatusCode.BAD_COMMUNICATION_ERROR, Severity.BAD),
        (StatusCode.BAD_NO_COMMUNICATION, Severity.BAD),
        (StatusCode.BAD_OUT_OF_RANGE, Severity.BAD),
        (0xC0000000, Severity.BAD),  # reserved severity bits count as bad
    ],
)
def test_severity_of_one_code(code: Any, expected: Any) -> None:
    assert severity(code) is expected
    array = np.array([code], dtype=np.uint32)
    assert severity(array)[0] == expected
    assert is_good(array)[0] == (expected is Severity.GOOD)
    assert is_bad(array)[0] == (expected is Severity.BAD)


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (StatusCode.GOOD, 0x00000000),
        (StatusCode.UNCERTAIN_LAST_USABLE_VALUE, 0x40900000),
        (StatusCode.BAD_COMMUNICATION_ERROR, 0x80050000),
        (StatusCode.BAD_NO_COMMUNICATION, 0x80310000),
        (StatusCode.BAD_OUT_OF_RANGE, 0x803C0000),
        (StatusCode.BAD_TIMEOUT, 0x800A0000),
    ],
)
def test_codes_match_opc_ua(code: Any, value: Any) -> None:
    assert int(code) == value


def test_never_read_is_bad_no_communication() -> None:
    assert NEVER_READ == StatusCode.BAD_NO_COMMUNICATION
    assert severity(NEVER_READ) is Severity.BAD


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (StatusCode.BAD_NO_COMMUNICATION, "BadNoCommunication"),
        (StatusCode.UNCERTAIN_LAST_USABLE_VALUE, "UncertainLastUsableValue"),
        (StatusCode.GOOD, "Good"),
        (0x80AB0000, "0x80AB0000"),
    ],
)
def test_status_names(code: Any, name: Any) -> None:
    assert status_name(code) == name


@pytest.mark.parametrize("code", [-1, 0x1_0000_0000])
def test_codes_outside_32_bits_are_rejected(code: Any) -> None:
    with pytest.raises(ValueError, match="32-bit unsigned"):
        check_code(code)
    with pytest.raises(ValueError, match="32-bit unsigned"):
        severity(code)


@given(st.lists(st.integers(0, 0xFFFFFFFF), max_size=50))
def test_vectorised_severity_matches_scalar(codes: Any) -> None:
    array = np.array(codes, dtype=np.uint32)
    vector = severity(array)
    assert vector.dtype == np.uint8
    assert vector.tolist() == [int(severity(c)) for c in codes]
    assert is_good(array).tolist() == [severity(c) is Severity.GOOD for c in codes]
    assert is_bad(array).tolist() == [severity(c) is Severity.BAD for c in codes]
