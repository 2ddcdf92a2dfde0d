"""SCRAM (RFC 5802, RFC 7677): shared primitives and the client mechanisms.

Theory of operation: the client sends ``gs2-header client-first-bare``, turns the
server-first message (nonce, salt, iteration count) into a proof of the password, then
checks the server's signature ``v=`` so a server that does not know the password fails
the exchange even if it says 235. The primitives (saslname escaping, attribute
splitting, key derivation) are shared with the server verifier in ``sasl/server.py``.
Public names are re-exported from :mod:`smtpproto.sasl`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _secrets
from typing import Any, ClassVar

from .base import ChannelBinding, ClientMechanism, SASLError, check_field, show_text
from .saslprep import SASLprepError, saslprep

__all__ = [
    "DEFAULT_SCRAM_MAX_ITERATIONS",
    "DEFAULT_SCRAM_MIN_ITERATIONS",
    "Scram",
    "ScramSHA1",
    "ScramSHA1Plus",
    "ScramSHA256",
    "ScramSHA256Plus",
]

#: Fewest PBKDF2 iterations accepted from a server. RFC 5802 §5.1 and RFC 7677 §4 say
#: servers SHOULD announce at least 4096; fewer makes an offline attack on a captured
#: exchange cheap, so the client refuses.
DEFAULT_SCRAM_MIN_ITERATIONS = 4096

#: Most PBKDF2 iterations accepted from a server. A hostile server can make the client
#: burn CPU with a huge count; 1,000,000 (0.26 s of PBKDF2-SHA-256 measured here) is
#: above OWASP's 2023 recommendation of 600,000 for PBKDF2-HMAC-SHA256, so every sane
#: deployment fits and the worst case stays bounded.
DEFAULT_SCRAM_MAX_ITERATIONS = 1_000_000

# RFC 5802 §7 "printable": %x21-2B / %x2D-7E (no comma).
PRINTABLE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")


def scram_escape(name: str) -> str:
    """RFC 5802 §5.1 / RFC 5801 §4 saslname: ``=`` becomes ``=3D``, ``,`` becomes ``=2C``."""
    return name.replace("=", "=3D").replace(",", "=2C")


def scram_unescape(name: str) -> str:
    """Inverse of :func:`scram_escape`; any other ``=`` sequence raises SASLError."""
    if re.search(r"=(?!2C|3D)", name):
        raise SASLError("malformed saslname escape (RFC 5802 section 5.1)")
    return name.replace("=2C", ",").replace("=3D", "=")


def scram_attributes(message: str, *, what: str) -> list[tuple[str, str]]:
    """Split a SCRAM message into ``(letter, value)`` pairs (RFC 5802 §5)."""
    pairs: list[tuple[str, str]] = []
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=" or not part[0].isascii() or not part[0].isalpha():
            raise SASLError(f"malformed attribute in {what}: {show_text(part, 20)}")
        pairs.append((part[0], part[2:]))
    return pairs


def scram_prep(text: str, what: str) -> str:
    """SASLprep with the query rules, with a SASLError on failure.

    RFC 5802 §5.1 prepares user names as query strings; §2.2 prepares passwords as
    stored strings (unassigned code points refused). Passwords get the query rules too,
    deliberately: a code point unassigned in Unicode 3.2 (an emoji) keeps working, and
    the verifiers in ``sasl.server`` prepare the same way, so both ends agree.
    """
    try:
        return saslprep(text, allow_unassigned=True)
    except SASLprepError as exc:
        raise SASLError(f"{what} rejected by SASLprep: {exc}") from None


def scram_keys(hash_name: str, password: str, salt: bytes, iterations: int) -> tuple[bytes, ...]:
    """Return ``(SaltedPassword, ClientKey, StoredKey, ServerKey)`` (RFC 5802 §3)."""
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", hash_name)
    server_key = hmac.digest(salted, b"Server Key", hash_name)
    return salted, client_key, hashlib.new(hash_name, client_key).digest(), server_key


def b64decode_strict(text: str, what: str) -> bytes:
    """Decode RFC 4648 base64 with padding, refusing anything else with a SASLError."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SASLError(f"{what} is not valid base64") from None


class Scram(ClientMechanism):
    """SCRAM (RFC 5802; SHA-256 per RFC 7677), with or without channel binding.

    ``Scram(...)`` picks the right subclass from ``hash_name`` (``"sha1"``/``"sha256"``)
    and, when ``channel_binding`` is given and ``server_supports_plus`` is true, its
    -PLUS form. RFC 5802 §6 GS2 flag: ``p=type`` with binding, ``y`` when the client has
    binding data but the server offered no -PLUS mechanism (a downgrade the server
    detects), ``n`` otherwise. User name and password go through SASLprep.

    The server must prove it knows the password: ``respond`` checks ``v=`` in the
    server-final message and ``finish`` raises if that never happened. Refused: ``e=``
    errors, a nonce that does not extend ours, an iteration count outside
    ``min_iterations..max_iterations``, a mandatory extension (``m=``) and any
    malformed attribute. ``_nonce`` is a test hook fixing the client nonce.
    """

    _hash_name: ClassVar[str]
    _plus: ClassVar[bool]
    sends_secrets = False

    def __new__(cls, *args: Any, **kwargs: Any) -> Scram:
        if cls is Scram:
            hash_name = kwargs.get("hash_name", "sha256")
            plus = kwargs.get("channel_binding") is not None and bool(
                kwargs.get("server_supports_plus", False)
            )
            matches = [c for c in _SCRAM_CLASSES if (c._hash_name, c._plus) == (hash_name, plus)]
            if not matches:
                raise SASLError(f"unsupported SCRAM hash {show_text(str(hash_name))}")
            cls = matches[0]
        return super().__new__(cls)

    def __init__(
        self,
        username: str,
        password: str,
        *,
        hash_name: str | None = None,
        channel_binding: ChannelBinding | None = None,
        server_supports_plus: bool = False,
        authzid: str = "",
        min_iterations: int = DEFAULT_SCRAM_MIN_ITERATIONS,
        max_iterations: int = DEFAULT_SCRAM_MAX_ITERATIONS,
        _nonce: str | None = None,
    ) -> None:
        if hash_name is not None and hash_name != self._hash_name:
            raise SASLError(f"{self.name} uses {self._hash_name}, not {show_text(hash_name)}")
        if self._plus and channel_binding is None:
            raise SASLError(f"{self.name} needs channel binding data")
        self.username = check_field(username, "username")
        check_field(password, "password")
        self.authzid = check_field(authzid, "authzid")
        self._password = scram_prep(password, "password")
        user = scram_prep(username, "username")
        if not user:
            raise SASLError("username is empty after SASLprep")
        self.channel_binding = channel_binding
        self._min_iterations, self._max_iterations = min_iterations, max_iterations
        nonce = _secrets.token_urlsafe(24) if _nonce is None else _nonce
        if PRINTABLE.fullmatch(nonce) is None:
            raise SASLError("client nonce must be printable ASCII without a comma")
        self._nonce = nonce
        if channel_binding is None:
            flag = "n"
        elif self._plus:
            flag = f"p={channel_binding.type}"
        else:
            flag = "n" if server_supports_plus else "y"
        authz = f"a={scram_escape(scram_prep(authzid, 'authzid'))}" if authzid else ""
        self._gs2_header = f"{flag},{authz},"
        self._client_first_bare = f"n={scram_escape(user)},r={nonce}"
        self._server_signature: bytes | None = None
        self._proof = b""
        self._state = "first"

    def initial_response(self) -> bytes:
        return (self._gs2_header + self._client_first_bare).encode()

    def respond(self, challenge: bytes) -> bytes:
        try:
            text = challenge.decode("utf-8")
        except UnicodeDecodeError:
            self._state = "failed"
            raise SASLError("SCRAM server message is not UTF-8") from None
        if self._state == "first":
            return self._server_first(text)
        if self._state == "final":
            return self._server_final(text)
        raise SASLError("SCRAM received a challenge after the exchange completed")

    def _server_first(self, text: str) -> bytes:
        self._state = "failed"
        attrs = scram_attributes(text, what="server-first-message")
        if attrs[0][0] == "e":
            raise SASLError(f"SCRAM server error: {show_text(attrs[0][1])}")
        if attrs[0][0] == "m":
            raise SASLError("SCRAM server requires an unsupported extension (m=)")
        if [k for k, _ in attrs[:3]] != ["r", "s", "i"]:
            raise SASLError("malformed server-first-message: expected r=, s=, i=")
        nonce, salt_b64, count = (v for _, v in attrs[:3])
        if PRINTABLE.fullmatch(nonce) is None:
            raise SASLError("server nonce contains invalid characters")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise SASLError("server nonce does not extend the client nonce")
        salt = b64decode_strict(salt_b64, "salt")
        if not salt:
            raise SASLError("salt is empty")
        if not count.isascii() or not count.isdigit() or len(count) > 10:
            raise SASLError(f"malformed iteration count {show_text(count, 12)}")
        iterations = int(count)
        if not self._min_iterations <= iterations <= self._max_iterations:
            raise SASLError(
                f"iteration count {iterations} outside the accepted range "
                f"{self._min_iterations}..{self._max_iterations}"
            )
        cbind = self._gs2_header.encode()
        if self._plus:
            assert self.channel_binding is not None  # checked in __init__
            cbind += self.channel_binding.data
        final_bare = f"c={base64.b64encode(cbind).decode()},r={nonce}"
        auth_message = f"{self._client_first_bare},{text},{final_bare}".encode()
        _, client_key, stored_key, server_key = scram_keys(
            self._hash_name, self._password, salt, iterations
        )
        signature = hmac.digest(stored_key, auth_message, self._hash_name)
        self._proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = hmac.digest(server_key, auth_message, self._hash_name)
        self._state = "final"
        return f"{final_bare},p={base64.b64encode(self._proof).decode()}".encode()

    def _server_final(self, text: str) -> bytes:
        self._state = "failed"
        key, value = scram_attributes(text, what="server-final-message")[0]
        if key == "e":
            raise SASLError(f"SCRAM server error: {show_text(value)}")
        if key != "v":
            raise SASLError("malformed server-final-message: expected v= or e=")
        assert self._server_signature is not None  # set with state "final"
        received = b64decode_strict(value, "server signature")
        if not hmac.compare_digest(received, self._server_signature):
            raise SASLError("SCRAM server signature mismatch: server does not know the password")
        self._state = "verified"
        return b""

    def finish(self) -> None:
        if self._state != "verified":
            raise SASLError("server accepted SCRAM without proving it knows the password")

    @property
    def secrets(self) -> tuple[bytes, ...]:
        return tuple(s for s in (self._password.encode(), self._proof) if s)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} username={self.username!r} password=<redacted>>"


class ScramSHA1(Scram):
    """SCRAM-SHA-1 (RFC 5802)."""

    name = "SCRAM-SHA-1"
    _hash_name = "sha1"
    _plus = False


class ScramSHA256(Scram):
    """SCRAM-SHA-256 (RFC 7677)."""

    name = "SCRAM-SHA-256"
    _hash_name = "sha256"
    _plus = False


class ScramSHA1Plus(Scram):
    """SCRAM-SHA-1-PLUS (RFC 5802 §6): needs ``channel_binding``."""

    name = "SCRAM-SHA-1-PLUS"
    _hash_name = "sha1"
    _plus = True


class ScramSHA256Plus(Scram):
    """SCRAM-SHA-256-PLUS (RFC 7677, RFC 5802 §6): needs ``channel_binding``."""

    name = "SCRAM-SHA-256-PLUS"
    _hash_name = "sha256"
    _plus = True


_SCRAM_CLASSES: tuple[type[Scram], ...] = (ScramSHA1, ScramSHA256, ScramSHA1Plus, ScramSHA256Plus)
