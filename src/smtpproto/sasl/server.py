"""Server-side SASL verifiers (PLAIN, LOGIN, CRAM-MD5, SCRAM, XOAUTH2, OAUTHBEARER), sans-IO.

Theory of operation: the server engine decodes each client line and feeds it here; a
verifier answers with a :data:`ServerStep` value, never with I/O:

- :class:`Challenge` — send ``334`` with this (raw, not yet base64) data;
- :class:`Success` — the client proved its identity; ``data`` (SCRAM's ``v=``
  server-final message) must reach the client before ``235`` (RFC 4954 §4: as a 334,
  answered by an empty line);
- :class:`Failure` — send ``535``; ``reason`` is for the server's log and never holds
  a secret.

``start(initial_response)`` is called once (``None`` when the AUTH line had none, ``b""``
for ``=``), then ``step(response)`` once per client line until a Success or Failure.
Passwords come from a :data:`PasswordLookup` callback (``None``: unknown user) and bearer
tokens are judged by a :data:`TokenCheck` callback (its comparison is its own business).
Password checks use ``hmac.compare_digest``, and an unknown user costs the same work as
a wrong password, so timing does not reveal which user names exist. Proxy authorisation
is not supported: an authorisation identity must be empty or equal to the user name
(compared after SASLprep).

User names: every password mechanism (PLAIN, LOGIN, CRAM-MD5, SCRAM) passes the name
through SASLprep (RFC 4013, query rules) before calling the lookup, so the lookup always
sees the same form of a name whichever mechanism the client chose, and
:attr:`Success.identity` is that prepared name. A SCRAM client has already prepared it
(RFC 5802 §5.1); PLAIN (RFC 4616 §2) asks the server to prepare both; LOGIN has no RFC
and follows PLAIN. A name SASLprep rejects, or prepares to nothing, fails like an unknown
user. Keep user databases keyed by the prepared name. Passwords: PLAIN, LOGIN and SCRAM
compare SASLprep'd passwords (RFC 4616 §2, RFC 5802 §2.2; query rules, as
``scram.scram_prep`` explains); CRAM-MD5 keys its HMAC with the stored password as is,
since RFC 2195 defines no preparation and the client HMACs the password it was given.
The OAuth verifiers pass the user name to ``check_token`` as sent, but never one
holding a control character (CR, LF, NUL, C1, U+2028/9): that fails at once, as
SASLprep fails it for the password mechanisms, so no identity carries a line break.
The engine handles the client's ``*`` cancellation, base64 and the challenge guard.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from ..wire.grammar import _find_control
from .base import ChannelBinding, SASLError
from .saslprep import SASLprepError, saslprep
from .scram import (
    DEFAULT_SCRAM_MIN_ITERATIONS,
    PRINTABLE,
    b64decode_strict,
    scram_attributes,
    scram_keys,
    scram_unescape,
)

__all__ = [
    "SERVER_MECHANISMS",
    "Challenge",
    "CramMD5Server",
    "Failure",
    "LoginServer",
    "OAuthBearerServer",
    "PasswordLookup",
    "PlainServer",
    "ScramSHA1PlusServer",
    "ScramSHA1Server",
    "ScramSHA256PlusServer",
    "ScramSHA256Server",
    "ScramServer",
    "ServerMechanism",
    "ServerStep",
    "Success",
    "TokenCheck",
    "XOAuth2Server",
]

#: Returns the user's password, or ``None`` when the user does not exist.
PasswordLookup: TypeAlias = Callable[[str], str | None]

#: ``check_token(user, token)``: whether ``token`` is a valid bearer token for ``user``.
TokenCheck: TypeAlias = Callable[[str, str], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """Send ``334`` carrying ``data`` (raw; the engine base64-encodes it)."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Success:
    """Authenticated as ``identity``; deliver ``data`` (if not ``None``) before ``235``."""

    identity: str
    authzid: str = ""
    data: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """Authentication failed: send ``535``. ``reason`` is for logs, never a secret."""

    reason: str


ServerStep: TypeAlias = Challenge | Success | Failure


def _prep(text: str) -> str | None:
    try:
        return saslprep(text, allow_unassigned=True)
    except SASLprepError:
        return None


def _prep_user(name: str) -> str | None:
    """The user name as the lookup sees it: SASLprep'd, ``None`` if rejected or empty."""
    return _prep(name) or None


def _password_ok(stored: str | None, given: str) -> bool:
    """Constant-time check of ``given`` against ``stored`` after SASLprep (RFC 4616 §2)."""
    given_prepped = _prep(given)
    stored_prepped = _prep(stored) if stored is not None else None
    candidate = (given_prepped or given).encode()
    if stored_prepped is None or given_prepped is None:
        hmac.compare_digest(candidate, candidate)  # same work as a real comparison
        return False
    return hmac.compare_digest(stored_prepped.encode(), candidate)


def _utf8_or_none(text: str | None) -> bytes | None:
    """``text`` as UTF-8, or ``None`` for ``None`` or a str with a lone surrogate: a
    ``UnicodeEncodeError`` would carry the stored password out (``.object``), into the
    server's log of the failed step."""
    if text is None or any("\ud800" <= ch <= "\udfff" for ch in text):
        return None
    return text.encode("utf-8")


class ServerMechanism(abc.ABC):
    """One SASL exchange, server side. Single use; misuse raises :class:`SASLError`."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self._started = False
        self._finished = False

    def start(self, initial_response: bytes | None) -> ServerStep:
        """Begin with the AUTH line's initial response (``None`` if absent)."""
        if self._started:
            raise SASLError(f"{self.name} exchange already started")
        self._started = True
        return self._track(self._start(initial_response))

    def step(self, response: bytes) -> ServerStep:
        """Feed the client's answer to the last :class:`Challenge`."""
        if not self._started or self._finished:
            raise SASLError(f"{self.name} exchange is not waiting for a response")
        return self._track(self._step(response))

    def _track(self, result: ServerStep) -> ServerStep:
        self._finished = not isinstance(result, Challenge)
        return result

    @abc.abstractmethod
    def _start(self, initial_response: bytes | None) -> ServerStep: ...

    @abc.abstractmethod
    def _step(self, response: bytes) -> ServerStep: ...


class PlainServer(ServerMechanism):
    """PLAIN (RFC 4616 §2): ``authzid NUL authcid NUL passwd``; empty challenge if no IR."""

    name = "PLAIN"

    def __init__(self, lookup: PasswordLookup) -> None:
        super().__init__()
        self._lookup = lookup

    def _start(self, initial_response: bytes | None) -> ServerStep:
        if initial_response is None:
            return Challenge(data=b"")
        return self._step(initial_response)

    def _step(self, response: bytes) -> ServerStep:
        parts = response.split(b"\x00")
        if len(parts) != 3:
            return Failure(reason="malformed PLAIN message")
        try:
            authzid, authcid, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            return Failure(reason="PLAIN message is not UTF-8")
        if not authcid or not password:
            return Failure(reason="empty PLAIN user name or password")
        user = _prep_user(authcid)
        if authzid and (user is None or _prep_user(authzid) != user):
            return Failure(reason="authorization identity not permitted")
        stored = self._lookup(user) if user is not None else None
        if not _password_ok(stored, password) or user is None:
            return Failure(reason="invalid credentials")
        return Success(identity=user, authzid=authzid)


class LoginServer(ServerMechanism):
    """LOGIN (draft-murchison-sasl-login): asks ``Username:`` then ``Password:``.

    An initial response, as some clients send, is taken as the user name.
    """

    name = "LOGIN"

    def __init__(self, lookup: PasswordLookup) -> None:
        super().__init__()
        self._lookup = lookup
        self._username: str | None = None

    def _start(self, initial_response: bytes | None) -> ServerStep:
        if initial_response:
            return self._step(initial_response)
        return Challenge(data=b"Username:")

    def _step(self, response: bytes) -> ServerStep:
        try:
            text = response.decode("utf-8")
        except UnicodeDecodeError:
            return Failure(reason="LOGIN response is not UTF-8")
        if self._username is None:
            if not text:
                return Failure(reason="empty LOGIN user name")
            self._username = text
            return Challenge(data=b"Password:")
        user = _prep_user(self._username)
        stored = self._lookup(user) if user is not None else None
        if not _password_ok(stored, text) or user is None:
            return Failure(reason="invalid credentials")
        return Success(identity=user)


class CramMD5Server(ServerMechanism):
    """CRAM-MD5 (RFC 2195 §2): challenge ``<random@hostname>``, answer ``user SP hexdigest``.

    ``_challenge`` is a test hook that fixes the challenge text.
    """

    name = "CRAM-MD5"

    def __init__(
        self, lookup: PasswordLookup, *, hostname: str = "localhost", _challenge: str | None = None
    ) -> None:
        super().__init__()
        self._lookup = lookup
        nonce = f"<{secrets.randbits(63)}.{secrets.randbits(31)}@{hostname}>"
        self._challenge = (nonce if _challenge is None else _challenge).encode()

    def _start(self, initial_response: bytes | None) -> ServerStep:
        if initial_response is not None:
            return Failure(reason="CRAM-MD5 takes no initial response")
        return Challenge(data=self._challenge)

    def _step(self, response: bytes) -> ServerStep:
        user_bytes, _, digest = response.rpartition(b" ")
        try:
            username = user_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return Failure(reason="CRAM-MD5 user name is not UTF-8")
        if not username or len(digest) != 32 or digest.strip(b"0123456789abcdef"):
            return Failure(reason="malformed CRAM-MD5 response")
        user = _prep_user(username)
        stored = self._lookup(user) if user is not None else None
        key = _utf8_or_none(stored)  # a stored password without one fails, unshown
        usable = key is not None
        if key is None:
            key = secrets.token_hex(16).encode()
        expected = hmac.new(key, self._challenge, hashlib.md5).hexdigest().encode()
        if not hmac.compare_digest(expected, digest) or not usable or user is None:
            return Failure(reason="invalid credentials")
        return Success(identity=user)


class ScramServer(ServerMechanism):
    """SCRAM verifier (RFC 5802 §5, RFC 7677); concrete classes fix hash and -PLUS.

    ``channel_binding`` is the server's own view of the TLS channel: required by the
    -PLUS classes; given to a non-PLUS class it means the server offers -PLUS, so a
    client's ``y`` flag is a downgrade and fails (RFC 5802 §6). ``_salt`` and ``_nonce``
    (the server's nonce part) are test hooks. Returns ``Success(data=b"v=...")``; an
    unknown user runs the whole exchange with random keys and fails at the proof. The
    lookup yields plaintext, so the salt is fresh per exchange and PBKDF2 runs each time
    (about 1 ms at the default 4096 iterations).
    """

    _hash_name: ClassVar[str]
    _plus: ClassVar[bool]

    def __init__(
        self,
        lookup: PasswordLookup,
        *,
        channel_binding: ChannelBinding | None = None,
        iterations: int = DEFAULT_SCRAM_MIN_ITERATIONS,
        _salt: bytes | None = None,
        _nonce: str | None = None,
    ) -> None:
        super().__init__()
        if self._plus and channel_binding is None:
            raise SASLError(f"{self.name} needs the server's channel binding data")
        if iterations < 1:
            raise SASLError("iteration count must be positive")
        self._lookup = lookup
        self._cb = channel_binding
        self._iterations = iterations
        self._salt = secrets.token_bytes(16) if _salt is None else _salt
        self._server_nonce = secrets.token_urlsafe(18) if _nonce is None else _nonce
        self._waiting_first = True
        self._gs2_header = self._nonce = self._first_bare = self._server_first = ""
        self._username = self._authzid = ""
        self._known = False
        self._stored_key = self._server_key = b""

    def _start(self, initial_response: bytes | None) -> ServerStep:
        if initial_response is None:
            return Challenge(data=b"")
        return self._step(initial_response)

    def _step(self, response: bytes) -> ServerStep:
        try:
            text = response.decode("utf-8")
            if self._waiting_first:
                self._waiting_first = False
                return self._client_first(text)
            return self._client_final(text)
        except UnicodeDecodeError:
            return Failure(reason="SCRAM message is not UTF-8")
        except SASLError as exc:
            return Failure(reason=str(exc))

    def _client_first(self, text: str) -> ServerStep:
        flag, sep, rest = text.partition(",")
        authz, sep2, bare = rest.partition(",")
        if not sep or not sep2:
            return Failure(reason="malformed SCRAM GS2 header")
        if flag.startswith("p="):
            if not self._plus or self._cb is None:
                return Failure(reason="channel binding requested on a non-PLUS mechanism")
            if flag[2:] != self._cb.type:
                return Failure(reason="unsupported channel binding type")
        elif self._plus:
            return Failure(reason=f"{self.name} requires channel binding")
        elif flag == "y" and self._cb is not None:
            return Failure(reason="channel binding downgrade detected (RFC 5802 section 6)")
        elif flag not in ("n", "y"):
            return Failure(reason="malformed SCRAM channel binding flag")
        if authz and not authz.startswith("a="):
            return Failure(reason="malformed SCRAM authorization identity")
        attrs = scram_attributes(bare, what="client-first-message")
        if attrs[0][0] == "m":
            return Failure(reason="unsupported mandatory SCRAM extension")
        if len(attrs) < 2 or (attrs[0][0], attrs[1][0]) != ("n", "r"):
            return Failure(reason="malformed client-first-message")
        username = _prep_user(scram_unescape(attrs[0][1]))
        authzid = scram_unescape(authz[2:]) if authz else ""
        if username is None or PRINTABLE.fullmatch(attrs[1][1]) is None:
            # RFC 5802 §5.1: a name SASLprep rejects (or empties) aborts the exchange.
            return Failure(reason="malformed client-first-message")
        if authzid and _prep_user(authzid) != username:
            return Failure(reason="authorization identity not permitted")
        stored = self._lookup(username)
        prepped = _prep(stored) if stored is not None else None
        self._known = prepped is not None
        password = prepped if prepped is not None else secrets.token_hex(16)
        _, _, self._stored_key, self._server_key = scram_keys(
            self._hash_name, password, self._salt, self._iterations
        )
        self._username, self._authzid = username, authzid
        self._gs2_header = f"{flag},{authz},"
        self._nonce = attrs[1][1] + self._server_nonce
        self._first_bare = bare
        salt = base64.b64encode(self._salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={self._iterations}"
        return Challenge(data=self._server_first.encode())

    def _client_final(self, text: str) -> ServerStep:
        without_proof, sep, proof_attr = text.rpartition(",p=")
        if not sep:
            return Failure(reason="client-final-message has no proof")
        attrs = scram_attributes(without_proof, what="client-final-message")
        if len(attrs) < 2 or (attrs[0][0], attrs[1][0]) != ("c", "r"):
            return Failure(reason="malformed client-final-message")
        expected_cbind = self._gs2_header.encode()
        if self._gs2_header.startswith("p=") and self._cb is not None:
            expected_cbind += self._cb.data
        cbind = b64decode_strict(attrs[0][1], "channel binding")
        if not hmac.compare_digest(cbind, expected_cbind):
            return Failure(reason="channel binding mismatch")
        if attrs[1][1] != self._nonce:
            return Failure(reason="nonce mismatch")
        proof = b64decode_strict(proof_attr, "client proof")
        if len(proof) != len(self._stored_key):
            return Failure(reason="client proof has the wrong length")
        auth_message = f"{self._first_bare},{self._server_first},{without_proof}".encode()
        signature = hmac.digest(self._stored_key, auth_message, self._hash_name)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        computed = hashlib.new(self._hash_name, client_key).digest()
        if not hmac.compare_digest(computed, self._stored_key) or not self._known:
            return Failure(reason="invalid credentials")
        verifier = hmac.digest(self._server_key, auth_message, self._hash_name)
        return Success(
            identity=self._username,
            authzid=self._authzid,
            data=b"v=" + base64.b64encode(verifier),
        )


class ScramSHA1Server(ScramServer):
    """SCRAM-SHA-1 verifier (RFC 5802)."""

    name = "SCRAM-SHA-1"
    _hash_name = "sha1"
    _plus = False


class ScramSHA256Server(ScramServer):
    """SCRAM-SHA-256 verifier (RFC 7677)."""

    name = "SCRAM-SHA-256"
    _hash_name = "sha256"
    _plus = False


class ScramSHA1PlusServer(ScramServer):
    """SCRAM-SHA-1-PLUS verifier (RFC 5802 §6); needs ``channel_binding``."""

    name = "SCRAM-SHA-1-PLUS"
    _hash_name = "sha1"
    _plus = True


class ScramSHA256PlusServer(ScramServer):
    """SCRAM-SHA-256-PLUS verifier (RFC 7677); needs ``channel_binding``."""

    name = "SCRAM-SHA-256-PLUS"
    _hash_name = "sha256"
    _plus = True


class _OAuthServer(ServerMechanism):
    """Bearer-token verifiers; ``check_token(user, token)`` says whether the token is good.

    A bad token gets the OAuth failure flow (RFC 7628 §3.2.2): a :class:`Challenge` with
    a JSON error, then :class:`Failure` whatever the client answers (``^A`` for
    OAUTHBEARER, empty for XOAUTH2).
    """

    _error = json.dumps({"status": "invalid_token", "schemes": "bearer"}).encode()

    def __init__(self, check_token: TokenCheck) -> None:
        super().__init__()
        self._check_token = check_token
        self._failing = False

    def _start(self, initial_response: bytes | None) -> ServerStep:
        if initial_response is None:
            return Challenge(data=b"")
        return self._step(initial_response)

    def _step(self, response: bytes) -> ServerStep:
        if self._failing:
            return Failure(reason="invalid token")
        try:
            parsed = self._parse(response.decode("utf-8"))
        except UnicodeDecodeError:
            return Failure(reason=f"{self.name} message is not UTF-8")
        if isinstance(parsed, Failure):
            return parsed
        user, token = parsed
        if _find_control(user) is not None:  # never an identity, nor given to check_token
            return Failure(reason=f"{self.name} user name holds a control character")
        if not self._check_token(user, token):
            self._failing = True
            return Challenge(data=self._error)
        return Success(identity=user)

    @staticmethod
    def _pairs(text: str) -> dict[str, str] | None:
        """``key=value^A...^A^A`` to a dict, or ``None`` if malformed (RFC 7628 §3.1)."""
        if not text.endswith("\x01\x01"):
            return None
        pairs: dict[str, str] = {}
        for item in text[:-2].split("\x01"):
            key, sep, value = item.partition("=")
            if not sep or not key.isascii() or not key.isalpha() or key in pairs:
                return None
            pairs[key] = value
        return pairs

    @staticmethod
    def _bearer(pairs: dict[str, str] | None) -> str | None:
        auth = (pairs or {}).get("auth", "")
        scheme, _, token = auth.partition(" ")
        return token if scheme.lower() == "bearer" and token else None

    @abc.abstractmethod
    def _parse(self, text: str) -> tuple[str, str] | Failure: ...


class XOAuth2Server(_OAuthServer):
    """XOAUTH2 verifier: ``user=U^Aauth=Bearer T^A^A``."""

    name = "XOAUTH2"

    def _parse(self, text: str) -> tuple[str, str] | Failure:
        pairs = self._pairs(text)
        token = self._bearer(pairs)
        user = (pairs or {}).get("user", "")
        if pairs is None or token is None or not user:
            return Failure(reason="malformed XOAUTH2 message")
        return user, token


class OAuthBearerServer(_OAuthServer):
    """OAUTHBEARER verifier (RFC 7628 §3.1); the user is the GS2 authzid ``a=``."""

    name = "OAUTHBEARER"

    def _parse(self, text: str) -> tuple[str, str] | Failure:
        flag, _, rest = text.partition(",")
        authz, sep, kvpairs = rest.partition(",")
        pairs = self._pairs(kvpairs[1:]) if kvpairs.startswith("\x01") else None
        token = self._bearer(pairs)
        if flag not in ("n", "y") or not sep or not authz.startswith("a=") or token is None:
            return Failure(reason="malformed OAUTHBEARER message")
        try:
            user = scram_unescape(authz[2:])
        except SASLError as exc:
            return Failure(reason=str(exc))
        return (user, token) if user else Failure(reason="malformed OAUTHBEARER message")


#: Every server verifier by mechanism name, for a server building its AUTH list.
SERVER_MECHANISMS: dict[str, type[ServerMechanism]] = {
    cls.name: cls
    for cls in (
        ScramSHA256PlusServer,
        ScramSHA256Server,
        ScramSHA1PlusServer,
        ScramSHA1Server,
        CramMD5Server,
        PlainServer,
        LoginServer,
        OAuthBearerServer,
        XOAuth2Server,
    )
}
