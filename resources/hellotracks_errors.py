"""Errors raised by the Hellotracks client.

Every error carries the action it happened on, the application status the server answered (the
`status` field of the JSON envelope, when there was one) and the HTTP status. None of them ever
holds the API key: server text is scrubbed of it before it becomes part of a message.
"""

from __future__ import annotations


class HellotracksError(Exception):
    """Base of every error the client raises; also raised on its own for answers it cannot use
    (an unexpected shape, a server that ignores `skip` beyond what paging can recover from)."""

    def __init__(
        self,
        message: str,
        *,
        action: str | None = None,
        status: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.action = action
        self.status = status
        self.http_status = http_status

    @property
    def refuses_key(self) -> bool:
        """Whether the key itself was refused, so that every later request would be too."""
        return False


# Refusals of the key itself, rather than of one request: -3 (authentication failed), -8 (no
# valid key), -12 (forced logout) and HTTP 401. A permission refusal (-5, HTTP 403) may concern
# one action only.
_KEY_REFUSALS = {-3, -8, -12}


class HellotracksAuthError(HellotracksError):
    """The key or the account was refused (`-3`, `-5`, `-8`, `-12`, HTTP 401/403). Never retried:
    sending the same key again cannot succeed."""

    @property
    def refuses_key(self) -> bool:
        return self.status in _KEY_REFUSALS or self.http_status == 401


class HellotracksRequestError(HellotracksError):
    """The server understood the request and refused it (`-1`, `-11`, `-99` and any other
    non-zero status that is not a reason to wait). Never retried."""


class HellotracksUnavailableError(HellotracksError):
    """A request kept failing for reasons that usually pass (5xx, throttling, timeouts, broken
    bodies, not-ready reports) until its retries ran out. The message lists what was tried."""
