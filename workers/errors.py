"""The one exception root of the fleet: every error it raises on purpose is a ``SignalError``.

``SignalError`` splits at the boundary where a failure is classified (``workers.classify.classify``) into
``TransientError`` (retrying later can succeed: S3, the network or Redis hiccuped) and ``PermanentError`` (retrying
cannot help until the user changes something: the batch is held for replay); both carry the ``Failure`` the user is
shown. The other branches name what the caller should do, and each face (HTTP, console, CLI, task) renders them its
own way:

- ``InvalidInput`` (also a ``ValueError``): what was sent is wrong, say which field; ``ConfigError`` lists one
  message per wrong field;
- ``NotFound`` (also a ``LookupError``): the thing named does not exist;
- ``Refused``: the current state forbids it (disabled, not empty, not signed in);
- ``Unavailable``: something the fleet needs cannot be reached or read (the broker, the secret key).

Errors of libraries (botocore, redis, kombu) are translated into these where they are caught; a test walks the
package to prove every exception class defined in it derives from ``SignalError``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    """What went wrong, in terms a user can act on. ``code`` is the S3 error code or our own name for the failure."""

    code: str
    message: str
    permanent: bool
    hint: str | None
    http_status: int | None


class SignalError(Exception):
    """Root of every error the fleet raises on purpose."""


class _ClassifiedError(SignalError):
    def __init__(self, failure: Failure) -> None:
        super().__init__(f"{failure.code}: {failure.message}")
        self.failure = failure


class TransientError(_ClassifiedError):
    """Retrying later can succeed; ``retry_in_s`` is the delay chosen by whoever decided to retry (None: unset)."""

    def __init__(self, failure: Failure, *, retry_in_s: float | None = None) -> None:
        super().__init__(failure)
        self.retry_in_s = retry_in_s


class PermanentError(_ClassifiedError):
    """Retrying cannot succeed until the user changes something; the batch is held for replay."""


class InvalidInput(SignalError, ValueError):
    """What was sent is wrong: the message says which part and what is allowed."""


class ConfigError(InvalidInput):
    """Invalid user input: ``errors`` holds one ``{"field": ..., "message": ...}`` per wrong field."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__(f"invalid configuration: {summary}" if summary else "invalid configuration")


class NotFound(SignalError, LookupError):
    """The integration, source, batch or page named does not exist."""


class Refused(SignalError):
    """The current state forbids the operation; the message says what would allow it."""


class Unavailable(SignalError):
    """Something the fleet needs (the broker, Redis, the secret key, a download) cannot be reached or used now."""
