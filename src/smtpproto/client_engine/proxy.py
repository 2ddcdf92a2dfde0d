"""``ProxyHeader``: the HAProxy PROXY protocol header a client sends before SMTP.

Theory of operation
-------------------
A proxy in front of a mail server (HAProxy, a load balancer) tells the server who the
real client is by prepending one header to the connection, before any other byte
(HAProxy's doc/proxy-protocol.txt, "The PROXY protocol, versions 1 & 2"): version 1
is one text line (§2.1), version 2 a binary block (§2.2). Postfix
(``smtpd_upstream_proxy_protocol = haproxy``) and Exim (``hosts_proxy``) read it, so
a client that speaks it can test such a server without the proxy, as swaks'
``--proxy*`` options do.

``ProxyHeader`` is a command value like the others (``commands``): every field is
checked in the constructor and the exact bytes are built there, so a header that exists
can always be sent. ``ClientConnection.send`` takes it only as the very first thing of
a connection (state ``GREETING``, nothing sent before); it expects no reply.
Under implicit TLS it goes before the handshake, in cleartext (the drivers do that).

The families (the v1 names; v2 codes in brackets, §2.2):

* ``"TCP4"`` [AF_INET, STREAM, 0x11] and ``"TCP6"`` [AF_INET6, STREAM, 0x21]: source
  and destination address (``ipaddress``) and port (0-65535), all four required; the
  family may be left out, it is then the addresses' (which must agree).
* ``"UNIX"`` [AF_UNIX, STREAM, 0x31], version 2 only: source and destination socket
  paths, at most 108 octets each (UTF-8), no NUL, no ports. An empty path is an
  unnamed socket.
* ``"UNKNOWN"`` [AF_UNSPEC, 0x00]: no addresses; the receiver uses the real ones.
  v1 sends the short form ``PROXY UNKNOWN``.

Version 2 also has the ``LOCAL`` command (a connection the proxy made on its own, a
health check: no addresses, family UNSPEC) and optional TLVs (§2.2.1 to §2.2.8):
``ProxyTLV(type=, value=)``; ``crc32c=True`` appends the PP2_TYPE_CRC32C checksum of the
whole header (§2.2.3, RFC 4960 Appendix B). SMTP is a stream protocol, so the
transport is always STREAM (the DGRAM codes are not offered).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
from typing import Literal

from ..wire.errors import LocalProtocolError
from ..wire.text import escape_text
from .commands import Command

__all__ = [
    "PP2_TYPE_ALPN",
    "PP2_TYPE_AUTHORITY",
    "PP2_TYPE_CRC32C",
    "PP2_TYPE_NETNS",
    "PP2_TYPE_NOOP",
    "PP2_TYPE_SSL",
    "PP2_TYPE_UNIQUE_ID",
    "PROXY_FAMILIES",
    "PROXY_V1_MAX_LINE",
    "PROXY_V2_SIGNATURE",
    "ProxyCommand",
    "ProxyFamily",
    "ProxyHeader",
    "ProxyTLV",
]

#: The families, named as in version 1 (plus UNIX, version 2 only).
ProxyFamily = Literal["TCP4", "TCP6", "UNIX", "UNKNOWN"]
PROXY_FAMILIES: tuple[ProxyFamily, ...] = ("TCP4", "TCP6", "UNIX", "UNKNOWN")
#: The version 2 commands (§2.2: the low nibble of the 13th octet).
ProxyCommand = Literal["PROXY", "LOCAL"]

#: The longest version 1 line a receiver must take, CRLF included (§2.1).
PROXY_V1_MAX_LINE = 107
#: The 12 octets every version 2 header starts with (§2.2).
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

# The registered TLV types (§2.2).
PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
PP2_TYPE_UNIQUE_ID = 0x05
PP2_TYPE_SSL = 0x20
PP2_TYPE_NETNS = 0x30
#: PP2_TYPE_UNIQUE_ID carries at most 128 octets (§2.2.5).
_MAX_UNIQUE_ID = 128
#: The 16-bit length field of a TLV and of the v2 header's address block (§2.2).
_MAX_LENGTH = 0xFFFF
#: AF_UNIX addresses are exactly 108 octets, NUL-padded (§2.2).
_UNIX_PATH = 108

_V2_COMMAND = {"LOCAL": 0x20, "PROXY": 0x21}  # version 2 in the high nibble
_V2_FAMILY = {"UNKNOWN": 0x00, "TCP4": 0x11, "TCP6": 0x21, "UNIX": 0x31}


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ProxyTLV:
    """One version 2 Type-Length-Value vector (§2.2): ``type`` 0-255, ``value`` at most
    65535 octets. PP2_TYPE_UNIQUE_ID is at most 128 octets (§2.2.5); PP2_TYPE_CRC32C is
    not given by hand (``ProxyHeader(crc32c=True)`` computes it)."""

    type: int
    value: bytes

    def __post_init__(self) -> None:
        if type(self.type) is not int or not 0 <= self.type <= 0xFF:
            raise LocalProtocolError(f"a PROXY TLV type is an int from 0 to 255, got {self.type!r}")
        if self.type == PP2_TYPE_CRC32C:
            raise LocalProtocolError("the PP2_TYPE_CRC32C TLV is computed: use crc32c=True")
        if not isinstance(self.value, (bytes, bytearray, memoryview)):
            raise LocalProtocolError(
                f"a PROXY TLV value must be bytes, got {type(self.value).__name__}"
            )
        value = bytes(self.value)
        _set(self, "value", value)
        limit = _MAX_UNIQUE_ID if self.type == PP2_TYPE_UNIQUE_ID else _MAX_LENGTH
        if len(value) > limit:
            raise LocalProtocolError(
                f"PROXY TLV 0x{self.type:02X} value is {len(value)} octets, at most {limit}"
            )

    def to_bytes(self) -> bytes:
        """Type, length (network order), value."""
        return struct.pack("!BH", self.type, len(self.value)) + self.value


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ProxyHeader(Command):
    """The PROXY protocol header (HAProxy doc/proxy-protocol.txt; see the module doc)::

        ProxyHeader(source="192.0.2.7", source_port=50123,
                    destination="198.51.100.25", destination_port=25)   # v1 TCP4
        ProxyHeader(version=2, source="2001:db8::7", source_port=50123,
                    destination="2001:db8::25", destination_port=25)    # v2 TCP6
        ProxyHeader(family="UNKNOWN")                # v1 "PROXY UNKNOWN"
        ProxyHeader(version=2, command="LOCAL")      # v2 health check

    Every value is checked here (``LocalProtocolError``): addresses through
    ``ipaddress`` (no zone index), the family matching both addresses, ports 0-65535,
    UNIX, LOCAL and TLVs only in version 2, the v1 line at most 107 octets (§2.1).
    ``to_bytes()`` is the header; ``describe()`` a one-line text of it.
    """

    source: str | ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    source_port: int | None = None
    destination: str | ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    destination_port: int | None = None
    version: Literal[1, 2] = 1
    family: ProxyFamily | None = None
    command: ProxyCommand = "PROXY"
    tlvs: tuple[ProxyTLV, ...] = ()
    crc32c: bool = False
    _wire: bytes = dataclasses.field(init=False, repr=False, compare=False, default=b"")
    _text: str = dataclasses.field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        if self.version not in (1, 2) or type(self.version) is not int:
            raise LocalProtocolError(f"PROXY version must be 1 or 2, got {self.version!r}")
        if not isinstance(self.command, str) or self.command not in _V2_COMMAND:
            raise LocalProtocolError(
                f"PROXY command must be 'PROXY' or 'LOCAL', got {self.command!r}"
            )
        if self.family is not None and (
            not isinstance(self.family, str) or self.family not in PROXY_FAMILIES
        ):
            raise LocalProtocolError(
                f"PROXY family must be one of {', '.join(PROXY_FAMILIES)}, got {self.family!r}"
            )
        if type(self.crc32c) is not bool:
            raise LocalProtocolError("crc32c must be True or False")
        tlvs = self.tlvs
        if not isinstance(tlvs, (tuple, list)) or not all(isinstance(t, ProxyTLV) for t in tlvs):
            raise LocalProtocolError("tlvs must be a sequence of ProxyTLV")
        _set(self, "tlvs", tuple(tlvs))
        if self.version == 1:
            if self.command == "LOCAL":
                raise LocalProtocolError("the LOCAL command is version 2 only")
            if self.tlvs or self.crc32c:
                raise LocalProtocolError("TLVs (and crc32c) are version 2 only")
        family, addresses = self._addresses()
        _set(self, "family", family)
        words = ["PROXY", family, *addresses]
        if self.version == 1:
            line = " ".join(words).encode("ascii") + b"\r\n"
            if len(line) > PROXY_V1_MAX_LINE:  # cannot happen with checked values
                raise LocalProtocolError(f"PROXY v1 line of {len(line)} octets (at most 107)")
            _set(self, "_wire", line)
            _set(self, "_text", " ".join(words))
        else:
            wire = self._v2(family)
            _set(self, "_wire", wire)
            if self.command == "LOCAL":
                words = ["LOCAL"]
            extra = f", {len(self.tlvs)} TLV(s)" if self.tlvs else ""
            extra += ", CRC32C" if self.crc32c else ""
            text = escape_text(" ".join(words))
            _set(self, "_text", f"<PROXY v2: {text}{extra}; {len(wire)} octets>")

    # -- checking -----------------------------------------------------------------------

    def _addresses(self) -> tuple[ProxyFamily, list[str]]:
        """The family and the v1 words after it (addresses, then ports)."""
        given = [self.source, self.source_port, self.destination, self.destination_port]
        family = self.family
        if self.command == "LOCAL" or family == "UNKNOWN":
            if any(value is not None for value in given):
                what = "LOCAL" if self.command == "LOCAL" else "family UNKNOWN"
                raise LocalProtocolError(f"a PROXY header with {what} carries no addresses")
            if self.command == "LOCAL" and family is not None and family != "UNKNOWN":
                raise LocalProtocolError("a LOCAL PROXY header has no family (UNKNOWN)")
            return "UNKNOWN", []
        if family == "UNIX":
            return family, self._unix_paths()
        if self.source is None or self.destination is None:
            raise LocalProtocolError(
                "a PROXY header needs source and destination (addresses and ports), "
                "or family='UNKNOWN'"
            )
        source = _ip(self.source, "source")
        destination = _ip(self.destination, "destination")
        if source.version != destination.version:
            raise LocalProtocolError(
                f"PROXY source {source} and destination {destination} are not of one family"
            )
        inferred: ProxyFamily = "TCP4" if source.version == 4 else "TCP6"
        if family is not None and family != inferred:
            raise LocalProtocolError(
                f"PROXY family {family} does not match the addresses ({inferred})"
            )
        ports = [
            _port(self.source_port, "source_port"),
            _port(self.destination_port, "destination_port"),
        ]
        return inferred, [_ip_text(source), _ip_text(destination), *map(str, ports)]

    def _unix_paths(self) -> list[str]:
        if self.version == 1:
            raise LocalProtocolError("family UNIX is version 2 only (version 1: TCP4, TCP6)")
        if self.source_port is not None or self.destination_port is not None:
            raise LocalProtocolError("a UNIX PROXY header has no ports")
        paths = []
        for value, what in ((self.source, "source"), (self.destination, "destination")):
            if not isinstance(value, str):
                raise LocalProtocolError(f"PROXY {what} of family UNIX must be a path (str)")
            octets = value.encode("utf-8", "surrogateescape")
            if b"\x00" in octets or len(octets) > _UNIX_PATH:
                raise LocalProtocolError(
                    f"PROXY {what} path must be at most {_UNIX_PATH} octets, without NUL"
                )
            paths.append(value)
        return paths

    # -- version 2 ----------------------------------------------------------------------

    def _v2(self, family: ProxyFamily) -> bytes:
        if family == "UNIX":
            assert isinstance(self.source, str) and isinstance(self.destination, str)
            block = b"".join(
                path.encode("utf-8", "surrogateescape").ljust(_UNIX_PATH, b"\x00")
                for path in (self.source, self.destination)
            )
        elif family == "UNKNOWN":
            block = b""
        else:
            assert self.source is not None and self.destination is not None
            assert self.source_port is not None and self.destination_port is not None
            block = (
                _ip(self.source, "source").packed
                + _ip(self.destination, "destination").packed
                + struct.pack("!HH", self.source_port, self.destination_port)
            )
        block += b"".join(tlv.to_bytes() for tlv in self.tlvs)
        if self.crc32c:
            block += struct.pack("!BH", PP2_TYPE_CRC32C, 4) + b"\x00" * 4
        if len(block) > _MAX_LENGTH:
            raise LocalProtocolError(
                f"PROXY v2 addresses and TLVs are {len(block)} octets, at most {_MAX_LENGTH}"
            )
        fam = 0x00 if self.command == "LOCAL" else _V2_FAMILY[family]
        header = PROXY_V2_SIGNATURE + struct.pack(
            "!BBH", _V2_COMMAND[self.command], fam, len(block)
        )
        wire = header + block
        if self.crc32c:  # §2.2.3: computed with the checksum field zeroed, then filled in
            wire = wire[:-4] + struct.pack("!I", _crc32c(wire))
        return wire

    # -- output -------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The header, exactly as it goes on the wire."""
        return self._wire

    def describe(self) -> str:
        """One printable line: the v1 line without CRLF, or a summary of the v2 block."""
        return self._text


def _ip(value: object, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        address = value
    elif isinstance(value, str):
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise LocalProtocolError(
                f"PROXY {what} {value!a} is not an IPv4 or IPv6 address"
            ) from None
    else:
        raise LocalProtocolError(f"PROXY {what} must be an IP address (str), got {value!r}")
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise LocalProtocolError(f"PROXY {what} {value!a}: a zone index cannot be sent")
    return address


def _port(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= 0xFFFF:
        raise LocalProtocolError(f"PROXY {what} must be an int from 0 to 65535, got {value!r}")
    return value


def _ip_text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """§2.1: IPv4 dotted decimal without leading zeros; IPv6 as hexadecimal groups with
    at most one ``::`` (RFC 5952), never the dotted form of an IPv4-mapped address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        high, low = struct.unpack("!HH", address.ipv4_mapped.packed)
        return f"::ffff:{high:x}:{low:x}"
    return str(address)


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def _crc32c(data: bytes) -> int:
    """CRC32c (Castagnoli, RFC 4960 Appendix B) of ``data``."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
