"""Stopping an aiosmtpd peer leaks no socket (the test suite's own hygiene).

About one full run in ten failed an unrelated test (test_connection_observe on 3.13,
tests/fuzz/test_python_api.py on 3.11) with an unclosed ``_SelectorSocketTransport``
and its socket, collected during that test. They were aiosmtpd's: ``Controller.stop``
stops its loop, cancels its tasks and closes the loop within an iteration or two, so a
connection the loop accepts in that last iteration fails to attach to the closed
server (asyncio keeps neither it nor its socket), and one still open may never see
its close. A client connecting or closing just as a test ended was enough.
``stop_controller`` closes the listener once pending accepts attached, aborts every
connection and waits for each to be lost, on aiosmtpd's loop, before ``stop``. Here
the race is forced: aiosmtpd's loop is kept busy while one client connects (the
kernel accepts it) and ``stop`` is requested, with another client mid-session; with
``Controller.stop`` alone this collects two unclosed transports and two sockets.
"""

from __future__ import annotations

import gc
import socket
import sys
import time
import warnings
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from .peers import HOST, free_port, stop_controller, track_connections

#: How long aiosmtpd's loop is kept busy while the client connects.
BUSY = 0.3


class _Sink:
    """An aiosmtpd handler with no hooks: every command gets aiosmtpd's default."""


def test_stopping_aiosmtpd_mid_accept_leaks_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    unraisable: list[str] = []

    def record(report: Any) -> None:
        unraisable.append(f"{report.exc_value!r} in {report.object!r}")

    port = free_port()
    controller = track_connections(Controller(_Sink(), hostname=HOST, port=port))
    controller.start()
    with (
        socket.create_connection((HOST, port), timeout=5.0) as in_session,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error", ResourceWarning)
        monkeypatch.setattr(sys, "unraisablehook", record)
        assert in_session.recv(100).startswith(b"220")
        controller.loop.call_soon_threadsafe(time.sleep, BUSY)  # the loop is busy...
        time.sleep(BUSY / 6)
        with socket.create_connection((HOST, port), timeout=5.0):  # ...the kernel accepts
            stop_controller(controller)  # requested while the loop is still busy
        gc.collect()
    assert unraisable == []
    assert controller.loop.is_closed()
