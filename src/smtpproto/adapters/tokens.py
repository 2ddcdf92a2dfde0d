"""OAuth 2.0 tokens for the clients' ``login``: a token, or a provider of fresh ones.

A bearer token for XOAUTH2/OAUTHBEARER (RFC 7628) expires, so ``login(token=...)``
also takes a *token provider*: a callable returning a fresh token, called at every
login (a pool logs every new connection in). The async clients also take a coroutine
function (``AsyncTokenSource``); the blocking client a plain function
(``TokenSource``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from .common import usage_error

__all__ = ["AsyncTokenSource", "TokenSource", "checked_token"]

TokenSource = str | Callable[[], str]
AsyncTokenSource = str | Callable[[], str | Awaitable[str]]


def checked_token(token: object) -> str:
    """What a token provider returned, when it is a ``str``; else ``usage_error`` (a
    coroutine, from an async provider given to the blocking client, is closed so it
    is never left un-awaited)."""
    if isinstance(token, str):
        return token
    if inspect.iscoroutine(token):
        token.close()
        raise usage_error(
            "the token provider returned a coroutine: the blocking client needs a plain "
            "function returning a str"
        )
    raise usage_error(f"the token provider must return a str, got {type(token).__name__}")
