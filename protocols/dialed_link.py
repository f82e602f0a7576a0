"""The TCP connection the server dials to a field device: one request in flight, timeouts, backoff.

A request that finds the link down connects first; a failed connect starts an exponential
backoff (capped) during which requests fail at once with LinkDown instead of piling up on a
dead gateway. The wire format lives in subclasses, which decode what `_received` gets and
settle the request in flight with `_settle` or `_fail`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from protocols.link_errors import LinkDown, LinkError, LinkTimeout

log = logging.getLogger(__name__)

ExpectT = TypeVar("ExpectT")
ReplyT = TypeVar("ReplyT")

StateCallback = Callable[[str, str, bool, float], None]
"""`on_state(kind, id, online, at)`: a link or session went online or offline at `at`."""


class Clock(Protocol):
    """The wall clock a link records times with (`server.clock.Clock` has this shape)."""

    def time(self) -> float:
        """The current time, Unix seconds."""
        ...


class WallClock:
    """The operating system's wall clock, the default of links that are given none."""

    def time(self) -> float:
        """The current time, Unix seconds."""
        return time.time()


class Backoff:
    """Exponential reconnect delays: `initial`, doubling on each failure, capped at `maximum`."""

    def __init__(self, initial: float = 0.5, maximum: float = 60.0) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def failed(self) -> float:
        """The delay before the next attempt after one more failure."""
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """Start again from `initial` (after a success)."""
        self._next = self.initial


class _LinkProtocol(asyncio.Protocol):
    """Hands one connection's bytes and loss to its link; stale connections are ignored."""

    def __init__(self, link: DialedLink[Any, Any]) -> None:
        self.link = link
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if self.link._protocol is self:
            self.link._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.link._protocol is self:
            self.link._lost("connection closed by the peer" if exc is None else str(exc))


class DialedLink(ABC, Generic[ExpectT, ReplyT]):
    """The base of the links the server dials: connection, lock, timeout, backoff, state."""

    kind: ClassVar[str] = "link"

    def __init__(
        self,
        link_id: str,
        host: str,
        port: int,
        *,
        timeout: float = 1.0,
        connect_timeout: float | None = None,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        on_state: StateCallback | None = None,
    ) -> None:
        self.id = link_id
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.backoff = backoff if backoff is not None else Backoff()
        self.clock: Clock = clock if clock is not None else WallClock()
        self.on_state = on_state
        self.online = False
        self.last_reply_at: float | None = None
        self._lock = asyncio.Lock()
        self._protocol: _LinkProtocol | None = None
        self._transport: asyncio.Transport | None = None
        self._retry_at: float | None = None
        self._down_reason = "not connected yet"
        self._future: asyncio.Future[ReplyT] | None = None
        self._expect: ExpectT | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.host}:{self.port}>"

    async def close(self) -> None:
        """Close the connection; requests after this fail with LinkDown."""
        self._closed = True
        protocol = self._protocol
        self._drop("link closed")
        if protocol is not None:
            await protocol.closed

    async def _exchange(self, wire: bytes, expect: ExpectT | None) -> ReplyT | None:
        """Send `wire` and wait for the reply that answers `expect` (None: no reply)."""
        async with self._lock:
            transport = await self._connected()
            if expect is None:
                transport.write(wire)
                return None
            loop = asyncio.get_running_loop()
            future: asyncio.Future[ReplyT] = loop.create_future()
            self._future = future
            self._expect = expect
            self._sending(expect)
            transport.write(wire)
            timer = loop.call_later(self.timeout, self._expire, future)
            try:
                reply = await future
            finally:
                timer.cancel()
                if future.cancelled() or future.exception() is not None:
                    self._abandon()
                self._future = None
                self._expect = None
            self.last_reply_at = self.clock.time()
            return reply

    async def _connected(self) -> asyncio.Transport:
        """The open transport, connecting first if need be (LinkDown during backoff)."""
        if self._closed:
            raise LinkDown(self.id, "link closed")
        if self._transport is not None:
            return self._transport
        now = self.clock.time()
        if self._retry_at is not None and now < self._retry_at:
            wait = self._retry_at - now
            raise LinkDown(self.id, f"{self._down_reason}; next attempt in {wait:.2f} s")
        loop = asyncio.get_running_loop()
        protocol = _LinkProtocol(self)
        try:
            async with asyncio.timeout(self.connect_timeout):
                transport, _ = await loop.create_connection(lambda: protocol, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            reason = f"connect to {self.host}:{self.port} failed: {exc or 'timed out'}"
            self._retry_at = self.clock.time() + self.backoff.failed()
            self._set_online(False, reason)
            raise LinkDown(self.id, reason) from None
        assert isinstance(transport, asyncio.Transport)
        if self._closed:
            transport.close()
            await protocol.closed
            raise LinkDown(self.id, "link closed")
        self.backoff.reset()
        self._retry_at = None
        self._transport = transport
        self._protocol = protocol
        self._stream_started()
        self._set_online(True, "connected")
        return transport

    def _expire(self, future: asyncio.Future[ReplyT]) -> None:
        if not future.done():
            future.set_exception(LinkTimeout(self.id, f"no reply within {self.timeout:g} s"))

    def _settle(self, reply: ReplyT) -> None:
        """Complete the request in flight with its reply."""
        future = self._future
        if future is not None and not future.done():
            future.set_result(reply)

    def _fail(self, error: LinkError) -> None:
        """Fail the request in flight (if any) with `error`."""
        future = self._future
        if future is not None and not future.done():
            future.set_exception(error)

    def _drop(self, reason: str) -> None:
        """Close the connection and fail the request in flight; the next request reconnects."""
        transport = self._transport
        self._transport = None
        self._protocol = None
        if transport is not None:
            transport.close()
        self._fail(LinkDown(self.id, reason))
        self._set_online(False, reason)

    def _lost(self, reason: str) -> None:
        self._transport = None
        self._protocol = None
        self._fail(LinkDown(self.id, reason))
        self._set_online(False, reason)

    def _set_online(self, online: bool, reason: str) -> None:
        """Record a transition, log it once, and tell `on_state`."""
        if online == self.online:
            if not online:
                self._down_reason = reason
            return
        self.online = online
        if online:
            log.info("%s %s online (%s:%s)", self.kind, self.id, self.host, self.port)
        else:
            self._down_reason = reason
            level = logging.INFO if self._closed else logging.WARNING
            log.log(level, "%s %s offline: %s", self.kind, self.id, reason)
        if self.on_state is not None:
            try:
                self.on_state(self.kind, self.id, online, self.clock.time())
            except Exception:
                log.exception("on_state callback failed for %s %s", self.kind, self.id)

    # Hooks for the wire format.

    def _stream_started(self) -> None:
        """A new connection is up: start decoding afresh."""

    def _sending(self, expect: ExpectT) -> None:
        """A request answering to `expect` is about to be written."""

    def _abandon(self) -> None:
        """The request in flight failed or was cancelled; its reply may still come."""

    @abstractmethod
    def _received(self, data: bytes) -> None:
        """Bytes arrived on the connection: decode them, then `_settle` or `_fail`."""
