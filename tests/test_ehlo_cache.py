"""The parsed-EHLO intern table (``capabilities.parse_ehlo``): one per process, bounded in
entries and in the size of what it keeps, sharing immutable values only.

Connections that get the same EHLO reply (with the same ``mask_extensions``) share one
``Capabilities`` and one ``Reply`` instead of a copy each (issue 14: about 2 KB per
connection); connections that get different replies never see each other's.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterator

import pytest

from smtpproto import (
    NEED_DATA,
    ClientConfig,
    ClientConnection,
    Ehlo,
    EhloAccepted,
    Lhlo,
    PyReplyParser,
)
from smtpproto.client_engine import capabilities
from smtpproto.client_engine.capabilities import (
    EHLO_CACHE_MAX_LINES,
    EHLO_CACHE_MAX_OCTETS,
    EHLO_CACHE_SIZE,
    parse_ehlo,
)


@pytest.fixture(autouse=True)
def _empty_table() -> Iterator[None]:
    """Each test starts from an empty table and leaves one behind."""
    capabilities._EHLO_CACHE.clear()
    yield
    capabilities._EHLO_CACHE.clear()


def _reply_bytes(name: str, *extensions: str) -> bytes:
    lines = [name, *extensions]
    return "".join(
        f"250{' ' if index == len(lines) - 1 else '-'}{line}\r\n"
        for index, line in enumerate(lines)
    ).encode()


def _ehlo(
    config: ClientConfig, name: str, *extensions: str
) -> tuple[ClientConnection, EhloAccepted]:
    conn = ClientConnection(config)
    conn.receive_data(b"220 mx ready\r\n")
    assert conn.next_event() is not NEED_DATA
    conn.send(Lhlo(hostname="client.example") if config.lmtp else Ehlo(hostname="client.example"))
    conn.receive_data(_reply_bytes(name, *extensions))
    event = conn.next_event()
    assert isinstance(event, EhloAccepted)
    return conn, event


def test_connections_with_the_same_reply_share_the_parsed_values() -> None:
    # Two configs, as two independent clients have: the table is not the config's.
    one, first = _ehlo(ClientConfig(), "mx", "PIPELINING", "SIZE 1000")
    other, second = _ehlo(ClientConfig(lmtp=True), "mx", "PIPELINING", "SIZE 1000")
    assert second.capabilities is first.capabilities
    assert second.reply is first.reply  # the second connection's own copy is freed
    assert one.capabilities is other.capabilities
    assert len(capabilities._EHLO_CACHE) == 1


def test_different_replies_never_see_each_other() -> None:
    config = ClientConfig()
    conn_a, a = _ehlo(config, "mx-a", "PIPELINING", "AUTH PLAIN")
    conn_b, b = _ehlo(config, "mx-b", "CHUNKING", "SIZE 5")
    # Only the greeting line differs: still two entries, each its own.
    conn_c, c = _ehlo(config, "mx-c", "PIPELINING", "AUTH PLAIN")
    assert a.capabilities.pipelining and not b.capabilities.pipelining
    assert b.capabilities.chunking and not a.capabilities.chunking
    assert a.capabilities.auth_mechanisms == {"PLAIN"} and not b.capabilities.auth_mechanisms
    assert b.capabilities.size == 5 and a.capabilities.size is None
    assert c.capabilities.server_name == "mx-c" and a.capabilities.server_name == "mx-a"
    assert c.capabilities is not a.capabilities
    assert conn_a.capabilities is a.capabilities and conn_b.capabilities is b.capabilities
    assert conn_c.capabilities is c.capabilities
    assert c.reply.raw_lines[0] == b"mx-c" and a.reply.raw_lines[0] == b"mx-a"


def test_what_is_shared_cannot_be_changed() -> None:
    _, first = _ehlo(ClientConfig(), "mx", "PIPELINING", "AUTH PLAIN LOGIN")
    caps = first.capabilities
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.server_name = "evil"  # type: ignore[misc]
    with pytest.raises(TypeError):
        caps.keywords["STARTTLS"] = ()  # type: ignore[index]
    assert isinstance(caps.keywords, types.MappingProxyType)
    assert all(type(params) is tuple for params in caps.keywords.values())
    assert type(caps.ignored_lines) is tuple and type(caps.masked_keywords) is frozenset
    with pytest.raises(AttributeError):
        first.reply.code = 500  # type: ignore[misc]
    # A masked copy is a new value: the shared one is untouched.
    assert not caps.masked("PIPELINING").pipelining and caps.pipelining
    _, again = _ehlo(ClientConfig(), "mx", "PIPELINING", "AUTH PLAIN LOGIN")
    assert again.capabilities is caps and caps.pipelining


def test_a_connection_forgets_the_shared_values_on_starttls_only_for_itself() -> None:
    config = ClientConfig()
    conn, first = _ehlo(config, "mx", "PIPELINING", "STARTTLS")
    other, _ = _ehlo(config, "mx", "PIPELINING", "STARTTLS")
    conn._s.forget_extensions()
    assert conn.capabilities is None
    assert other.capabilities is first.capabilities and first.capabilities.starttls


def test_the_mask_of_each_config_applies() -> None:
    _, masked = _ehlo(ClientConfig(mask_extensions=("PIPELINING",)), "mx", "PIPELINING", "8BITMIME")
    _, plain = _ehlo(ClientConfig(), "mx", "PIPELINING", "8BITMIME")
    _, lower = _ehlo(ClientConfig(mask_extensions=("8bitmime",)), "mx", "PIPELINING", "8BITMIME")
    assert not masked.capabilities.pipelining and masked.capabilities.eightbitmime
    assert masked.capabilities.masked_keywords == {"PIPELINING"}
    assert plain.capabilities.pipelining and not plain.capabilities.masked_keywords
    assert lower.capabilities.pipelining and not lower.capabilities.eightbitmime
    assert len(capabilities._EHLO_CACHE) == 3
    # The engine's own flags follow the mask too.
    conn, _ = _ehlo(ClientConfig(mask_extensions=("PIPELINING",)), "mx", "PIPELINING")
    assert conn._s.pipelining is False


@pytest.mark.parametrize("extra", [0, 1, 5])
def test_the_table_is_bounded_oldest_dropped_first(extra: int) -> None:
    config = ClientConfig()
    for index in range(EHLO_CACHE_SIZE + extra):
        _ehlo(config, f"mx{index}")
    assert len(capabilities._EHLO_CACHE) == EHLO_CACHE_SIZE
    names = [caps.server_name for caps, _, _, _ in capabilities._EHLO_CACHE.values()]
    assert names == [f"mx{index}" for index in range(extra, EHLO_CACHE_SIZE + extra)]


@pytest.mark.parametrize(
    ("lines", "octets", "kept"),
    [
        (EHLO_CACHE_MAX_LINES, 0, True),
        (EHLO_CACHE_MAX_LINES + 1, 0, False),
        (1, EHLO_CACHE_MAX_OCTETS, True),
        (1, EHLO_CACHE_MAX_OCTETS + 1, False),
    ],
)
def test_a_large_reply_is_parsed_but_not_kept(lines: int, octets: int, kept: bool) -> None:
    """At and past each size bound: a reply too large to keep still works."""
    # ``lines`` lines in all; the first pads the octets to exactly ``octets``.
    extensions = [f"X-{index}" for index in range(lines - 1)]
    size = sum(map(len, extensions))
    name = "m" * max(1, octets - size) if octets else "mx"
    assert not octets or len(name) + size == octets
    parser = PyReplyParser(max_line_length=4096, max_reply_bytes=65536)
    (reply,) = parser.feed(_reply_bytes(name, *extensions))
    assert len(reply.raw_lines) == lines
    caps, pipelining, rcptmax, shown = parse_ehlo((), reply)
    assert shown is reply and caps.server_name == name and not pipelining and rcptmax is None
    assert len(caps.keywords) == lines - 1
    assert (len(capabilities._EHLO_CACHE) == 1) is kept
    again = parse_ehlo((), reply)
    assert (again[0] is caps) is kept and again[0] == caps


def test_parse_ehlo_reads_pipelining_and_rcptmax() -> None:
    (reply,) = PyReplyParser().feed(b"250-mx\r\n250-PIPELINING\r\n250 LIMITS RCPTMAX=7\r\n")
    caps, pipelining, rcptmax, shown = parse_ehlo((), reply)
    assert pipelining and rcptmax == 7 and caps.limits.rcptmax == 7 and shown is reply
    assert list(capabilities._EHLO_CACHE) == [((), reply.raw_lines)]
    (same,) = PyReplyParser().feed(b"250-mx\r\n250-PIPELINING\r\n250 LIMITS RCPTMAX=7\r\n")
    assert parse_ehlo((), same)[3] is reply


def test_a_config_holds_no_cache() -> None:
    """The table is not part of any config: a config stays a plain value."""
    config = ClientConfig()
    _ehlo(config, "mx")
    assert "_ehlo_cache" not in {field.name for field in dataclasses.fields(config)}
    assert dataclasses.replace(config, lmtp=False) == config
