"""``Session``: the mutable state of one client session, in one place.

Theory of operation: ``ClientConnection`` owns one ``Session`` and hands it to the send
rules (``sending``: a command's checks and bytes) and the reply rules (``replies``:
what a reply means). Both are plain functions over this state, so every attribute is
declared once, here. The state moves only through the tables in ``states``: ``send``
applies ``AFTER_SEND`` and everything else calls ``enter(outcome)`` (``ON_OUTCOME``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..wire.datacodec import DataEncoder
from ..wire.reply import Reply
from ..wire.twins import ReplyParser
from .capabilities import Capabilities
from .config import ClientConfig, ReplyParserLike, TLSPolicy
from .events import Event
from .states import ON_OUTCOME, ClientState, Outcome
from .transaction import Pending, Transaction
from .transcript import Transcript

if TYPE_CHECKING:
    from ..sasl.mechanisms import ClientMechanism

__all__ = ["Session"]

# A plain dict: looked up on most replies, cheaper than through the MappingProxyType.
_ON_OUTCOME = dict(ON_OUTCOME)


class Session:
    """Everything a client session knows; ``ClientConnection`` is its only owner."""

    __slots__ = (
        "auth_cancelled",
        "auth_initial",
        "auth_rounds",
        "authenticated",
        "caps",
        "challenge",
        "config",
        "encoder",
        "events",
        "incoming",
        "mechanism",
        "parser",
        "pending",
        "pipelining",
        "rcptmax",
        "replies",
        "state",
        "tls_active",
        "transcript",
        "txn",
    )

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        #: The reply parser; a new one after TLS (RFC 3207 §4.2).
        self.parser = self.new_parser()
        #: The sending state (``states``); changed by ``enter`` and ``send`` only.
        self.state = ClientState.GREETING
        #: What the last 250 EHLO/LHLO advertised, with PIPELINING and RCPTMAX.
        self.caps: Capabilities | None = None
        self.pipelining = False
        self.rcptmax: int | None = None
        self.tls_active = config.tls_policy is TLSPolicy.IMPLICIT
        self.authenticated = False
        #: Replies due, oldest first (RFC 2920 §3.1); the greeting is due at the start.
        self.pending: deque[Pending] = deque([Pending(None, None)])
        #: Events ready for ``next_event``; replies parsed and not yet handled; chunks
        #: received and not yet parsed.
        self.events: deque[Event] = deque()
        self.replies: deque[Reply] = deque()
        self.incoming: deque[bytes] = deque()
        #: The open mail transaction and, in CONTENT, its DATA encoder.
        self.txn: Transaction | None = None
        self.encoder: DataEncoder | None = None
        #: The AUTH exchange (RFC 4954 §4): mechanism, last challenge, rounds, the
        #: initial response still to send, and whether it was cancelled with ``*``.
        self.mechanism: ClientMechanism | None = None
        self.challenge: bytes | None = None
        self.auth_rounds = 0
        self.auth_initial: bytes | None = None
        self.auth_cancelled = False
        self.transcript = None if config.transcript is None else Transcript(config)

    def enter(self, outcome: Outcome) -> None:
        """Move to the state ``ON_OUTCOME`` gives for ``outcome``."""
        self.state = _ON_OUTCOME[outcome]

    def new_parser(self) -> ReplyParserLike:
        """A reply parser with the configured limits (RFC 5321 §4.5.3.1.5)."""
        config = self.config
        factory: Callable[..., ReplyParserLike] = config.parser_factory or ReplyParser
        return factory(
            max_line_length=config.max_reply_line_length,
            max_lines=config.max_reply_lines,
            max_reply_bytes=config.max_reply_bytes,
        )

    def forget_extensions(self) -> None:
        """No extension is known any more (a new hello, RFC 5321 §4.1.4; TLS, RFC 3207
        §4.2)."""
        self.caps = None
        self.pipelining = False
        self.rcptmax = None
