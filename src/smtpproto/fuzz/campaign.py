"""The campaign: fingerprint, probes, exploration, generative fuzzing, triage, report.

``run_campaign`` runs the phases in order within one time budget, counts the time and
the connections each phase costs, and returns a ``CampaignReport``; with ``out`` it
writes the findings (``findings.write_findings``). Each candidate goes through
``triage.Judge``: confirmed on fresh connections, minimised, de-duplicated by
(oracle, state, verb). When the server dies the campaign stops: nothing more can be
learned from a dead target, and the crash is the finding.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

from ..wire.fields import check_seconds
from .explore import explore, generate
from .findings import prepare_out, write_findings
from .fingerprint import Settings, fingerprint
from .observation import Observation
from .oracles import judge, trigger_position
from .probes import FAMILIES, RCPT_SERIES, Probe, build_probes
from .report import CampaignReport, Finding, Phase
from .runner import Runner, Target
from .triage import Candidate, Judge, judge_run

__all__ = ["ALL_FAMILIES", "run_campaign"]

#: Every family name ``--probes`` accepts: the probe families and the two open phases.
ALL_FAMILIES = (*FAMILIES, "explore", "generative")

Progress = Callable[[str, float], None]

#: Seconds past the budget still spent confirming candidates found before it ran out.
CONFIRM_GRACE = 30.0


class _Campaign:
    def __init__(
        self,
        report: CampaignReport,
        families: tuple[str, ...],
        progress: Progress | None,
    ) -> None:
        self.report = report
        self.families = families
        self.progress = progress
        self.runner = Runner(report.target)
        self.started = time.monotonic()
        self.deadline = self.started + report.budget
        self.runner.deadline = self.deadline  # every run but a confirmation stops there
        self.judge: Judge | None = None

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, text: str) -> None:
        if self.progress is not None:
            done = min(1.0, (time.monotonic() - self.started) / max(self.report.budget, 1e-9))
            self.progress(text, done)

    def phase(self, name: str) -> Phase:
        phase = Phase(name)
        phase.connections = -self.report.target.connections
        phase.seconds = -time.monotonic()
        self.report.phases.append(phase)
        self.say(name)
        return phase

    def end(self, phase: Phase) -> None:
        phase.connections += self.report.target.connections
        phase.seconds += time.monotonic()

    # -- candidates ------------------------------------------------------------------

    def consider(self, candidate: Candidate) -> None:
        """Confirm, minimise and record a candidate (or file it as flaky)."""
        assert self.judge is not None
        key = (candidate.oracle, candidate.probe.state, candidate.probe.verb)
        for finding in self.report.findings:
            if finding.key == key:
                finding.also.append(candidate.probe.name)
                return
        if self.left() < -CONFIRM_GRACE:  # a batch of candidates found at the deadline
            self.report.flaky.append(
                {
                    "probe": candidate.probe.name,
                    "oracle": candidate.oracle,
                    "verdict": candidate.verdict,
                    "fired": 1,
                    "note": "not confirmed: the budget was spent",
                }
            )
            return
        confirmed, fired = self.judge.confirm(candidate)
        if not confirmed:
            self.report.flaky.append(
                {
                    "probe": candidate.probe.name,
                    "oracle": candidate.oracle,
                    "verdict": candidate.verdict,
                    "fired": fired,
                }
            )
            return
        if self.judge.alive:
            self.judge.minimise(candidate, self.deadline)
        number = len(self.report.findings) + 1
        self.report.findings.append(Finding(number, candidate, fired))
        self.say(f"finding {number}: {candidate.probe.title}")
        if not self.judge.alive:
            self.report.stopped = f"the server died ({candidate.probe.name})"

    def try_probe(self, probe: Probe, phase: Phase) -> None:
        assert self.judge is not None
        obs, transcript = self.runner.run(probe.events, read_timeout=self.judge.wait)
        phase.runs += 1
        found = judge_run(probe, obs, self.runner, hang_bound=self.judge.hang_bound)
        if found is None:
            return
        oracle, params, verdict = found
        if oracle != probe.oracle:
            severity = "high" if oracle == "crash" else "medium"
            title = _generic_title(oracle, probe)
            probe = replace(probe, oracle=oracle, title=title, severity=severity, params=params)
        self.consider(Candidate(probe, oracle, params, verdict, transcript))

    # -- phases ----------------------------------------------------------------------

    def run(self) -> CampaignReport:
        report = self.report
        phase = self.phase("fingerprint")
        try:
            profile = fingerprint(self.runner, report.settings)
        finally:
            self.end(phase)
        report.profile = profile
        if self.left() <= 0:
            report.stopped = "budget spent in the calibration (a slow server): nothing probed"
        self.judge = Judge(self.runner, wait=profile.wait, hang_bound=max(2.0, profile.wait * 0.9))
        probe_families = tuple(f for f in FAMILIES if f in self.families)
        for family in probe_families:
            if not self.judge.alive or self.left() <= 0:
                break
            phase = self.phase(family)
            probes = build_probes(profile, (family,))
            if family == "resource":
                self.resource(probes, phase)
            else:
                for probe in probes:
                    if not self.judge.alive or self.left() <= 0:
                        break
                    self.try_probe(probe, phase)
            self.end(phase)
        if self.judge.alive and "explore" in self.families and self.left() > 0:
            phase = self.phase("explore")
            report.graph, candidates = explore(self.runner, profile, self.deadline, phase)
            for candidate in candidates:
                if self.judge.alive:
                    self.consider(candidate)
            self.end(phase)
        if self.judge.alive and "generative" in self.families and self.left() > 0:
            phase = self.phase("generative")
            for candidate in generate(
                self.runner, profile, report.seed, self.deadline, phase, self.judge.hang_bound
            ):
                self.consider(candidate)
                if not self.judge.alive:
                    break
            self.end(phase)
        if not report.stopped:
            report.stopped = "budget spent" if self.left() <= 0 else "all phases done"
        report.seconds = time.monotonic() - self.started
        return report

    def resource(self, probes: list[Probe], phase: Phase) -> None:
        """Time replies at growing input sizes: super-linear growth is the finding."""
        assert self.judge is not None and self.report.profile is not None
        base = max(self.report.profile.latency, self.report.profile.error_latency)
        timings: list[tuple[Probe, float]] = []
        for probe in probes:
            if self.left() <= 0 or not self.judge.alive:
                return
            obs, transcript = self.runner.run(probe.events, read_timeout=self.judge.wait * 3)
            phase.runs += 1
            found = judge_run(probe, obs, self.runner, hang_bound=self.judge.hang_bound * 3)
            if found is not None and found[0] in ("crash", "invalid"):
                self.consider(Candidate(probe, found[0], found[1], found[2], transcript))
                continue
            if probe.name == "rcpt-cost":
                self.rcpt_cost(probe, obs, base)
                continue
            elapsed = _trigger_elapsed(obs)
            if elapsed is None:
                continue
            timings.append((probe, elapsed))
        grown = _superlinear(timings, base)
        if grown is not None:
            self.slow(grown[0], grown[1])

    def rcpt_cost(self, probe: Probe, obs: Observation, base: float) -> None:
        """Per-RCPT times of one long series: growing with the count is quadratic cost."""
        conn = obs.conns[0] if obs.conns else None
        if conn is None or conn.peer_closed:
            return
        times = [
            s.elapsed
            for s in conn.steps
            if s.event is not None and s.event.data.startswith(b"RCPT")
        ]
        if len(times) < RCPT_SERIES:
            return
        first = statistics.median(times[:5])
        middle = statistics.median(times[len(times) // 2 - 2 : len(times) // 2 + 3])
        last = statistics.median(times[-5:])
        floor = max(0.05, 10 * base)
        if last >= floor and middle > 3 * max(first, base / 2) and last > 1.5 * middle:
            events = list(probe.events)
            events[-1] = replace(events[-1], extra={"trigger": True})
            self.slow(replace(probe, events=events), last)

    def slow(self, probe: Probe, elapsed: float) -> None:
        """Re-run the slow input once with the ``slow`` oracle and consider it."""
        assert self.judge is not None
        params = {"seconds": round(max(0.05, elapsed / 2), 3)}
        probe = replace(probe, oracle="slow", params=params)
        obs, transcript = self.runner.run(probe.events, read_timeout=self.judge.wait * 3)
        verdict = judge("slow", obs, params)
        if verdict:
            self.consider(Candidate(probe, "slow", params, verdict, transcript))


def _trigger_elapsed(obs: Observation) -> float | None:
    for conn in obs.conns:
        position = trigger_position(conn)
        if position is not None:
            step = conn.steps[position]
            return float(step.elapsed) if step.received else None
    return None


def _superlinear(timings: list[tuple[Probe, float]], base: float) -> tuple[Probe, float] | None:
    """The first input whose time grew 2.5 times faster than its size (a quadratic cost
    grows 16-fold for a four-fold input, a linear one four-fold)."""
    for (small, t_small), (large, t_large) in itertools.pairwise(timings):
        ratio = int(large.params.get("size", 2)) / max(int(small.params.get("size", 1)), 1)
        floor = max(0.3, 20 * base)
        if t_large >= floor and t_large > 2.5 * ratio * max(t_small, base):
            return large, t_large
    return None


def _generic_title(oracle: str, probe: Probe) -> str:
    if oracle == "crash":
        return f"the server dies on {probe.name}"
    if oracle == "hang":
        return f"the server never answers {probe.verb} ({probe.name})"
    return f"the server's reply to {probe.verb} breaks the reply grammar ({probe.name})"


def run_campaign(
    host: str,
    port: int,
    *,
    tls: str = "starttls",
    budget: float = 300.0,
    rate: float = 20.0,
    seed: int = 0,
    probes: tuple[str, ...] | None = None,
    out: str | None = None,
    mail_from: str = "fuzz@example.com",
    rcpt_to: str | None = None,
    auth: tuple[str, str] | None = None,
    ehlo: str = "fuzz.smtpproto.test",
    progress: Progress | None = None,
) -> CampaignReport:
    """Fuzz the SMTP server at ``host``:``port`` for at most ``budget`` seconds.

    ``tls``: ``starttls`` (use STARTTLS when offered, the default), ``implicit``
    (RFC 8314) or ``none``. ``probes``: the families to run (default all of
    ``ALL_FAMILIES``). ``rate``: new connections per second. ``out``: a folder for
    ``finding-N/``, ``report.json``, ``state-graph.dot`` and ``campaign.log``.
    Raises ``ConnectionError`` when the server gives no banner at all (its subclass
    ``fingerprint.AuthenticationFailed`` when ``auth`` is refused), and ``OSError``
    before fuzzing when ``out`` cannot be a writable folder.
    """
    if tls not in ("none", "starttls", "implicit"):
        raise ValueError(f"tls must be none, starttls or implicit, not {tls!r}")
    check_seconds("budget", budget)
    if type(seed) is not int:
        raise ValueError(f"seed must be an int, got {seed!r}")
    families = tuple(probes) if probes else ALL_FAMILIES
    unknown = [f for f in families if f not in ALL_FAMILIES]
    if unknown:
        raise ValueError(f"unknown probe families: {', '.join(unknown)}")
    target = Target(host, port, implicit_tls=tls == "implicit", rate=rate)
    settings = Settings(tls=tls, ehlo=ehlo, mail_from=mail_from, rcpt_to=rcpt_to, auth=auth)
    report = CampaignReport(target, settings, seed, budget)
    if out is not None:
        prepare_out(out)  # fail now, not after the budget is spent
    _Campaign(report, families, progress).run()
    if out is not None:
        write_findings(report, out)
    return report
