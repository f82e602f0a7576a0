"""Atheris target: the Modbus RTU reply and request decoders raise only FrameError."""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from protocols.errors import EncodeError, FrameError
    from protocols.modbus_rtu import (
        ReadHoldingRegisters,
        Request,
        RtuReplyDecoder,
        RtuRequestDecoder,
        WriteMultipleRegisters,
        WriteSingleRegister,
        decode_reply,
        decode_request,
    )


def expectation(fdp: atheris.FuzzedDataProvider) -> Request:
    slave = fdp.ConsumeIntInRange(1, 247)
    kind = fdp.ConsumeIntInRange(0, 2)
    if kind == 0:
        return ReadHoldingRegisters(
            slave, fdp.ConsumeIntInRange(0, 0xFF00), fdp.ConsumeIntInRange(1, 125)
        )
    if kind == 1:
        return WriteSingleRegister(slave, fdp.ConsumeUInt(2), fdp.ConsumeUInt(2))
    return WriteMultipleRegisters(slave, fdp.ConsumeIntInRange(0, 0xFF00), (1, 2))


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    replies = RtuReplyDecoder(expectation(fdp))
    requests = RtuRequestDecoder()
    while fdp.remaining_bytes():
        chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 300))
        for decode in (decode_reply, decode_request):
            with contextlib.suppress(FrameError):
                decode(chunk)
        with contextlib.suppress(FrameError):
            replies.feed(chunk)
        try:
            found = requests.feed(chunk)
        except FrameError:
            continue
        for request in found:
            with contextlib.suppress(EncodeError):
                assert decode_request(request.encode()) == request


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
