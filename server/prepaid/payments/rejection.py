"""Why a payment callback was refused, as the HTTP status and code the provider is sent."""

from __future__ import annotations

BAD_REQUEST = 400
UNAUTHORIZED = 401
NOT_FOUND = 404
CONFLICT = 409
UNPROCESSABLE = 422


class CallbackRejected(Exception):
    """A provider notification that is refused: nothing is posted and the provider retries."""

    def __init__(self, status: int, code: str, message: str) -> None:
        """Refuse with an HTTP `status` (4xx/5xx), a short `code` and a message for the log."""
        if not 400 <= status <= 599:
            raise ValueError(f"a rejection needs a 4xx or 5xx status, got {status}")
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def malformed(message: str) -> CallbackRejected:
    """A notification that cannot be parsed (400)."""
    return CallbackRejected(BAD_REQUEST, "MALFORMED", message)


def forged(message: str) -> CallbackRejected:
    """A notification whose signature, key or timestamp does not prove it authentic (401)."""
    return CallbackRejected(UNAUTHORIZED, "SIGNATURE", message)


def mismatch(message: str) -> CallbackRejected:
    """An authentic notification that disagrees with the merchant or the order (409)."""
    return CallbackRejected(CONFLICT, "MISMATCH", message)
