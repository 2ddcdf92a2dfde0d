"""An independent decoder of HAProxy PROXY protocol headers, for the tests.

Written from HAProxy's doc/proxy-protocol.txt (§2.1 the v1 line, §2.2 the v2 block,
§2.2.3 CRC32C) without the library's code: addresses are parsed with
``socket.inet_pton`` (not ``ipaddress``), the CRC bit by bit (not by table). It is
strict where the spec says "must": a v1 line ends with CRLF within 107 octets, fields
are separated by exactly one space, numbers have no leading zeros, IPv6 has no dotted
part; a v2 block has the signature, version 2, a known command, family and length.
"""

from __future__ import annotations

import re
import socket
import struct
from dataclasses import dataclass, field

V2_SIGNATURE = b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"
_V1_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\Z"
)
_V1_IPV6 = re.compile(r"[0-9A-Fa-f:]{2,39}\Z")
_V1_PORT = re.compile(r"(?:0|[1-9][0-9]{0,4})\Z")
_FAMILIES = {0x00: "UNKNOWN", 0x11: "TCP4", 0x21: "TCP6", 0x31: "UNIX"}


class DecodeError(ValueError):
    """The bytes are not a valid PROXY header."""


@dataclass
class Decoded:
    version: int
    command: str
    family: str
    source: str | None = None
    destination: str | None = None
    source_port: int | None = None
    destination_port: int | None = None
    tlvs: list[tuple[int, bytes]] = field(default_factory=list)
    crc_ok: bool | None = None
    length: int = 0  # octets of the header


def crc32c_bitwise(data: bytes) -> int:
    """CRC32c (Castagnoli, reflected 0x82F63B78), one bit at a time (RFC 4960 App. B)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def canonical(address: str) -> str:
    """One text per address, for comparisons (``inet_pton`` then ``inet_ntop``)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.inet_ntop(family, socket.inet_pton(family, address))


def decode(data: bytes) -> Decoded:
    """Decode the header at the start of ``data`` (``Decoded.length`` octets long)."""
    if data.startswith(V2_SIGNATURE):
        return _decode_v2(data)
    if data.startswith(b"PROXY "):
        return _decode_v1(data)
    raise DecodeError("neither a v1 nor a v2 PROXY header")


def _decode_v1(data: bytes) -> Decoded:
    end = data.find(b"\r\n", 0, 107)
    if end < 0:
        raise DecodeError("no CRLF within 107 octets")
    text = data[:end].decode("ascii")
    if "\r" in text or "\n" in text:
        raise DecodeError("a lone CR or LF in the line")
    words = text.split(" ")
    if words == ["PROXY", "UNKNOWN"]:
        return Decoded(1, "PROXY", "UNKNOWN", length=end + 2)
    if len(words) != 6 or words[1] not in ("TCP4", "TCP6"):
        raise DecodeError(f"bad v1 line {text!r}")
    _, family, source, destination, sport, dport = words
    for address in (source, destination):
        if family == "TCP4" and not _V1_IPV4.match(address):
            raise DecodeError(f"bad IPv4 {address!r}")
        if family == "TCP6":
            if not _V1_IPV6.match(address) or address.count("::") > 1:
                raise DecodeError(f"bad IPv6 {address!r}")
            socket.inet_pton(socket.AF_INET6, address)
    for port in (sport, dport):
        if not _V1_PORT.match(port) or int(port) > 65535:
            raise DecodeError(f"bad port {port!r}")
    return Decoded(
        1,
        "PROXY",
        family,
        canonical(source),
        canonical(destination),
        int(sport),
        int(dport),
        length=end + 2,
    )


def _decode_v2(data: bytes) -> Decoded:
    if len(data) < 16:
        raise DecodeError("short v2 header")
    ver_cmd, fam, length = struct.unpack("!BBH", data[12:16])
    if ver_cmd >> 4 != 2 or ver_cmd & 0xF not in (0, 1):
        raise DecodeError(f"bad version/command 0x{ver_cmd:02x}")
    if fam not in _FAMILIES:
        raise DecodeError(f"bad family/protocol 0x{fam:02x}")
    if len(data) < 16 + length:
        raise DecodeError("truncated v2 header")
    block = data[16 : 16 + length]
    result = Decoded(2, "PROXY" if ver_cmd & 0xF else "LOCAL", _FAMILIES[fam], length=16 + length)
    rest = block
    if fam in (0x11, 0x21):
        size = 4 if fam == 0x11 else 16
        af = socket.AF_INET if fam == 0x11 else socket.AF_INET6
        if len(block) < 2 * size + 4:
            raise DecodeError("address block too short")
        result.source = socket.inet_ntop(af, block[:size])
        result.destination = socket.inet_ntop(af, block[size : 2 * size])
        result.source_port, result.destination_port = struct.unpack(
            "!HH", block[2 * size : 2 * size + 4]
        )
        rest = block[2 * size + 4 :]
    elif fam == 0x31:
        if len(block) < 216:
            raise DecodeError("UNIX block too short")
        result.source = block[:108].rstrip(b"\x00").decode("utf-8", "surrogateescape")
        result.destination = block[108:216].rstrip(b"\x00").decode("utf-8", "surrogateescape")
        rest = block[216:]
    offset = 16 + length - len(rest)
    while rest:
        if len(rest) < 3:
            raise DecodeError("truncated TLV")
        kind, size = struct.unpack("!BH", rest[:3])
        if len(rest) < 3 + size:
            raise DecodeError("TLV past the block")
        value = rest[3 : 3 + size]
        if kind == 0x03:
            if size != 4:
                raise DecodeError("CRC32C TLV of the wrong size")
            zeroed = data[: offset + 3] + b"\x00" * 4 + data[offset + 7 : 16 + length]
            result.crc_ok = struct.unpack("!I", value)[0] == crc32c_bitwise(zeroed)
        else:
            result.tlvs.append((kind, value))
        rest = rest[3 + size :]
        offset += 3 + size
    return result
