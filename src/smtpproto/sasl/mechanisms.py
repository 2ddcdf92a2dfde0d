"""The SASL client mechanisms (RFC 4954 AUTH): PLAIN, LOGIN, CRAM-MD5, SCRAM (with
``-PLUS``), XOAUTH2, OAUTHBEARER, EXTERNAL, ANONYMOUS, and ``choose_mechanism``.

How a mechanism works and how to write your own: the ``smtpproto.sasl`` package
docstring. Error messages and reprs never contain passwords, tokens or responses
(docs/design.md §4 rule 11).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from typing import Any, ClassVar

from .base import (
    FORBIDDEN_CHARS,
    MECH_NAME,
    ChannelBinding,
    ClientMechanism,
    SASLError,
    check_field,
    validate_mechanism_name,
)
from .scram import (
    DEFAULT_SCRAM_MAX_ITERATIONS,
    DEFAULT_SCRAM_MIN_ITERATIONS,
    Scram,
    ScramSHA1,
    ScramSHA1Plus,
    ScramSHA256,
    ScramSHA256Plus,
    scram_escape,
)

__all__ = [
    "DEFAULT_SCRAM_MAX_ITERATIONS",
    "DEFAULT_SCRAM_MIN_ITERATIONS",
    "MECHANISM_PREFERENCE",
    "Anonymous",
    "ChannelBinding",
    "ClientMechanism",
    "CramMD5",
    "External",
    "Login",
    "OAuthBearer",
    "Plain",
    "SASLError",
    "Scram",
    "ScramSHA1",
    "ScramSHA1Plus",
    "ScramSHA256",
    "ScramSHA256Plus",
    "XOAuth2",
    "choose_mechanism",
    "validate_mechanism_name",
]

#: Password mechanisms from strongest to weakest, the order :func:`choose_mechanism`
#: tries them in. OAuth mechanisms (OAUTHBEARER, then XOAUTH2) come first when a token
#: is given.
MECHANISM_PREFERENCE: tuple[str, ...] = (
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-1",
    "CRAM-MD5",
    "PLAIN",
    "LOGIN",
)

# RFC 6750 §2.1 b64token: what a bearer token may contain.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _check_token(token: str) -> str:
    if not isinstance(token, str) or _B64TOKEN.fullmatch(token) is None:
        raise SASLError("bearer token is not an RFC 6750 b64token")
    return token


class Plain(ClientMechanism):
    """PLAIN (RFC 4616 §2): ``authzid NUL authcid NUL passwd`` in the initial response.

    NUL would split the message ambiguously and is refused in every field (CR and LF
    too, for safety in logs). If the AUTH line would be too long the engine sends the
    initial response after the first 334; any challenge after it aborts.
    """

    name = "PLAIN"

    def __init__(self, username: str, password: str, authzid: str = "") -> None:
        self.username = check_field(username, "username")
        self._password = check_field(password, "password")
        self.authzid = check_field(authzid, "authzid")
        if not username or not password:
            raise SASLError("PLAIN needs a non-empty username and password (RFC 4616 section 2)")
        self._message = f"{authzid}\x00{username}\x00{password}".encode()

    def initial_response(self) -> bytes:
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        raise SASLError("PLAIN received a challenge after its only message")

    @property
    def secrets(self) -> tuple[bytes, ...]:
        return (self._password.encode(), self._message)

    def __repr__(self) -> str:
        return f"<Plain username={self.username!r} password=<redacted>>"


class Login(ClientMechanism):
    """LOGIN (draft-murchison-sasl-login-00): user name, then password, one per challenge.

    The challenge text ("Username:", "Password:", or anything else) is ignored: the
    answers go out in order, which is how every deployed server behaves. A third
    challenge aborts.
    """

    name = "LOGIN"

    def __init__(self, username: str, password: str) -> None:
        self.username = check_field(username, "username", nonempty=True)
        self._password = check_field(password, "password")
        self._sent = 0

    def initial_response(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        self._sent += 1
        if self._sent == 1:
            return self.username.encode()
        if self._sent == 2:
            return self._password.encode()
        raise SASLError("LOGIN received more than two challenges")

    def finish(self) -> None:
        if self._sent < 2:
            raise SASLError("server accepted LOGIN before the password was sent")

    @property
    def secrets(self) -> tuple[bytes, ...]:
        return (self._password.encode(),) if self._password else ()

    def __repr__(self) -> str:
        return f"<Login username={self.username!r} password=<redacted>>"


class CramMD5(ClientMechanism):
    """CRAM-MD5 (RFC 2195 §2): ``username SP hex(HMAC-MD5(password, challenge))``."""

    name = "CRAM-MD5"
    sends_secrets = False

    def __init__(self, username: str, password: str) -> None:
        self.username = check_field(username, "username", nonempty=True)
        self._password = check_field(password, "password")
        self._done = False

    def initial_response(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        if self._done:
            raise SASLError("CRAM-MD5 received a second challenge")
        if not challenge:
            raise SASLError("CRAM-MD5 challenge is empty")
        self._done = True
        digest = hmac.new(self._password.encode(), challenge, hashlib.md5).hexdigest()
        return f"{self.username} {digest}".encode()

    def finish(self) -> None:
        if not self._done:
            raise SASLError("server accepted CRAM-MD5 without a challenge")

    @property
    def secrets(self) -> tuple[bytes, ...]:
        return (self._password.encode(),) if self._password else ()

    def __repr__(self) -> str:
        return f"<CramMD5 username={self.username!r} password=<redacted>>"


class _OAuthBase(ClientMechanism):
    """Shared OAuth failure flow: a 334 with base64 JSON gets a fixed dummy answer."""

    _failure_answer: ClassVar[bytes]

    def __init__(self, username: str, token: str) -> None:
        self.username = check_field(username, "username", forbid=(*FORBIDDEN_CHARS, "\x01"))
        self._token = _check_token(token)
        self._message = b""
        self._failed = False
        #: The server's decoded error JSON object once it reported a failure, else None.
        self.error_details: dict[str, Any] | None = None

    def initial_response(self) -> bytes:
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        if self._failed:
            raise SASLError(f"{self.name} received a challenge after the error report")
        self._failed = True
        try:
            details = json.loads(challenge.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            details = None
        self.error_details = details if isinstance(details, dict) else None
        return self._failure_answer

    def finish(self) -> None:
        if self._failed:
            raise SASLError(f"server accepted {self.name} after reporting an error")

    @property
    def secrets(self) -> tuple[bytes, ...]:
        return (self._token.encode(), self._message)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} username={self.username!r} token=<redacted>>"


class XOAuth2(_OAuthBase):
    """XOAUTH2 (Google/Microsoft): ``user=U^Aauth=Bearer T^A^A`` as the initial response.

    Failure flow: the server sends a 334 whose text is base64 JSON; the client answers
    with an empty response and the server ends with 535. The JSON object is kept in
    :attr:`error_details` (``None`` if the text was not a JSON object).
    """

    name = "XOAUTH2"
    _failure_answer = b""

    def __init__(self, username: str, token: str) -> None:
        super().__init__(username, token)
        check_field(username, "username", nonempty=True)
        self._message = f"user={username}\x01auth=Bearer {token}\x01\x01".encode()


class OAuthBearer(_OAuthBase):
    """OAUTHBEARER (RFC 7628 §3.1): GS2 header ``n,a=user,`` then ``key=value^A`` pairs.

    ``host``/``port`` are sent when given. Failure flow (RFC 7628 §3.2.3): the server's
    334 carries base64 JSON, the client answers ``^A`` and the server ends with 535.
    """

    name = "OAUTHBEARER"
    _failure_answer = b"\x01"

    def __init__(
        self, username: str, token: str, host: str | None = None, port: int | None = None
    ) -> None:
        super().__init__(username, token)
        if host is not None:
            check_field(host, "host", forbid=(*FORBIDDEN_CHARS, "\x01"))
        if port is not None and (isinstance(port, bool) or not 0 < port < 65536):
            raise SASLError("port must be an int in 1..65535")
        self.host, self.port = host, port
        # RFC 5801 §4 saslname ("," and "=" escaped); an empty authzid is left out.
        authz = f"a={scram_escape(username)}" if username else ""
        kvpairs = ""
        if host is not None:
            kvpairs += f"host={host}\x01"
        if port is not None:
            kvpairs += f"port={port}\x01"
        self._message = f"n,{authz},\x01{kvpairs}auth=Bearer {token}\x01\x01".encode()


class External(ClientMechanism):
    """EXTERNAL (RFC 4422 Appendix A): the identity comes from outside (a TLS client cert).

    The initial response is the authorisation identity (empty: derive it from the
    credentials); any challenge after it aborts.
    """

    name = "EXTERNAL"

    def __init__(self, authzid: str = "") -> None:
        self.authzid = check_field(authzid, "authzid")

    def initial_response(self) -> bytes:
        return self.authzid.encode()

    def respond(self, challenge: bytes) -> bytes:
        raise SASLError("EXTERNAL received a challenge after its only message")


class Anonymous(ClientMechanism):
    """ANONYMOUS (RFC 4505 §2): optional trace information, 1..255 characters if given."""

    name = "ANONYMOUS"

    def __init__(self, trace: str = "") -> None:
        self.trace = check_field(trace, "trace")
        if len(trace) > 255:
            raise SASLError("ANONYMOUS trace exceeds 255 characters (RFC 4505 section 3)")

    def initial_response(self) -> bytes:
        return self.trace.encode()

    def respond(self, challenge: bytes) -> bytes:
        raise SASLError("ANONYMOUS received a challenge after its only message")


def choose_mechanism(
    offered: Iterable[str],
    *,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    channel_binding: ChannelBinding | None = None,
) -> ClientMechanism | None:
    """Build the strongest mechanism the server offers that the credentials allow.

    ``offered`` is the AUTH keyword list from the EHLO reply *after* TLS (the caller's
    job); names are compared case-insensitively and invalid names are ignored. With a
    ``token`` (and ``username``) OAUTHBEARER, then XOAUTH2 come first; with a
    ``password``, :data:`MECHANISM_PREFERENCE` applies, -PLUS only with
    ``channel_binding``. Returns ``None`` when nothing fits. Bad credentials raise
    :class:`SASLError` from the mechanism's constructor.
    """
    names = {n.upper() for n in offered if isinstance(n, str)}
    names = {n for n in names if MECH_NAME.fullmatch(n)}
    if token is not None and username is not None:
        if "OAUTHBEARER" in names:
            return OAuthBearer(username, token)
        if "XOAUTH2" in names:
            return XOAuth2(username, token)
    if password is None or username is None:
        return None
    any_plus = any(n.startswith("SCRAM-") and n.endswith("-PLUS") for n in names)
    for name in MECHANISM_PREFERENCE:
        if name not in names:
            continue
        if name.endswith("-PLUS"):
            if channel_binding is not None:
                cls = ScramSHA256Plus if name == "SCRAM-SHA-256-PLUS" else ScramSHA1Plus
                return cls(username, password, channel_binding=channel_binding)
        elif name.startswith("SCRAM-"):
            scram = ScramSHA256 if name == "SCRAM-SHA-256" else ScramSHA1
            return scram(
                username, password, channel_binding=channel_binding, server_supports_plus=any_plus
            )
        elif name == "CRAM-MD5":
            return CramMD5(username, password)
        elif name == "PLAIN":
            return Plain(username, password)
        else:
            return Login(username, password)
    return None
