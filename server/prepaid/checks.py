"""Argument checks for ledger calls: names, fen amounts, reasons and provider events."""

from __future__ import annotations

from server.prepaid.records import LedgerError

MAX_PROVIDER_TEXT = 128


def check_name(value: object, what: str) -> str:
    """`value` stripped, or a `LedgerError` when it is not non-empty text."""
    if not isinstance(value, str) or not value.strip():
        raise LedgerError(f"{what} must be non-empty text, got {value!r}")
    return value.strip()


def positive_fen(amount: object) -> int:
    """`amount` as positive integer fen, or a `LedgerError`."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise LedgerError(f"amount_fen must be integer fen, got {amount!r}")
    if amount <= 0:
        raise LedgerError(f"amount_fen must be positive, got {amount}")
    return amount


def reason_text(reason: object) -> str:
    """A reason as stripped text, or a `LedgerError`."""
    if not isinstance(reason, str):
        raise LedgerError(f"reason must be text, got {reason!r}")
    return reason.strip()


def provider_event(provider: object, event_id: object) -> tuple[str, str] | None:
    """The (provider, event id) pair, None for neither, or a `LedgerError` for half of one."""
    if provider is None and event_id is None:
        return None
    if provider is None or event_id is None:
        raise LedgerError("provider and provider_event_id go together: give both or neither")
    for value, what in ((provider, "provider"), (event_id, "provider_event_id")):
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_PROVIDER_TEXT:
            raise LedgerError(
                f"{what} must be non-empty text of at most {MAX_PROVIDER_TEXT} characters,"
                f" got {value!r}"
            )
    return str(provider).strip(), str(event_id).strip()
