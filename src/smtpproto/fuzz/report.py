"""The campaign's results as values: phases, findings, the report (and their JSON).

``Finding.header`` is the transcript header ``smtpproto replay`` reads: the oracle and
its parameters, plus what a reader needs (title, state, verb, severity, reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._version import __version__

if TYPE_CHECKING:
    from .fingerprint import Profile, Settings
    from .probes import Probe
    from .runner import Target
    from .triage import Candidate


__all__ = ["TOOL", "CampaignReport", "Finding", "Phase"]

#: The ``tool`` of every header and report ``smtpproto fuzz`` writes.
TOOL = "smtpproto fuzz"


@dataclass
class Phase:
    """How long a phase took and how many connections it opened."""

    name: str
    seconds: float = 0.0
    connections: int = 0
    runs: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": round(self.seconds, 3),
            "connections": self.connections,
            "runs": self.runs,
        }


@dataclass
class Finding:
    """A confirmed, minimised finding."""

    number: int
    candidate: Candidate
    confirmations: int
    also: list[str] = field(default_factory=list)

    @property
    def probe(self) -> Probe:
        return self.candidate.probe

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.candidate.oracle, self.probe.state, self.probe.verb)

    def header(self, target: Target, settings: Settings, seed: int) -> dict[str, Any]:
        """The transcript header: enough for ``smtpproto replay`` to re-apply the oracle."""
        probe = self.probe
        return {
            "tool": TOOL,
            "version": __version__,
            "oracle": self.candidate.oracle,
            "params": self.candidate.params,
            "verdict": self.candidate.verdict,
            "probe": probe.name,
            "family": probe.family,
            "title": probe.title,
            "state": probe.state,
            "verb": probe.verb,
            "severity": probe.severity,
            "reference": probe.reference,
            "target": target.address,
            "tls": settings.tls,
            "implicit_tls": target.implicit_tls,
            "seed": seed,
        }

    def to_json(self) -> dict[str, Any]:
        probe = self.probe
        return {
            "id": self.number,
            "dir": f"finding-{self.number}",
            "oracle": self.candidate.oracle,
            "verdict": self.candidate.verdict,
            "probe": probe.name,
            "family": probe.family,
            "title": probe.title,
            "state": probe.state,
            "verb": probe.verb,
            "severity": probe.severity,
            "reference": probe.reference,
            "correct": probe.correct,
            "confirmations": self.confirmations,
            "also": self.also,
        }


@dataclass
class CampaignReport:
    """Everything a campaign learned."""

    target: Target
    settings: Settings
    seed: int
    budget: float
    profile: Profile | None = None
    phases: list[Phase] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    flaky: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = ""
    graph: str = "digraph smtp {}\n"
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": TOOL,
            "version": __version__,
            "target": self.target.address,
            "tls": self.settings.tls,
            "seed": self.seed,
            "budget_s": self.budget,
            "seconds": round(self.seconds, 3),
            "connections": self.target.connections,
            "stopped": self.stopped,
            "profile": self.profile.to_json() if self.profile else None,
            "phases": [phase.to_json() for phase in self.phases],
            "findings": [finding.to_json() for finding in self.findings],
            "flaky": self.flaky,
        }
