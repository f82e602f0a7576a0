"""Durable meter commands: the PostgreSQL outbox, its dispatcher, targets and events."""

from server.commands.dispatch import CommandDispatcher, DispatchReport, ExecutionError, Executor
from server.commands.events import CHANNELS, CommandEvent, CommandEvents
from server.commands.executor import ChannelExecutor
from server.commands.kinds import KINDS, register_write, slot, validate_params
from server.commands.outbox import (
    CommandOutbox,
    Enqueued,
    IdempotencyConflict,
    Reissued,
    derived_key,
)
from server.commands.queries import ForcedMode, Page, RequestSummary
from server.commands.states import (
    STATES,
    TRANSITIONS,
    Claim,
    Command,
    RetryPolicy,
    TransitionRefused,
    next_state,
)
from server.commands.store import CommandNotFound, LeaseLost
from server.commands.targets import Target, resolve
from server.commands.worklist import Worklist

__all__ = [
    "CHANNELS",
    "KINDS",
    "STATES",
    "TRANSITIONS",
    "ChannelExecutor",
    "Claim",
    "Command",
    "CommandDispatcher",
    "CommandEvent",
    "CommandEvents",
    "CommandNotFound",
    "CommandOutbox",
    "DispatchReport",
    "Enqueued",
    "ExecutionError",
    "Executor",
    "ForcedMode",
    "IdempotencyConflict",
    "LeaseLost",
    "Page",
    "Reissued",
    "RequestSummary",
    "RetryPolicy",
    "Target",
    "TransitionRefused",
    "Worklist",
    "derived_key",
    "next_state",
    "register_write",
    "resolve",
    "slot",
    "validate_params",
]
