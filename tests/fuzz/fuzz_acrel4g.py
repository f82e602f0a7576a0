"""Atheris target: the Acrel 4G decoder, both directions, raises only FrameError."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from protocols.acrel4g import Acrel4GDecoder, Sender
    from protocols.errors import EncodeError, FrameError


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    sender = Sender.METER if fdp.ConsumeBool() else Sender.SERVER
    decoder = Acrel4GDecoder(sender)
    while fdp.remaining_bytes():
        chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 400))
        try:
            frames = decoder.feed(chunk)
        except FrameError:
            continue
        for frame in frames:
            try:
                wire = frame.encode()
            except EncodeError:
                continue
            assert Acrel4GDecoder(sender).feed(wire) == [frame]


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
