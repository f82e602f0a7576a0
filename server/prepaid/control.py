"""Relay decisions from balances, vectorised, and their commands through the outbox.

In prepaid mode a meter whose balance falls below minus its credit limit (赊欠) has its
relay opened; once a recharge lifts the balance back to that threshold or above, the
relay settlement opened is closed again. A forced mode (强制模式) wins until it expires;
post-paid meters, meters without billing and meters without a wallet are never tripped.
The commands are enqueued in the caller's transaction, the one holding the posting, under
a key derived from the posting, so a replay or a retry asks for the relay once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import psycopg2.extensions

from server.commands import CommandOutbox, Enqueued, derived_key

Bools = npt.NDArray[np.bool_]
Cursor = psycopg2.extensions.cursor

ACTOR: Final = "prepaid"
CHANNEL: Final = "system"
OPEN: Final = "relay_open"
CLOSE: Final = "relay_close"


@dataclass(frozen=True, slots=True, eq=False)
class RelayInputs:
    """What the decision needs for n meters, as aligned columns.

    `relay_known_open` is True only where a good reading shows the relay open (by anyone);
    `held_open` is True where settlement itself asked for the relay to open.
    """

    prepaid: Bools
    has_account: Bools
    forced: Bools
    balance_fen: npt.NDArray[np.int64]
    credit_limit_fen: npt.NDArray[np.int64]
    relay_known_open: Bools
    held_open: Bools


@dataclass(frozen=True, slots=True, eq=False)
class RelayDecisions:
    """Which of the n meters to open and which to close (never both)."""

    open: Bools
    close: Bools


@dataclass(frozen=True, slots=True)
class RelayRequest:
    """One relay command to enqueue: for `meter`, caused by ledger transaction `cause`."""

    meter: str
    kind: str
    cause: int
    balance_fen: int


def decide(inputs: RelayInputs) -> RelayDecisions:
    """Open below −credit limit if not already open; close at or above it if we opened it."""
    balance = np.asarray(inputs.balance_fen, dtype=np.int64)
    credit = np.asarray(inputs.credit_limit_fen, dtype=np.int64)
    if credit.size and credit.min() < 0:
        raise ValueError("credit limits must be ≥ 0 fen")
    eligible = inputs.prepaid & inputs.has_account & ~inputs.forced
    below = balance < -credit
    opening = eligible & below & ~inputs.held_open & ~inputs.relay_known_open
    closing = eligible & ~below & inputs.held_open
    return RelayDecisions(open=opening, close=closing)


def requests(
    meters: Sequence[str],
    decisions: RelayDecisions,
    causes: npt.ArrayLike,
    balances: npt.ArrayLike,
) -> list[RelayRequest]:
    """The decided commands as requests, each tied to the transaction that caused it."""
    cause = np.asarray(causes, dtype=np.int64)
    balance = np.asarray(balances, dtype=np.int64)
    found: list[RelayRequest] = []
    for kind, mask in ((OPEN, decisions.open), (CLOSE, decisions.close)):
        for row in np.flatnonzero(mask).tolist():
            found.append(RelayRequest(meters[row], kind, int(cause[row]), int(balance[row])))
    return found


def enqueue(outbox: CommandOutbox, request: RelayRequest, *, cur: Cursor) -> Enqueued:
    """Queue one relay command in the caller's transaction, keyed by its cause."""
    return outbox.enqueue(
        request.kind,
        {},
        request.meter,
        actor=ACTOR,
        channel=CHANNEL,
        key=derived_key("prepaid", request.meter, request.cause),
        cur=cur,
    )
