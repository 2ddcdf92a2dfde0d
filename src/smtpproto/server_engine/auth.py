"""``AuthExchange``: drive a server SASL mechanism from ``ServerConnection`` AUTH events.

The connection decodes base64, recognises ``*`` (``AuthCancelled``) and ``=`` (an empty
initial response); the mechanism (``sasl.server``) checks credentials. This glue turns
each AUTH event into the reply to send (RFC 4954 §4, §6): a ``Challenge`` is a 334 with
the base64 data; ``Failure`` is 535; ``Success`` is 235 — or, when the mechanism has
final data for the client (SCRAM's server-final message), a 334 carrying it, answered
by the client with an empty line, then 235. Sans-IO like the rest of the engine.
"""

from __future__ import annotations

from ..sasl.server import Challenge, Failure, ServerMechanism, Success
from ..wire.reply import Reply
from .events import AuthCancelled, AuthRequested, AuthResponse
from .replies import auth_cancelled, auth_challenge, auth_failed, auth_succeeded

__all__ = ["AuthExchange"]


class AuthExchange:
    """One AUTH exchange with ``mechanism``. ``identity`` is set after success;
    ``failure_reason`` after a failure (for logs: never a secret); ``done`` after either
    or a cancellation."""

    def __init__(self, mechanism: ServerMechanism) -> None:
        self._mechanism = mechanism
        self._final: Success | None = None
        self.identity: str | None = None
        self.failure_reason: str | None = None
        self.done = False

    def reply(self, event: AuthRequested | AuthResponse | AuthCancelled) -> Reply:
        """The reply to send for this AUTH event."""
        if isinstance(event, AuthCancelled):
            self.done = True
            self.failure_reason = "cancelled by the client"
            return auth_cancelled()
        if self._final is not None:  # the empty line after the server-final 334
            assert isinstance(event, AuthResponse)
            if event.data:
                return self._fail("non-empty response after the final challenge")
            return self._succeed(self._final)
        if isinstance(event, AuthRequested):
            step = self._mechanism.start(event.initial_response)
        else:
            step = self._mechanism.step(event.data)
        if isinstance(step, Challenge):
            return auth_challenge(step.data)
        if isinstance(step, Failure):
            return self._fail(step.reason)
        if step.data is not None:
            self._final = step
            return auth_challenge(step.data)
        return self._succeed(step)

    def _succeed(self, step: Success) -> Reply:
        self.done = True
        self.identity = step.identity
        return auth_succeeded()

    def _fail(self, reason: str) -> Reply:
        self.done = True
        self.failure_reason = reason
        return auth_failed()
