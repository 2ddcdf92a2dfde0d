"""The parsed-EHLO cache: one per ``ClientConfig``, bounded, never shared between configs.

The engine holds no global state (docs/design.md §2); connections that share a config
share its cache, so a reconnect to the same server does not parse the reply again.
"""

from __future__ import annotations

import dataclasses

import pytest

from smtpproto import (
    NEED_DATA,
    ClientConfig,
    ClientConnection,
    Ehlo,
    EhloAccepted,
    PyReplyParser,
)
from smtpproto.client_engine.capabilities import EHLO_CACHE_SIZE, parse_ehlo


def _ehlo(config: ClientConfig, name: str, *extensions: str) -> EhloAccepted:
    conn = ClientConnection(config)
    conn.receive_data(b"220 mx ready\r\n")
    assert conn.next_event() is not NEED_DATA
    conn.send(Ehlo(hostname="client.example"))
    lines = [name, *extensions]
    reply = "".join(
        f"250{' ' if index == len(lines) - 1 else '-'}{line}\r\n"
        for index, line in enumerate(lines)
    )
    conn.receive_data(reply.encode())
    event = conn.next_event()
    assert isinstance(event, EhloAccepted)
    return event


def test_connections_of_one_config_share_the_parsed_reply() -> None:
    config = ClientConfig()
    first = _ehlo(config, "mx", "PIPELINING", "SIZE 1000")
    second = _ehlo(config, "mx", "PIPELINING", "SIZE 1000")
    assert second.capabilities is first.capabilities
    assert len(config._ehlo_cache) == 1


def test_two_configs_share_nothing() -> None:
    one, other = ClientConfig(), ClientConfig()
    first = _ehlo(one, "mx", "PIPELINING")
    second = _ehlo(other, "mx", "PIPELINING")
    assert second.capabilities == first.capabilities
    assert second.capabilities is not first.capabilities
    assert one._ehlo_cache is not other._ehlo_cache


def test_the_mask_of_each_config_applies() -> None:
    masked = _ehlo(ClientConfig(mask_extensions=("PIPELINING",)), "mx", "PIPELINING", "8BITMIME")
    plain = _ehlo(ClientConfig(), "mx", "PIPELINING", "8BITMIME")
    assert not masked.capabilities.pipelining and masked.capabilities.eightbitmime
    assert plain.capabilities.pipelining


@pytest.mark.parametrize("extra", [0, 1, 5])
def test_the_cache_is_bounded_oldest_dropped_first(extra: int) -> None:
    config = ClientConfig()
    for index in range(EHLO_CACHE_SIZE + extra):
        _ehlo(config, f"mx{index}")
    assert len(config._ehlo_cache) == EHLO_CACHE_SIZE
    names = [caps.server_name for caps, _, _ in config._ehlo_cache.values()]
    assert names == [f"mx{index}" for index in range(extra, EHLO_CACHE_SIZE + extra)]


def test_parse_ehlo_reads_pipelining_and_rcptmax() -> None:
    (reply,) = PyReplyParser().feed(b"250-mx\r\n250-PIPELINING\r\n250 LIMITS RCPTMAX=7\r\n")
    cache: dict[tuple[bytes, ...], object] = {}
    caps, pipelining, rcptmax = parse_ehlo(cache, (), reply)  # type: ignore[arg-type]
    assert pipelining and rcptmax == 7 and caps.limits.rcptmax == 7
    assert list(cache) == [reply.raw_lines]


def test_a_config_copy_gets_a_cache_of_its_own() -> None:
    config = ClientConfig()
    _ehlo(config, "mx")
    copy = dataclasses.replace(config, lmtp=False)
    assert copy == config and copy._ehlo_cache == {}
