"""Triage: judge one run, confirm a candidate on fresh connections, minimise it.

A candidate becomes a finding only when its oracle fires again on ``CONFIRM_RUNS`` fresh
runs (a dead server cannot be re-run: there the confirmation is a second failed liveness
check a second later). A candidate that fires on some runs only is *flaky*: reported in
``report.json`` and the summary, never as a transcript. A hang is also checked against a
control: the same dialogue with ``NOOP`` in place of the trigger must be answered.

Minimisation is delta debugging on the actions (ddmin's one-at-a-time complement step:
drop one non-trigger write, keep the drop when the same oracle still fires), bounded in
runs; the probes are built small, so this mostly removes the trailing QUIT and the EHLO
a server does not need.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from .observation import Observation
from .oracles import crashed_conn, is_trigger, judge, trigger_position
from .probes import Probe
from .runner import Runner
from .transcript import Event, Transcript

__all__ = ["CONFIRM_RUNS", "Candidate", "Judge", "judge_run"]

#: Runs (the first included) that must all show the flaw.
CONFIRM_RUNS = 3
#: Most re-runs spent minimising one finding.
MAX_MINIMISE_RUNS = 8
#: Commands that change the SMTP state (RFC 5321 §3.3, §4.1.4; RFC 3207; RFC 4954).
_STATE_VERBS: tuple[bytes, ...] = (b"EHLO", b"HELO", b"LHLO", b"MAIL", b"RCPT", b"DATA")
_STATE_VERBS += (b"BDAT", b"RSET", b"STARTTLS", b"AUTH")


@dataclass
class Candidate:
    """An oracle that fired on one run of ``probe``."""

    probe: Probe
    oracle: str
    params: dict[str, Any]
    verdict: str
    transcript: Transcript
    needs_liveness: bool = False


def judge_run(
    probe: Probe, obs: Observation, runner: Runner, *, hang_bound: float
) -> tuple[str, dict[str, Any], str] | None:
    """The first oracle that fires on this run: the probe's own, then the generic ones
    (a dead server, a hang, a broken reply). Checks liveness only when a connection
    was dropped with replies due."""
    if crashed_conn(obs) is not None and obs.liveness is None:
        obs.liveness = runner.liveness()
    verdict = judge("crash", obs)
    if verdict:
        return "crash", {}, verdict
    if probe.oracle != "crash":
        verdict = judge(probe.oracle, obs, probe.params)
        if verdict:
            return probe.oracle, dict(probe.params), verdict
    if probe.generic:
        verdict = judge("invalid", obs)
        if verdict:
            return "invalid", {}, verdict
    if probe.hang:
        params = {"bound": hang_bound}
        verdict = judge("hang", obs, params)
        if verdict:
            return "hang", {"bound": min(hang_bound, 1.5)}, verdict
    return None


class Judge:
    """Confirms and minimises candidates with a runner; ``alive`` turns false once the
    server is dead (the campaign then stops)."""

    def __init__(self, runner: Runner, *, wait: float, hang_bound: float) -> None:
        self.runner = runner
        self.wait = wait
        self.hang_bound = hang_bound
        self.alive = True

    def _fires(self, events: list[Event], oracle: str, params: dict[str, Any]) -> Transcript | None:
        # A hang is re-checked with a three times longer wait: a tarpit answers by then.
        wait = max(3 * self.wait, 6.0) if oracle == "hang" else self.wait
        obs, transcript = self.runner.run(events, read_timeout=wait, bounded=False)
        if oracle == "crash":
            obs.liveness = self.runner.liveness()
        return transcript if judge(oracle, obs, params) else None

    def confirm(self, candidate: Candidate) -> tuple[bool, int]:
        """(confirmed, runs that fired out of the runs made)."""
        if candidate.oracle == "crash":
            time.sleep(1.0)
            if not self.runner.liveness().alive:
                self.alive = False
                return True, CONFIRM_RUNS
            again = self._fires(candidate.probe.events, "crash", candidate.params)
            if again is not None:
                self.alive = self.runner.liveness().alive
                return True, 2
            return False, 1
        fired = 1
        events = candidate.probe.events
        for _ in range(CONFIRM_RUNS - 1):
            transcript = self._fires(events, candidate.oracle, candidate.params)
            if transcript is not None:
                fired += 1
                candidate.transcript = transcript
        if fired < CONFIRM_RUNS:
            return False, fired
        if candidate.oracle == "hang" and not self._control_answers(events):
            return False, fired
        return True, fired

    def _control_answers(self, events: list[Event]) -> bool:
        """The same dialogue with NOOP instead of the trigger gets its reply in time."""
        control = [
            replace(e, data=b"NOOP\r\n", expect=1, extra={"trigger": True}) if is_trigger(e) else e
            for e in events
        ]
        obs, _ = self.runner.run(control, read_timeout=self.wait, bounded=False)
        for conn in obs.conns:
            position = trigger_position(conn)
            if position is not None:
                step = conn.steps[position]
                return bool(step.received) and not step.timed_out
        return False

    def minimise(self, candidate: Candidate, deadline: float) -> None:
        """Drop writes that the verdict does not need (in place), within ``deadline``."""
        if candidate.oracle in ("crash", "hang", "slow"):
            return
        events = list(candidate.probe.events)
        # An "accepted" verdict means "accepted in this state": the commands before the
        # trigger that build the state stay, or the transcript could shrink to a trigger
        # any correct server accepts too (a lone MAIL instead of a nested one).
        trigger = next((i for i, e in enumerate(events) if is_trigger(e)), len(events))
        runs = 0
        index = len(events) - 1
        while index >= 0 and runs < MAX_MINIMISE_RUNS and time.monotonic() < deadline:
            event = events[index]
            builds_state = (
                candidate.oracle == "accepted"
                and index < trigger
                and event.data.upper().startswith(_STATE_VERBS)
            )
            droppable = index > 0 and not builds_state
            if event.dir == "c2s" and not is_trigger(event) and droppable:
                trial = events[:index] + events[index + 1 :]
                runs += 1
                transcript = self._fires(trial, candidate.oracle, candidate.params)
                if transcript is not None:
                    events = trial
                    candidate.transcript = transcript
            index -= 1
        candidate.probe = replace(candidate.probe, events=events)
