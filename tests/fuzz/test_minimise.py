"""Triage on a simulated server (no network): confirmation, flaky candidates, and the
delta-debugging minimiser keeping only what the verdict needs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from smtpproto.fuzz.observation import ConnResult, Liveness, Observation, Step
from smtpproto.fuzz.probes import Probe
from smtpproto.fuzz.transcript import Event, Transcript, connect, send
from smtpproto.fuzz.triage import CONFIRM_RUNS, Candidate, Judge


class FakeRunner:
    """A simulated server: every write gets ``250``, except RCPT, which gets 250 only
    when an RSET came before it on the connection (the simulated flaw) and 503 else.
    With ``flaky``, every second run answers RCPT with 503 regardless."""

    def __init__(self, *, flaky: bool = False) -> None:
        self.runs = 0
        self.flaky = flaky

    def run(self, events: Sequence[Event], **_: Any) -> tuple[Observation, Transcript]:
        self.runs += 1
        conn = ConnResult([Step(None, b"220 fake\r\n")])
        seen_rset = False
        for event in events:
            if event.dir != "c2s":
                continue
            if event.data.startswith(b"RSET"):
                seen_rset = True
            if event.data.startswith(b"RCPT"):
                ok = seen_rset and not (self.flaky and self.runs % 2 == 0)
                reply = b"250 ok\r\n" if ok else b"503 no\r\n"
            else:
                reply = b"250 ok\r\n"
            conn.steps.append(Step(event, reply, 0.001))
        return Observation([conn]), Transcript(list(events))

    def liveness(self) -> Liveness:
        return Liveness(True, b"220 fake\r\n")


def _candidate(events: list[Event]) -> Candidate:
    probe = Probe(
        "state", "t", "accepted", events, "title", "mail", "RCPT", "medium", "ref", "503",
        {"codes": [2, 3]},
    )  # fmt: skip
    return Candidate(probe, "accepted", {"codes": [2, 3]}, "250", Transcript(events))


EVENTS = [
    connect(),
    send(b"EHLO x\r\n", 1),
    send(b"MAIL FROM:<a@b>\r\n", 1),
    send(b"NOOP\r\n", 1),
    send(b"RSET\r\n", 1),
    send(b"NOOP\r\n", 1),
    send(b"RCPT TO:<c@d>\r\n", 1, trigger=True),
    send(b"QUIT\r\n", 1),
]


def test_confirm_needs_every_run_to_fire() -> None:
    runner = FakeRunner()
    judge = Judge(runner, wait=1.0, hang_bound=1.0)  # type: ignore[arg-type]
    confirmed, fired = judge.confirm(_candidate(EVENTS))
    assert confirmed and fired == CONFIRM_RUNS
    assert runner.runs == CONFIRM_RUNS - 1


def test_a_flaky_candidate_is_not_confirmed() -> None:
    runner = FakeRunner(flaky=True)
    judge = Judge(runner, wait=1.0, hang_bound=1.0)  # type: ignore[arg-type]
    confirmed, fired = judge.confirm(_candidate(EVENTS))
    assert not confirmed and 0 < fired < CONFIRM_RUNS


def test_minimise_keeps_only_what_the_verdict_needs() -> None:
    runner = FakeRunner()
    judge = Judge(runner, wait=1.0, hang_bound=1.0)  # type: ignore[arg-type]
    candidate = _candidate(EVENTS)
    judge.minimise(candidate, time.monotonic() + 30)
    kept = [e.data for e in candidate.probe.events if e.dir == "c2s"]
    # The NOOPs go; the commands that build the trigger's state stay (an "accepted"
    # verdict is about that state: without them a correct server could accept it too).
    assert kept == [b"EHLO x\r\n", b"MAIL FROM:<a@b>\r\n", b"RSET\r\n", b"RCPT TO:<c@d>\r\n"]
    assert candidate.probe.events[0] == connect()
    # the transcript kept is the one of the last run that still fired
    assert [e.data for e in candidate.transcript.events if e.dir == "c2s"] == kept


def test_minimise_is_bounded_in_runs() -> None:
    runner = FakeRunner()
    judge = Judge(runner, wait=1.0, hang_bound=1.0)  # type: ignore[arg-type]
    long = [connect(), *[send(b"NOOP\r\n", 1) for _ in range(40)], send(b"RSET\r\n", 1)]
    candidate = _candidate([*long, send(b"RCPT TO:<c@d>\r\n", 1, trigger=True)])
    judge.minimise(candidate, time.monotonic() + 30)
    assert runner.runs <= 8


def test_minimise_leaves_crashes_alone() -> None:
    runner = FakeRunner()
    judge = Judge(runner, wait=1.0, hang_bound=1.0)  # type: ignore[arg-type]
    candidate = _candidate(EVENTS)
    candidate.oracle = "crash"
    judge.minimise(candidate, time.monotonic() + 30)
    assert runner.runs == 0 and candidate.probe.events == EVENTS
