"""Atheris target: the MBAP decoder, both directions, raises only FrameError."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from protocols.errors import EncodeError, FrameError
    from protocols.modbus_rtu import (
        ReadHoldingRegisters,
        Reply,
        Request,
        WriteMultipleRegisters,
        WriteSingleRegister,
    )
    from protocols.modbus_tcp import (
        MAX_ADU_LENGTH,
        MbapDecoder,
        MbapFrame,
        Sender,
        encode_reply,
        encode_request,
    )

REQUESTS = (ReadHoldingRegisters, WriteSingleRegister, WriteMultipleRegisters)


def encoded(sender: Sender, frame: MbapFrame[Request | Reply]) -> bytes:
    """The frame encoded again in the direction it was decoded."""
    message = frame.message
    if sender is Sender.CLIENT:
        assert isinstance(message, REQUESTS)
        return encode_request(frame.transaction_id, message)
    assert not isinstance(message, REQUESTS)
    return encode_reply(frame.transaction_id, message)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    sender = Sender.CLIENT if fdp.ConsumeBool() else Sender.SERVER
    decoder = MbapDecoder(sender)
    while fdp.remaining_bytes():
        chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 400))
        try:
            frames = decoder.feed(chunk)
        except FrameError:
            continue
        assert len(decoder._buffer) < MAX_ADU_LENGTH
        for frame in frames:
            try:
                wire = encoded(sender, frame)
            except EncodeError:
                continue
            assert MbapDecoder(sender).feed(wire) == [frame]


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
