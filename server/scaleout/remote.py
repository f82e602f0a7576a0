"""Meter channels across processes: the core's reads and writes carried out by the owning worker.

`RemoteDirectory` is a `ChannelDirectory` whose channels send `read_registers` and
`write_registers` commands to the worker that owns the meter's gateway and wait for the
outcome, so `ChannelExecutor` runs unchanged on a core that holds no links. Failures come
back as the same `LinkError` subclasses a local channel raises: no outcome in time is a
`LinkTimeout`; a worker that no longer owns the gateway makes the channel wait for the
next assignment and send again; no live owner until the deadline is a `LinkDown`.
`carry_out` is the worker's side: it runs the command on its own channel.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any

from config.model import Site
from config.profile import RegisterProfile, load_profile
from protocols.link_errors import BadReply, LinkDown, LinkError, LinkTimeout, ModbusException
from server.acquisition.channels import ChannelDirectory, Dlt645Route, MeterChannel
from server.bus import Assignment, Command, CommandFailed, CommandSender, Outcome

READ = "read_registers"
WRITE = "write_registers"
NOT_OWNER_RETRY_S = 0.25


def _error_detail(exc: LinkError) -> str:
    """A link error as the JSON detail of a failed outcome."""
    body: dict[str, Any] = {"error": type(exc).__name__, "link": exc.link, "reason": exc.reason}
    if isinstance(exc, ModbusException):
        body |= {"function": exc.function, "code": exc.code, "name": exc.name}
    return json.dumps(body, separators=(",", ":"))


def link_error_of(detail: str, gateway: str) -> LinkError:
    """The `LinkError` a failed outcome's detail describes (a plain one when unreadable)."""
    try:
        body = json.loads(detail)
        kind, link, reason = body["error"], str(body["link"]), str(body["reason"])
        if kind == "ModbusException":
            return ModbusException(link, int(body["function"]), int(body["code"]), body["name"])
    except (ValueError, KeyError, TypeError):
        return LinkError(gateway, f"remote command failed: {detail}")
    known: dict[str, type[LinkError]] = {
        "LinkTimeout": LinkTimeout,
        "LinkDown": LinkDown,
        "BadReply": BadReply,
    }
    return known.get(kind, LinkError)(link, reason)


async def carry_out(directory: ChannelDirectory, command: Command) -> str:
    """Run a remote channel command on the local channel; the outcome's detail.

    Link failures raise `CommandFailed` with the error as JSON; a malformed command or a
    meter without a channel raises `ValueError` (the outcome `rejected`).
    """
    try:
        channel = directory.channel(command.meter_id)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    address = command.args.get("address")
    if not isinstance(address, int) or isinstance(address, bool) or not 0 <= address <= 0xFFFF:
        raise ValueError(f"{command.action}: address {address!r} is not a register address")
    try:
        if command.action == READ:
            count = command.args.get("count")
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 125:
                raise ValueError(f"{READ}: count {count!r} is not 1..125")
            registers = await channel.read(address, count)
            return ",".join(str(r) for r in registers)
        if command.action == WRITE:
            raw = command.args.get("values")
            if not isinstance(raw, str) or not raw:
                raise ValueError(f"{WRITE}: values must be comma-separated registers")
            await channel.write(address, [int(v) for v in raw.split(",")])
            return ""
    except LinkError as exc:
        raise CommandFailed(_error_detail(exc)) from exc
    raise ValueError(f"unknown channel action {command.action!r}")


class OutcomeWaiter:
    """Futures for commands in flight, resolved by the core's `OutcomeConsumer`."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[Outcome]] = {}

    def expect(self, command_id: str) -> asyncio.Future[Outcome]:
        """A future for the outcome of `command_id`."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        return future

    def forget(self, command_id: str) -> None:
        """Stop waiting for `command_id` (answered or given up)."""
        self._waiting.pop(command_id, None)

    def __call__(self, outcome: Outcome) -> None:
        """Hand an outcome to whoever waits for it; late outcomes are dropped."""
        future = self._waiting.pop(outcome.command_id, None)
        if future is not None and not future.done():
            future.set_result(outcome)


class AssignmentWatch:
    """The latest published assignment, and a way to wait for the next one."""

    def __init__(self) -> None:
        self.current: Assignment | None = None
        self._changed = asyncio.Event()

    def publish(self, assignment: Assignment) -> None:
        """Record `assignment`; wake the waiters when its generation is new."""
        if self.current is not None and self.current.generation == assignment.generation:
            return
        self.current = assignment
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, within: float) -> None:
        """Wait until a new generation is published, or `within` seconds."""
        event = self._changed
        try:
            async with asyncio.timeout(max(within, 0.0)):
                await event.wait()
        except TimeoutError:
            return


class RemoteChannel:
    """One meter's channel, carried out by the worker that owns its gateway."""

    def __init__(self, meter_id: str, gateway: str, directory: RemoteDirectory) -> None:
        self.meter_id = meter_id
        self.gateway = gateway
        self._directory = directory

    def __repr__(self) -> str:
        return f"<RemoteChannel {self.meter_id} via {self.gateway}>"

    async def read(self, pdu_address: int, count: int) -> tuple[int, ...]:
        """`count` holding registers from `pdu_address`, read by the owning worker."""
        detail = await self._directory.send(self, READ, {"address": pdu_address, "count": count})
        try:
            registers = tuple(int(v) for v in detail.split(",")) if detail else ()
        except ValueError:
            raise BadReply(self.gateway, f"remote read returned {detail!r}") from None
        if len(registers) != count:
            raise BadReply(self.gateway, f"remote read returned {len(registers)} of {count}")
        return registers

    async def write(self, pdu_address: int, values: Sequence[int]) -> None:
        """Write `values` from `pdu_address`, through the owning worker."""
        text = ",".join(str(int(v)) for v in values)
        await self._directory.send(self, WRITE, {"address": pdu_address, "values": text})


class RemoteDirectory(ChannelDirectory):
    """Channels of the worker-polled meters, plus the core's own (`local`) for the rest."""

    def __init__(
        self,
        site: Site,
        gateways: Collection[str],
        sender: CommandSender,
        waiter: OutcomeWaiter,
        watch: AssignmentWatch,
        *,
        timeout: float = 5.0,
        local: Callable[[], ChannelDirectory | None] = lambda: None,
    ) -> None:
        super().__init__({}, {})
        self.site = site
        self.gateways = frozenset(gateways)
        self.sender = sender
        self.waiter = waiter
        self.watch = watch
        self.timeout = timeout
        self.local = local
        self._remote = {
            m.id: m.gateway
            for m in site.meters
            if m.gateway is not None and m.gateway in self.gateways
        }
        self._profiles: dict[str, RegisterProfile] = {}

    def __len__(self) -> int:
        local = self.local()
        return len(self._remote) + (len(local) if local is not None else 0)

    def __contains__(self, meter_id: object) -> bool:
        local = self.local()
        return meter_id in self._remote or (local is not None and meter_id in local)

    def channel(self, meter_id: str) -> MeterChannel:
        """The remote channel of a worker-polled meter, else the core's own channel."""
        gateway = self._remote.get(meter_id)
        if gateway is not None:
            return RemoteChannel(meter_id, gateway, self)
        local = self.local()
        if local is None:
            raise KeyError(f"no channel for meter {meter_id!r} (unknown, or not polled)")
        return local.channel(meter_id)

    def dlt645_route(self, meter_id: str) -> Dlt645Route | None:
        """DL/T 645 meters sit behind dial-in gateways, which the core itself polls."""
        local = self.local()
        return None if local is None else local.dlt645_route(meter_id)

    def profile(self, meter_id: str) -> RegisterProfile:
        """The register profile of `meter_id`; a `KeyError` names an unknown meter."""
        if meter_id not in self._profiles:
            try:
                model = self.site.meter(meter_id).model
            except KeyError:
                raise KeyError(f"no register profile for meter {meter_id!r}") from None
            self._profiles[meter_id] = load_profile(model)
        return self._profiles[meter_id]

    async def send(self, channel: RemoteChannel, action: str, args: dict[str, Any]) -> str:
        """Send one channel command to the owner and wait for its outcome; the detail."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        last = "no live worker owns it"
        while (remaining := deadline - loop.time()) > 0:
            assignment = self.watch.current
            if assignment is None or assignment.owner(channel.gateway) is None:
                await self.watch.changed(remaining)
                continue
            command = Command(uuid.uuid4().hex, channel.gateway, channel.meter_id, action, args)
            future = self.waiter.expect(command.command_id)
            try:
                await self.sender.send_to_owner(assignment, command)
                async with asyncio.timeout(max(deadline - loop.time(), 0.0)):
                    outcome = await future
            except TimeoutError:
                raise LinkTimeout(
                    channel.gateway, f"no outcome from the owning worker in {self.timeout} s"
                ) from None
            finally:
                self.waiter.forget(command.command_id)
            if outcome.status == "done":
                return outcome.detail
            if outcome.status == "failed":
                raise link_error_of(outcome.detail, channel.gateway)
            if outcome.status == "rejected":
                raise LinkError(channel.gateway, f"worker rejected {action}: {outcome.detail}")
            # The worker does not poll the gateway (yet, or any more): try again once the
            # assignment moves, or shortly, as a worker takes up its share a beat late.
            last = f"{outcome.worker} does not poll it"
            await self.watch.changed(min(NOT_OWNER_RETRY_S, deadline - loop.time()))
        raise LinkDown(channel.gateway, f"no worker carried out {action} in time ({last})")
