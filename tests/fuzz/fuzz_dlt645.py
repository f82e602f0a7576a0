"""Atheris target: the DL/T 645 decoder, messages and DI values raise only documented errors."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from protocols.dlt645 import Dlt645Decoder
    from protocols.dlt645_messages import ReadReply, parse_message
    from protocols.errors import EncodeError, FrameError, UnknownDataIdentifier


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    decoder = Dlt645Decoder()
    while fdp.remaining_bytes():
        chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 300))
        try:
            frames = decoder.feed(chunk)
        except FrameError:
            continue
        for frame in frames:
            assert Dlt645Decoder().feed(frame.encode(0)) == [frame]
            try:
                message = parse_message(frame)
                if isinstance(message, ReadReply):
                    message.value()
            except (FrameError, UnknownDataIdentifier):
                continue
            try:
                again = message.to_frame()
            except EncodeError:
                continue
            assert parse_message(again) == message


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
