"""The command executor over meter channels: profile writes out, read-backs in, errors typed.

`ChannelExecutor` is the `Executor` the dispatcher runs against the field. A command
becomes its profile write (`kinds.register_write`), is encoded by the meter's register
profile (`encode_write`) and written block by block through the meter's channel; the
read-back follows `readback.read_back` (one rule per profile write, documented there).

Errors become `ExecutionError`s whose `retryable` says whether trying later can help:

- `LinkTimeout`, `LinkDown`, `BadReply` and any other `LinkError`: retryable.
- `ModbusException` 01/02/03 (illegal function, address, value): not retryable.
- `ModbusException` 04/06 (device failure, busy) and any other code: retryable.
- a command the profile cannot encode, a meter without a channel, or a write the profile
  gives no way to read back: not retryable.
- anything else: retryable, with its repr, and logged with its traceback.

Every read-back failure is retryable: the dispatcher then asks again later and never
writes blind.

A DL/T 645 meter (one with a `Dlt645Route` in the directory) takes its commands through
`Dlt645Executor` instead: relay control and broadcast time; other kinds are refused.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Final

from config.profile import RegisterProfile
from protocols.errors import EncodeError
from protocols.link_errors import LinkError, ModbusException
from protocols.register_writes import encode_write
from server.clock import Clock
from server.commands.dispatch import ExecutionError
from server.commands.dlt645_executor import Dlt645Executor
from server.commands.kinds import register_write
from server.commands.readback import Unconfirmable, read_back
from server.commands.states import Command

if TYPE_CHECKING:  # only the types: acquisition may import the command package itself
    from server.acquisition.channels import ChannelDirectory, MeterChannel

log = logging.getLogger(__name__)

REFUSED_FOR_GOOD: Final = frozenset({0x01, 0x02, 0x03})  # the same request can never pass
DEFAULT_CLOCK_TOLERANCE_S: Final = 10.0

Write = tuple[int, list[int]]


def link_error(exc: LinkError, doing: str) -> ExecutionError:
    """The `ExecutionError` for a link failure while `doing` something (see the module)."""
    if isinstance(exc, ModbusException):
        retryable = exc.code not in REFUSED_FOR_GOOD
        reason = f"{doing}: {exc.link}: meter refused: {exc.name} (Modbus exception {exc.code:02X})"
        return ExecutionError(reason, retryable=retryable)
    return ExecutionError(f"{doing}: {exc}", retryable=True)


def _span(profile: RegisterProfile, address: int, count: int) -> str:
    """Registers as the profile numbers them, e.g. `0x0057+2`."""
    return f"0x{address + profile.address_base:04X}+{count}"


class ChannelExecutor:
    """Carries commands to the meters over their channels and confirms them by reading back."""

    def __init__(
        self,
        directory: ChannelDirectory,
        *,
        clock: Clock,
        tz: tzinfo,
        clock_tolerance_s: float = DEFAULT_CLOCK_TOLERANCE_S,
    ) -> None:
        """`tz`: the meters' local time; a synced clock may be `clock_tolerance_s` off."""
        if not math.isfinite(clock_tolerance_s) or clock_tolerance_s < 0:
            raise ValueError(f"clock_tolerance_s must be ≥ 0 s, got {clock_tolerance_s!r}")
        self.directory = directory
        self.clock = clock
        self.tz = tz
        self.clock_tolerance_s = clock_tolerance_s
        self.dlt645 = Dlt645Executor(clock_tolerance_s=clock_tolerance_s)

    def local_now(self) -> datetime:
        """The meters' wall-clock time now, naive, as a time sync writes it."""
        return datetime.fromtimestamp(self.clock.time(), self.tz).replace(tzinfo=None)

    def _route(self, command: Command) -> tuple[RegisterProfile, MeterChannel]:
        try:
            return self.directory.profile(command.meter), self.directory.channel(command.meter)
        except KeyError as exc:
            raise ExecutionError(str(exc.args[0]), retryable=False) from None

    def _writes(
        self, command: Command, profile: RegisterProfile, when: datetime
    ) -> tuple[str, list[Write]]:
        """The profile write of `command` and its function-16 blocks for this meter."""
        try:
            write, arguments = register_write(command.kind, command.params, when)
            return write, encode_write(profile, write, **arguments)
        except (EncodeError, ValueError, KeyError) as exc:
            reason = f"{command.kind}: {profile.model} meters cannot take it: {exc}"
            raise ExecutionError(reason, retryable=False) from None

    def _unexpected(self, command: Command, doing: str, exc: Exception) -> ExecutionError:
        log.warning("command %d to %s: %s raised", command.id, command.meter, doing, exc_info=exc)
        return ExecutionError(f"{doing}: {exc!r}", retryable=True)

    async def execute(self, command: Command) -> None:
        """Write the command's registers to the meter; an `ExecutionError` says why not."""
        route = self.directory.dlt645_route(command.meter)
        if route is not None:
            try:
                await self.dlt645.execute(command, route, self.local_now())
            except ExecutionError:
                raise
            except Exception as exc:
                raise self._unexpected(command, "DL/T 645 command", exc) from exc
            return
        profile, channel = self._route(command)
        _, writes = self._writes(command, profile, self.local_now())
        for address, values in writes:
            doing = f"write {_span(profile, address, len(values))}"
            try:
                await channel.write(address, values)
            except LinkError as exc:
                raise link_error(exc, doing) from exc
            except Exception as exc:
                raise self._unexpected(command, doing, exc) from exc

    async def confirm(self, command: Command) -> bool:
        """Read the meter back: whether it shows what the command set (see `readback`)."""
        route = self.directory.dlt645_route(command.meter)
        if route is not None:
            try:
                return await self.dlt645.confirm(command, route, self.local_now())
            except ExecutionError:
                raise
            except Exception as exc:
                raise self._unexpected(command, "DL/T 645 read-back", exc) from exc
        profile, channel = self._route(command)
        now = self.local_now()
        write, writes = self._writes(command, profile, now)
        try:
            plan = read_back(
                profile, write, writes, now_local=now, clock_tolerance_s=self.clock_tolerance_s
            )
        except Unconfirmable as exc:
            raise ExecutionError(str(exc), retryable=False) from None
        shown: list[tuple[int, ...]] = []
        for address, count in plan.reads:
            shown.append(await self._read(command, profile, channel, address, count))
        landed = plan.judge(shown)
        if not landed:
            log.info(
                "command %d to %s: read-back does not show it (%s): %s",
                command.id,
                command.meter,
                plan.rule,
                shown,
            )
        return landed

    async def _read(
        self,
        command: Command,
        profile: RegisterProfile,
        channel: MeterChannel,
        address: int,
        count: int,
    ) -> tuple[int, ...]:
        doing = f"read-back of {_span(profile, address, count)}"
        try:
            values = await channel.read(address, count)
        except LinkError as exc:
            raise ExecutionError(link_error(exc, doing).reason, retryable=True) from exc
        except Exception as exc:
            raise self._unexpected(command, doing, exc) from exc
        if len(values) != count:
            raise ExecutionError(f"{doing}: {len(values)} register(s) came back", retryable=True)
        return tuple(values)
