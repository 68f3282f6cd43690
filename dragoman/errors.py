"""The Dragoman exception tree.

Every error a caller can act on derives from `DragomanError`, which carries a stable
machine-readable `code` (also used on the wire) and a `retryable` flag.
"""

from __future__ import annotations

from dragoman.events import Error


class DragomanError(Exception):
    """Base of every Dragoman error."""

    code = "internal"
    retryable = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable

    def to_event(self) -> Error:
        return Error(code=self.code, message=self.message, retryable=self.retryable)


class AudioError(DragomanError):
    """Audio that cannot be used: unreadable, truncated, empty, NaN/inf samples."""

    code = "bad_audio"


class UnsupportedLanguageError(DragomanError):
    """A language code that is unknown, or not supported by the chosen backend."""

    code = "unsupported_language"


class ModelNotFoundError(DragomanError):
    """Weights that are not installed; the message names the command that fixes it."""

    code = "model_not_found"


class BackendError(DragomanError):
    """A backend (model runtime, external process) failed while working."""

    code = "backend_failed"
    retryable = True


class ProtocolError(DragomanError):
    """A malformed, oversized or unknown client message."""

    code = "protocol_error"


class LimitExceededError(DragomanError):
    """A configured limit (size, rate, duration, sessions) was exceeded."""

    code = "limit_exceeded"
