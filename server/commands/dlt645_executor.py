"""Commands to DL/T 645 meters behind DTU gateways: relay control (1C), broadcast time (08).

| kind            | sent                             | confirmed by (run status word 3 / clock)   |
| --------------- | -------------------------------- | ------------------------------------------ |
| relay_open      | 1C N1=1A (trip)                  | relay open (bit 4 set)                     |
| relay_close     | 1C N1=1B (allow close)           | relay closed (bit 4 clear)                 |
| forced_mode_on  | 3A (power protect) when `relay`  | closed and power protect in force (bit 12) |
|                 | is closed; 1A when it is open    | open and a trip in force (bit 6)           |
| forced_mode_off | 3B, then 1B                      | neither trip nor power protect in force    |
| time_sync       | 08 broadcast on the gateway      | 04000101 + 04000102 within the tolerance   |

1B only allows the relay to close: a meter whose own logic keeps it open (no credit)
reads back as not done. A forced close is 3A (forced_mode_on with relay closed); a real
meter needs both 3B and 1B to hand a held relay back to its own logic, hence the two
frames of forced_mode_off. Broadcast time reaches every meter behind the gateway.
Other kinds are refused for good: the meters take settings over their Modbus profile only.

Errors: any LinkError is retryable except a meter refusing with "unauthorised" (0x04, a
wrong password or operator), which no retry can fix; a read-back failure is retryable.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from protocols.dlt645_di import (
    METER_DATE,
    METER_TIME,
    POWER_PROTECT_BIT,
    RELAY_OPEN_BIT,
    RELAY_ORDERED_OPEN_BIT,
    RUN_STATUS_3,
    Value,
)
from protocols.dlt645_messages import (
    BroadcastTime,
    ReadReply,
    ReadRequest,
    RelayAction,
    RelayRequest,
    parse_message,
)
from protocols.errors import EncodeError, FrameError
from protocols.link_errors import Dlt645Refused, LinkError
from server.commands.dispatch import ExecutionError
from server.commands.states import Command

if TYPE_CHECKING:  # only the types: acquisition may import the command package itself
    from server.acquisition.channels import Dlt645Route

log = logging.getLogger(__name__)

UNAUTHORISED: Final = 0x04
DEFAULT_VALIDITY_S: Final = 300.0
NO_CODE: Final = bytes(4)
DLT645_KINDS: Final = frozenset(
    {"relay_open", "relay_close", "forced_mode_on", "forced_mode_off", "time_sync"}
)


def relay_actions(command: Command) -> tuple[RelayAction, ...]:
    """The 1C actions that carry out a relay command, in order."""
    if command.kind == "relay_open":
        return (RelayAction.TRIP,)
    if command.kind == "relay_close":
        return (RelayAction.ALLOW_CLOSE,)
    if command.kind == "forced_mode_on":
        closed = command.params.get("relay") == "closed"
        return (RelayAction.POWER_PROTECT_ON if closed else RelayAction.TRIP,)
    if command.kind == "forced_mode_off":
        return (RelayAction.POWER_PROTECT_OFF, RelayAction.ALLOW_CLOSE)
    raise ExecutionError(refusal(command.kind), retryable=False)


def relay_shown(command: Command, word: int) -> bool:
    """Whether run status word 3 shows what relay command `command` set."""
    is_open = bool(word & RELAY_OPEN_BIT)
    tripped = bool(word & RELAY_ORDERED_OPEN_BIT)
    protected = bool(word & POWER_PROTECT_BIT)
    if command.kind == "relay_open":
        return is_open
    if command.kind == "relay_close":
        return not is_open
    if command.kind == "forced_mode_on":
        if command.params.get("relay") == "closed":
            return protected and not is_open
        return tripped and is_open
    return not tripped and not protected  # forced_mode_off: the meter decides the relay


def refusal(kind: str) -> str:
    """Why a DL/T 645 meter cannot take command `kind`."""
    allowed = ", ".join(sorted(DLT645_KINDS))
    return f"{kind}: DL/T 645 meters cannot take it (only {allowed})"


def meter_clock(date: Value, time: Value) -> datetime | None:
    """The meter-local time from the digits of 04000101 (YYMMDDWW) and 04000102 (hhmmss)."""
    if not isinstance(date, Decimal | int) or not isinstance(time, Decimal | int):
        return None
    ymdw, hms = f"{int(date):08d}", f"{int(time):06d}"
    try:
        return datetime(
            2000 + int(ymdw[0:2]),
            int(ymdw[2:4]),
            int(ymdw[4:6]),
            int(hms[0:2]),
            int(hms[2:4]),
            int(hms[4:6]),
        )
    except ValueError:
        return None


def _link_error(exc: LinkError, doing: str) -> ExecutionError:
    refused_for_good = isinstance(exc, Dlt645Refused) and bool(exc.error & UNAUTHORISED)
    return ExecutionError(f"{doing}: {exc}", retryable=not refused_for_good)


class Dlt645Executor:
    """Carries relay and time commands to DL/T 645 meters and confirms them by reading back."""

    def __init__(
        self,
        *,
        clock_tolerance_s: float,
        validity_s: float = DEFAULT_VALIDITY_S,
        password: bytes = NO_CODE,
        operator: bytes = NO_CODE,
    ) -> None:
        """`validity_s`: how long after sending a relay frame the meter may still act on it."""
        if not validity_s > 0:
            raise ValueError(f"validity_s must be > 0 s, got {validity_s!r}")
        self.clock_tolerance_s = clock_tolerance_s
        self.validity_s = validity_s
        self.password = password
        self.operator = operator

    async def execute(self, command: Command, route: Dlt645Route, now_local: datetime) -> None:
        """Send the command's frames; `now_local` is the meters' wall-clock time, naive."""
        if command.kind == "time_sync":
            doing = f"broadcast time via {route.gateway_id}"
            try:
                frame = BroadcastTime(now_local).to_frame()
                await route.port.broadcast_dlt645(route.gateway_id, frame)
            except EncodeError as exc:
                raise ExecutionError(f"{doing}: {exc}", retryable=False) from None
            except LinkError as exc:
                raise _link_error(exc, doing) from exc
            return
        expiry = now_local + timedelta(seconds=self.validity_s)
        for action in relay_actions(command):
            doing = f"relay control {action.value:02X} to {route.address}"
            try:
                request = RelayRequest(route.address, self.password, self.operator, action, expiry)
                await route.port.request_dlt645(route.gateway_id, request.to_frame())
            except EncodeError as exc:
                raise ExecutionError(f"{doing}: {exc}", retryable=False) from None
            except LinkError as exc:
                raise _link_error(exc, doing) from exc

    async def confirm(self, command: Command, route: Dlt645Route, now_local: datetime) -> bool:
        """Read the meter back: whether it shows what the command set (see the module)."""
        if command.kind == "time_sync":
            date = await self._read(command, route, METER_DATE)
            time = await self._read(command, route, METER_TIME)
            clock = meter_clock(date, time)
            landed = clock is not None and (
                abs((clock - now_local).total_seconds()) <= self.clock_tolerance_s
            )
            shown: object = clock
        else:
            relay_actions(command)  # refuses any other kind
            word = await self._read(command, route, RUN_STATUS_3)
            if not isinstance(word, int):
                raise ExecutionError(f"run status word: got {word!r}", retryable=True)
            shown = f"run status word 3 = 0x{word:04X}"
            landed = relay_shown(command, word)
        if not landed:
            log.info("command %d to %s: read-back shows %s", command.id, command.meter, shown)
        return landed

    async def _read(self, command: Command, route: Dlt645Route, di: int) -> Value:
        doing = f"read-back of DI {di:08X} from {route.address}"
        try:
            reply = await route.port.request_dlt645(
                route.gateway_id, ReadRequest(route.address, di).to_frame()
            )
            message = parse_message(reply)
            if not isinstance(message, ReadReply) or message.di != di:
                raise ExecutionError(f"{doing}: got {message!r}", retryable=True)
            return message.value()
        except LinkError as exc:
            raise ExecutionError(f"{doing}: {exc}", retryable=True) from exc
        except FrameError as exc:
            raise ExecutionError(f"{doing}: {exc}", retryable=True) from exc
