"""Replaying a finding transcript and re-applying its oracle (``smtpproto replay``).

The walk follows FUZZ-TRANSCRIPT.md: connect, send each ``c2s`` payload with one write,
read after it until at least as many bytes as the recorded ``s2c`` events hold (or the
connection ends, or 2 s pass), TLS handshakes without verification at ``starttls``,
cleartext after ``close_notify``, a wait of up to 1 s before each close, and the
remaining events of a failed connection skipped. When a ``c2s`` event carries the
fuzzer's ``expect`` key, the read also waits for that many replies (within the same
2 s), so a reply that is shorter this time is still seen whole.

The header written by ``smtpproto fuzz`` names the oracle and its parameters; the same
oracle is applied to what the replay observed (for a crash, after a liveness check on a
fresh connection). A transcript without an oracle is replayed and judged by nothing:
``reproduced`` is then ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .observation import Observation
from .oracles import ORACLES, judge
from .runner import REPLAY_READ_TIMEOUT, Runner, Target
from .transcript import Transcript

__all__ = ["ReplayResult", "replay"]


@dataclass
class ReplayResult:
    """What a replay saw; ``reproduced`` is ``None`` when the header names no oracle."""

    transcript: Transcript
    observation: Observation
    recorded: Transcript
    oracle: str | None
    verdict: str | None

    @property
    def unreachable(self) -> bool:
        """True when the first connection could not be opened: nothing was replayed, so
        a ``reproduced`` of ``False`` says nothing about the server."""
        return bool(self.observation.conns) and self.observation.conns[0].end == "refused"

    @property
    def reproduced(self) -> bool | None:
        if self.oracle is None:
            return None
        return self.verdict is not None


def replay(
    source: str | Path | Transcript,
    host: str,
    port: int,
    *,
    timeout: float = REPLAY_READ_TIMEOUT,
    implicit_tls: bool | None = None,
) -> ReplayResult:
    """Replay ``source`` (a path or a ``Transcript``) against ``host``:``port``.

    ``implicit_tls`` defaults to the header's ``implicit_tls`` (the format has no event
    for a connection that starts with TLS).
    """
    transcript = source if isinstance(source, Transcript) else Transcript.load(source)
    header = transcript.header
    oracle = header.get("oracle")
    if oracle is not None and (not isinstance(oracle, str) or oracle not in ORACLES):
        raise ValueError(f"the transcript names an unknown oracle: {oracle!r}")
    params = header.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("the transcript header's params must be an object")
    if implicit_tls is None:
        implicit_tls = bool(header.get("implicit_tls", False))
    target = Target(host, port, implicit_tls=implicit_tls, reply_timeout=timeout, rate=0.0)
    runner = Runner(target, replay=True)
    obs, recorded = runner.run(
        transcript.events, check_liveness=oracle == "crash", read_timeout=timeout
    )
    verdict = judge(oracle, obs, params) if oracle is not None else None
    return ReplayResult(transcript, obs, recorded, oracle, verdict)
