"""``ProxyHeader`` (HAProxy doc/proxy-protocol.txt): the bytes of v1 and v2 headers,
checked by an independent decoder (``proxy_decoder``) on arbitrary values, every
refusal of a bad value, and the engine's rule that the header is the first thing sent
(state GREETING, once, no reply awaited). Engine tests run against both parser twins."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine_helpers import feed, make_conn, names
from proxy_decoder import V2_SIGNATURE, canonical, crc32c_bitwise, decode
from smtpproto import (
    ClientState,
    Ehlo,
    LocalProtocolError,
    ProxyHeader,
    ProxyTLV,
    Session,
    UnsafeRawBytes,
    Write,
)
from smtpproto.client_engine.config import ClientConfig, TLSPolicy
from smtpproto.client_engine.proxy import PROXY_V1_MAX_LINE, PROXY_V2_SIGNATURE
from smtpproto.drivers.support import UpgradeTLS

TCP4 = {
    "source": "192.0.2.7",
    "source_port": 50123,
    "destination": "198.51.100.25",
    "destination_port": 25,
}
TCP6 = {
    "source": "2001:db8::7",
    "source_port": 50123,
    "destination": "2001:db8::25",
    "destination_port": 587,
}

# -- exact bytes -------------------------------------------------------------------------


def test_v1_lines_as_in_the_spec() -> None:
    assert ProxyHeader(**TCP4).to_bytes() == b"PROXY TCP4 192.0.2.7 198.51.100.25 50123 25\r\n"
    assert ProxyHeader(**TCP6).to_bytes() == b"PROXY TCP6 2001:db8::7 2001:db8::25 50123 587\r\n"
    assert ProxyHeader(family="UNKNOWN").to_bytes() == b"PROXY UNKNOWN\r\n"
    # The family may be given; it must then match.
    assert ProxyHeader(family="TCP4", **TCP4) == ProxyHeader(**TCP4)
    assert ProxyHeader(**TCP4).family == "TCP4"


def test_v1_longest_lines_fit_in_107_octets() -> None:
    widest = ProxyHeader(
        source="ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        source_port=65535,
        destination="ffff:ffff:ffff:ffff:ffff:ffff:fffe:ffff",
        destination_port=65535,
    ).to_bytes()
    assert len(widest) == 104 <= PROXY_V1_MAX_LINE  # §2.1: 104 for TCP6
    v4 = ProxyHeader(
        source="255.255.255.255",
        source_port=65535,
        destination="255.255.255.255",
        destination_port=65535,
    ).to_bytes()
    assert len(v4) == 56  # §2.1: 56 for TCP4


def test_v1_ipv4_mapped_address_is_written_in_hex_groups() -> None:
    """§2.1: IPv6 as groups of hexadecimal digits; no dotted quad inside TCP6."""
    header = ProxyHeader(
        source="::ffff:192.0.2.7", source_port=1, destination="::1", destination_port=2
    )
    assert header.to_bytes() == b"PROXY TCP6 ::ffff:c000:207 ::1 1 2\r\n"
    assert decode(header.to_bytes()).source == canonical("::ffff:192.0.2.7")


def test_v2_blocks_as_in_the_spec() -> None:
    tcp4 = ProxyHeader(version=2, **TCP4).to_bytes()
    assert tcp4 == (
        PROXY_V2_SIGNATURE
        + b"\x21\x11\x00\x0c"
        + bytes([192, 0, 2, 7, 198, 51, 100, 25])
        + struct.pack("!HH", 50123, 25)
    )
    assert PROXY_V2_SIGNATURE == V2_SIGNATURE
    tcp6 = ProxyHeader(version=2, **TCP6).to_bytes()
    assert tcp6[12:16] == b"\x21\x21\x00\x24" and len(tcp6) == 16 + 36
    assert ProxyHeader(version=2, command="LOCAL").to_bytes() == V2_SIGNATURE + b"\x20\x00\x00\x00"
    assert ProxyHeader(version=2, family="UNKNOWN").to_bytes() == V2_SIGNATURE + b"\x21\x00\x00\x00"
    unix = ProxyHeader(version=2, family="UNIX", source="", destination="/run/smtpd.sock")
    raw = unix.to_bytes()
    assert raw[12:16] == b"\x21\x31\x00\xd8" and len(raw) == 16 + 216
    decoded = decode(raw)
    assert (decoded.family, decoded.source, decoded.destination) == ("UNIX", "", "/run/smtpd.sock")


def test_v2_tlvs_and_crc32c() -> None:
    header = ProxyHeader(
        version=2,
        tlvs=(
            ProxyTLV(type=0x02, value=b"mx.example.org"),
            ProxyTLV(type=0x05, value=b"\x00" * 128),
            ProxyTLV(type=0xE0, value=b""),
        ),
        crc32c=True,
        **TCP4,
    )
    decoded = decode(header.to_bytes())
    assert decoded.tlvs == [(0x02, b"mx.example.org"), (0x05, b"\x00" * 128), (0xE0, b"")]
    assert decoded.crc_ok is True
    assert decoded.length == len(header.to_bytes())
    # A flipped octet anywhere breaks the checksum (the decoder's own CRC).
    broken = bytearray(header.to_bytes())
    broken[20] ^= 1
    assert decode(bytes(broken)).crc_ok is False
    assert crc32c_bitwise(b"123456789") == 0xE3069283  # RFC 3720 B.4 check value


def test_describe_is_one_printable_line() -> None:
    assert ProxyHeader(**TCP4).describe() == "PROXY TCP4 192.0.2.7 198.51.100.25 50123 25"
    text = ProxyHeader(version=2, crc32c=True, **TCP6).describe()
    assert text.startswith("<PROXY v2: PROXY TCP6 2001:db8::7") and "CRC32C" in text
    unix = ProxyHeader(version=2, family="UNIX", source="a\r\nb\x1b", destination="/x")
    assert unix.describe().isprintable() and "\\r\\n" in unix.describe()
    assert ProxyHeader(version=2, command="LOCAL").describe().startswith("<PROXY v2: LOCAL;")


# -- the independent decoder reads back what was given --------------------------------------

PORTS = st.integers(min_value=0, max_value=65535)
TLVS = st.lists(
    st.builds(
        ProxyTLV,
        type=st.integers(0, 255).filter(lambda t: t not in (0x03, 0x05)),
        value=st.binary(max_size=300),
    ),
    max_size=4,
)


@st.composite
def headers(draw: st.DrawFn) -> tuple[dict[str, Any], ProxyHeader]:
    version = draw(st.sampled_from([1, 2]))
    ip_version = draw(st.sampled_from([4, 6]))
    values: dict[str, Any] = {
        "source": draw(st.ip_addresses(v=ip_version)),
        "destination": draw(st.ip_addresses(v=ip_version)),
        "source_port": draw(PORTS),
        "destination_port": draw(PORTS),
    }
    if draw(st.booleans()):  # as text, as a caller would give it
        values["source"] = str(values["source"])
        values["destination"] = str(values["destination"])
    extra: dict[str, Any] = {}
    if version == 2:
        extra = {"tlvs": tuple(draw(TLVS)), "crc32c": draw(st.booleans())}
    return values, ProxyHeader(version=version, **values, **extra)


@given(headers(), st.binary(max_size=20))
def test_decoder_reads_back_the_values(
    case: tuple[dict[str, Any], ProxyHeader], after: bytes
) -> None:
    values, header = case
    wire = header.to_bytes()
    decoded = decode(wire + after)  # SMTP bytes may follow at once
    assert decoded.length == len(wire)
    assert decoded.version == header.version and decoded.command == "PROXY"
    assert decoded.family == (
        "TCP4" if ipaddress.ip_address(values["source"]).version == 4 else "TCP6"
    )
    assert decoded.source == canonical(str(values["source"]))
    assert decoded.destination == canonical(str(values["destination"]))
    assert decoded.source_port == values["source_port"]
    assert decoded.destination_port == values["destination_port"]
    if header.version == 1:
        assert len(wire) <= PROXY_V1_MAX_LINE and wire.endswith(b"\r\n") and wire.isascii()
    else:
        assert decoded.tlvs == [(tlv.type, tlv.value) for tlv in header.tlvs]
        assert decoded.crc_ok is (True if header.crc32c else None)


@given(
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30),
)
def test_unix_paths_read_back(source: str, destination: str) -> None:
    header = ProxyHeader(version=2, family="UNIX", source=source, destination=destination)
    decoded = decode(header.to_bytes())
    assert (decoded.source, decoded.destination) == (source, destination)


# -- refusals: every caller value is checked before a byte exists ---------------------------

BAD: list[tuple[dict[str, Any], str]] = [
    ({}, "needs source and destination"),
    ({**TCP4, "source": "192.0.2.7\r\nMAIL FROM:<a@b>"}, "not an IPv4 or IPv6 address"),
    ({**TCP4, "source": "192.0.2.7\x00"}, "not an IPv4 or IPv6 address"),
    ({**TCP4, "destination": "mx.example.org"}, "not an IPv4 or IPv6 address"),
    ({**TCP4, "source": "192.0.2.07"}, "not an IPv4 or IPv6 address"),
    ({**TCP4, "source": ""}, "not an IPv4 or IPv6 address"),
    ({**TCP4, "source": 3221225991}, "must be an IP address"),
    ({**TCP4, "source": b"192.0.2.7"}, "must be an IP address"),
    ({**TCP4, "destination": "2001:db8::25"}, "not of one family"),
    ({**TCP6, "source": "fe80::1%eth0"}, "zone index"),
    ({**TCP4, "family": "TCP6"}, "does not match"),
    ({**TCP4, "family": "tcp4"}, "family must be one of"),
    ({**TCP4, "family": "AF_INET"}, "family must be one of"),
    ({**TCP4, "source_port": -1}, "from 0 to 65535"),
    ({**TCP4, "source_port": 65536}, "from 0 to 65535"),
    ({**TCP4, "destination_port": "25"}, "from 0 to 65535"),
    ({**TCP4, "destination_port": True}, "from 0 to 65535"),
    ({**TCP4, "destination_port": 25.0}, "from 0 to 65535"),
    ({**TCP4, "destination_port": None}, "from 0 to 65535"),
    ({"source": "192.0.2.7", "source_port": 1}, "needs source and destination"),
    ({**TCP4, "version": 3}, "version must be 1 or 2"),
    ({**TCP4, "version": True}, "version must be 1 or 2"),
    ({**TCP4, "version": "2"}, "version must be 1 or 2"),
    ({**TCP4, "command": "LOCAL"}, "LOCAL command is version 2 only"),
    ({**TCP4, "version": 2, "command": "LOCAL"}, "carries no addresses"),
    ({"version": 2, "command": "LOCAL", "family": "TCP4"}, "has no family"),
    ({"version": 2, "command": "HEALTH"}, "must be 'PROXY' or 'LOCAL'"),
    ({"version": 2, "command": ["LOCAL"]}, "must be 'PROXY' or 'LOCAL'"),
    ({**TCP4, "family": ["TCP4"]}, "family must be one of"),
    ({**TCP4, "family": "UNKNOWN"}, "carries no addresses"),
    ({"family": "UNKNOWN", "source_port": 1}, "carries no addresses"),
    ({"family": "UNIX", "source": "/a", "destination": "/b"}, "version 2 only"),
    (
        {"version": 2, "family": "UNIX", "source": "/a", "destination": "/b", "source_port": 1},
        "no ports",
    ),
    ({"version": 2, "family": "UNIX", "source": "/a"}, "must be a path"),
    ({"version": 2, "family": "UNIX", "source": "/a\x00", "destination": "/b"}, "without NUL"),
    ({"version": 2, "family": "UNIX", "source": "/" * 109, "destination": "/b"}, "at most 108"),
    ({"version": 2, "family": "UNIX", "source": "é" * 55, "destination": "/b"}, "at most 108"),
    ({**TCP4, "tlvs": (ProxyTLV(type=1, value=b"h2"),)}, "version 2 only"),
    ({**TCP4, "crc32c": True}, "version 2 only"),
    ({**TCP4, "version": 2, "crc32c": 1}, "True or False"),
    ({**TCP4, "version": 2, "tlvs": ((1, b"h2"),)}, "sequence of ProxyTLV"),
    ({**TCP4, "version": 2, "tlvs": ProxyTLV(type=1, value=b"h2")}, "sequence of ProxyTLV"),
    (
        {**TCP4, "version": 2, "tlvs": (ProxyTLV(type=0xE0, value=b"x" * 65535),)},
        "at most 65535",
    ),
]


@pytest.mark.parametrize(("values", "message"), BAD)
def test_bad_values_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        ProxyHeader(**values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"type": 0x03, "value": b"\x00" * 4}, "use crc32c=True"),
        ({"type": 256, "value": b""}, "from 0 to 255"),
        ({"type": -1, "value": b""}, "from 0 to 255"),
        ({"type": True, "value": b""}, "from 0 to 255"),
        ({"type": 1, "value": "h2"}, "must be bytes"),
        ({"type": 0x05, "value": b"x" * 129}, "at most 128"),
        ({"type": 0xE0, "value": b"x" * 65536}, "at most 65535"),
    ],
)
def test_bad_tlvs_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        ProxyTLV(**values)


def test_largest_tlv_values_at_the_bounds() -> None:
    assert len(ProxyTLV(type=0x05, value=b"x" * 128).value) == 128
    header = ProxyHeader(
        version=2, family="UNKNOWN", tlvs=(ProxyTLV(type=0xE0, value=b"x" * 65532),)
    )
    assert decode(header.to_bytes()).tlvs == [(0xE0, b"x" * 65532)]  # 3 + 65532 = 65535


def test_header_is_frozen_and_tlv_values_are_copied() -> None:
    value = bytearray(b"h2")
    tlv = ProxyTLV(type=1, value=value)
    value[:] = b"xx"
    assert tlv.value == b"h2"
    with pytest.raises(AttributeError):
        ProxyHeader(**TCP4).source = "192.0.2.8"  # type: ignore[misc]


# -- the engine: first bytes only, once, no reply -----------------------------------------


def test_engine_sends_the_header_first_and_expects_no_reply(parser_cls: Any) -> None:
    lines: list[tuple[str, bytes]] = []
    conn = make_conn(parser_cls, transcript=lambda d, line: lines.append((d, line)))
    header = ProxyHeader(**TCP4)
    assert conn.send(header) == header.to_bytes()
    assert conn.state is ClientState.GREETING and conn.outstanding == ()
    assert lines == [("C", b"PROXY TCP4 192.0.2.7 198.51.100.25 50123 25")]
    assert names(feed(conn, b"220 mx.example.org ESMTP\r\n")) == ["Greeting"]
    conn.send(Ehlo(hostname="c.example"))
    assert names(feed(conn, b"250 mx.example.org\r\n")) == ["EhloAccepted"]


def test_engine_refuses_a_second_header_or_one_after_other_bytes(parser_cls: Any) -> None:
    conn = make_conn(parser_cls)
    conn.send(ProxyHeader(version=2, command="LOCAL"))
    with pytest.raises(LocalProtocolError, match="first bytes"):
        conn.send(ProxyHeader(**TCP4))
    assert conn.state is ClientState.GREETING  # refused before a byte: nothing changed
    assert names(feed(conn, b"220 mx.example.org ESMTP\r\n")) == ["Greeting"]

    raw = make_conn(parser_cls, allow_unsafe_raw=True)
    raw.send(UnsafeRawBytes(data=b"x", expected_replies=0))
    with pytest.raises(LocalProtocolError, match="first bytes"):
        raw.send(ProxyHeader(**TCP4))

    greeted = make_conn(parser_cls)
    feed(greeted, b"220 mx.example.org ESMTP\r\n")
    with pytest.raises(LocalProtocolError, match="cannot be sent in state HELLO"):
        greeted.send(ProxyHeader(**TCP4))
    assert greeted.state is ClientState.HELLO


def test_header_may_go_out_after_the_greeting_began_to_arrive(parser_cls: Any) -> None:
    """What was received does not matter: the rule is about the bytes sent."""
    conn = make_conn(parser_cls)
    assert feed(conn, b"220 mx.exa") == []
    assert conn.send(ProxyHeader(family="UNKNOWN")) == b"PROXY UNKNOWN\r\n"
    assert names(feed(conn, b"mple.org\r\n")) == ["Greeting"]


# -- the session driver: the header before implicit TLS and before the greeting -------------


@pytest.mark.parametrize("policy", [TLSPolicy.NONE, TLSPolicy.IMPLICIT])
def test_session_open_writes_the_header_first(policy: TLSPolicy) -> None:
    header = ProxyHeader(version=2, **TCP6)
    session = Session(ClientConfig(tls_policy=policy), proxy_header=header)
    driver = session.open(until="greeting")
    first = next(driver)
    assert isinstance(first, Write) and first.data == header.to_bytes()
    following = driver.send(None)
    if policy is TLSPolicy.IMPLICIT:
        assert isinstance(following, UpgradeTLS)
        following = driver.send(None)
    assert type(following).__name__ == "Read"
    with pytest.raises(StopIteration) as stop:
        driver.send(b"220 mx.example.org ESMTP\r\n")
    assert stop.value.value.code == 220


def test_session_refuses_what_is_not_a_header() -> None:
    with pytest.raises(LocalProtocolError, match="must be a ProxyHeader"):
        Session(proxy_header=b"PROXY UNKNOWN\r\n")  # type: ignore[arg-type]
