"""Atheris target: the DTU session never raises and keeps its held bytes bounded."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from protocols.dtu import MAX_REGISTRATION_LENGTH, DtuIdentity, DtuSession

DEVICES = [
    DtuIdentity("gw-1", b"GW0001", b"HB"),
    DtuIdentity("gw-2", b"\x7b\x00\x02\xff", b"\xfe"),
    DtuIdentity("gw-3", b"REG-3\r\n", b"PING"),
]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    session = DtuSession(DEVICES)
    while fdp.remaining_bytes():
        session.feed(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 64)))
        assert len(session._held) <= MAX_REGISTRATION_LENGTH


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
