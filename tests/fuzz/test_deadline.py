"""The campaign's deadline (``Runner.deadline``) may cut any run, even before its
connect: the phases that read a run's first connection must take that (against the
built-in server on 127.0.0.1)."""

from __future__ import annotations

import time

from smtpproto.fuzz.explore import explore
from smtpproto.fuzz.fingerprint import Settings, fingerprint
from smtpproto.fuzz.report import Phase
from smtpproto.fuzz.runner import Runner, Target
from smtpproto.testing import run_server


def test_explore_takes_a_run_cut_before_its_connect() -> None:
    with run_server(host="127.0.0.1") as server:
        runner = Runner(Target("127.0.0.1", server.port))
        profile = fingerprint(runner, Settings(tls="none"))
        runner.deadline = time.monotonic() - 1.0  # the campaign's end has passed
        phase = Phase("explore")
        graph, candidates = explore(runner, profile, time.monotonic() + 30.0, phase)
    assert candidates == [] and phase.runs == 1
    assert graph.startswith("digraph")
