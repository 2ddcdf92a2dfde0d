"""Limits of the server role (``ServerConnection``), each a named ``DEFAULT_*``.

Every buffer the server keeps is bounded by one of these numbers (docs/design.md §4 rule 2).
Crossing a bound the client controls (a long command line, too many recipients, a big
message) becomes a refusal event with the reply to send; only input that cannot be
answered any more (unbounded pipelining while the caller does not reply) is a
``RemoteProtocolError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..wire._dataenc_py import DEFAULT_SERVER_DATA_MAX_LINE_LENGTH
from ..wire.abnf import MAX_COMMAND_LINE
from ..wire.fields import check_int, check_seconds
from ..wire.limits import DEFAULT_MAX_RECEIVE_BUFFER

__all__ = [
    "DEFAULT_MAX_AUTH_LINE",
    "DEFAULT_MAX_MAIL_RCPT_LINE",
    "DEFAULT_MAX_PIPELINED_INPUT",
    "DEFAULT_MAX_RECIPIENTS",
    "DEFAULT_SERVER_TIMEOUT",
    "MAX_LIMIT_VALUE",
    "MIN_DATA_LINE",
    "ServerConfig",
]

#: MAIL and RCPT lines may exceed RFC 5321's 512 octets by what their extensions add:
#: SIZE +26 (RFC 1870 §3), DSN +100 on MAIL and +500 on RCPT (RFC 3461 §4, §5), AUTH=
#: +500 (RFC 4954 §5), plus the longer UTF-8 paths of SMTPUTF8. Postfix allows 2048 for
#: every line (``line_length_limit``); we allow that much on MAIL and RCPT only.
DEFAULT_MAX_MAIL_RCPT_LINE = 2048

#: RFC 4954 §4: "a server implementation MUST ... support lines of at least 12288
#: octets" for AUTH commands and responses (a big initial response or token).
DEFAULT_MAX_AUTH_LINE = 12288

#: RFC 5321 §4.5.3.1.8: "The minimum total number of recipients that MUST be buffered
#: is 100 recipients." Past the bound RCPT is refused with 452 4.5.3 (§4.5.3.1.10).
DEFAULT_MAX_RECIPIENTS = 1000

#: RFC 5321 §4.5.3.1.6: the shortest ``max_data_line`` (a 1000-octet text line with its
#: CRLF must get through).
MIN_DATA_LINE = 1000

#: RFC 9422 §4.1, §4.2: a LIMITS value (MAILMAX, RCPTMAX) is 1 to 6 digits.
MAX_LIMIT_VALUE = 999_999

#: Unread input the connection holds while the caller has not replied to the current
#: command (PIPELINING, RFC 2920). A conforming client waits after a group-ending command,
#: and a group of 1000 recipients is about 50 KiB; more means the caller kept reading
#: without replying, or a flood.
DEFAULT_MAX_PIPELINED_INPUT = 256 * 1024

#: RFC 5321 §4.5.3.2.7: "An SMTP server SHOULD have a timeout of at least 5 minutes
#: while it is awaiting the next command from the sender." Published for adapters.
DEFAULT_SERVER_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Knobs of one server connection; every field has an RFC-backed default.

    ``max_message_size`` bounds the content of one message when the caller did not
    advertise ``SIZE n`` (an advertised non-zero SIZE wins); ``None`` means no bound
    beyond the advertised one. ``max_receive_buffer`` caps the octets ``receive_data``
    holds before ``next_event`` consumes them (``wire.limits``; at least
    ``max_pipelined_input``).
    """

    max_command_line: int = MAX_COMMAND_LINE
    max_mail_rcpt_line: int = DEFAULT_MAX_MAIL_RCPT_LINE
    max_auth_line: int = DEFAULT_MAX_AUTH_LINE
    max_recipients: int = DEFAULT_MAX_RECIPIENTS
    max_pipelined_input: int = DEFAULT_MAX_PIPELINED_INPUT
    max_message_size: int | None = None
    #: Longest DATA content line (the shared ``DataDecoder`` bound; past it the
    #: connection is in ERROR: the end of the data can no longer be found safely).
    max_data_line: int = DEFAULT_SERVER_DATA_MAX_LINE_LENGTH
    timeout: float = DEFAULT_SERVER_TIMEOUT
    max_receive_buffer: int = DEFAULT_MAX_RECEIVE_BUFFER
    #: A command (or DATA content) that arrives before the reply it had to wait for
    #: (RFC 2920 §3.1; RFC 5321 §4.3 without PIPELINING): ``"flag"`` reports it on
    #: the event (``unauthorized_pipelining``) and goes on; ``"reject"`` refuses it
    #: with ``554 5.5.0`` and the session then closes, like Postfix 3.9's
    #: ``smtpd_forbid_unauth_pipelining`` (spam bots and SMTP smuggling attempts
    #: write ahead; a conforming client never does). The built-in server rejects.
    unauthorized_pipelining: Literal["flag", "reject"] = "flag"

    def __post_init__(self) -> None:
        for name in ("max_command_line", "max_mail_rcpt_line", "max_auth_line"):
            check_int(name, getattr(self, name), minimum=MAX_COMMAND_LINE)
        check_int("max_recipients", self.max_recipients, minimum=1)
        check_int("max_pipelined_input", self.max_pipelined_input, minimum=4096)
        check_int("max_message_size", self.max_message_size, minimum=0, allow_none=True)
        # RFC 5321 §4.5.3.1.6: a text line of 1000 octets (with its CRLF) is legal.
        check_int("max_data_line", self.max_data_line, minimum=MIN_DATA_LINE)
        check_seconds("timeout", self.timeout)
        check_int("max_receive_buffer", self.max_receive_buffer, minimum=self.max_pipelined_input)
        if self.unauthorized_pipelining not in ("flag", "reject"):
            raise ValueError(
                "unauthorized_pipelining must be 'flag' or 'reject', "
                f"got {self.unauthorized_pipelining!r}"
            )
