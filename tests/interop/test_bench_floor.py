"""The benchmark's raw pipelined-socket floor (bench/floor.py) delivers exactly.

The floor is the reference issue 14's client rows are divided by; a floor that sent
less (no dot-stuffing, a message lost in the pipeline) would flatter it and every
ratio. These tests send through it to Postfix's smtp-sink (the benchmark's own server) with
its dump file on, which records the content after dot-unstuffing with LF line ends,
and compare; and check that a refusal or a hang-up
stops it with an error instead of a number.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from .peers import SinkPeer

pytestmark = pytest.mark.interop

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}_under_test", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


floor = _load("floor")
workload = _load("workload")


@pytest.mark.parametrize("size", [1024, 70_000])
def test_floor_delivers_every_message_exactly(smtp_sink: SinkPeer, size: int) -> None:
    message = workload.make_message(size)
    assert b"\r\n." in message  # dot-stuffing is exercised
    floor.deliver(smtp_sink.host, smtp_sink.port, "a@example.org", "b@example.org", message, 3)
    received = smtp_sink.wait_for_messages(3)
    assert len(received) == 3
    for got in received:
        assert (got.mail_from, got.rcpt_tos, got.content) == (
            "a@example.org",
            ("b@example.org",),
            message.replace(b"\r\n", b"\n"),
        )


def test_floor_stuffs_a_leading_dot_and_ends_the_last_line(smtp_sink: SinkPeer) -> None:
    floor.deliver(smtp_sink.host, smtp_sink.port, "a@example.org", "b@example.org", b".x", 1)
    assert smtp_sink.wait_for_messages(1)[0].content == b".x\n"


def test_floor_refuses_zero_messages() -> None:
    with pytest.raises(ValueError, match="at least one"):
        floor.deliver("127.0.0.1", 9, "a@example.org", "b@example.org", b"x", 0)


@pytest.mark.parametrize(
    ("option", "error"),
    [("-f", "expected"), ("-q", "connection closed")],
    ids=["refused", "hangup"],
)
def test_floor_reports_a_refused_or_dropped_rcpt(
    smtp_sink_factory: Callable[..., SinkPeer], option: str, error: str
) -> None:
    """A reply other than the expected one, or a hang-up, is an error: no number."""
    sink = smtp_sink_factory(dump=False, extra_args=(option, "RCPT"))
    with pytest.raises(floor.FloorError, match=error):
        floor.deliver(sink.host, sink.port, "a@example.org", "b@example.org", b"x\r\n", 1)
