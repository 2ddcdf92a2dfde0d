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

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .observation import Observation
from .oracles import ORACLES, judge
from .report import TOOL
from .runner import REPLAY_READ_TIMEOUT, Runner, Target
from .transcript import Transcript

__all__ = ["MAX_REPLAY_SECONDS", "ReplayResult", "replay"]

#: The longest a replay walks by default: twice the 60 s FUZZ-TRANSCRIPT.md asks for.
MAX_REPLAY_SECONDS = 120.0


@dataclass
class ReplayResult:
    """What a replay saw; ``reproduced`` is ``None`` when the header names no oracle."""

    transcript: Transcript
    observation: Observation
    recorded: Transcript
    oracle: str | None
    verdict: str | None

    @property
    def stopped(self) -> str:
        """Why the replay stopped before the last event (``max_seconds``), else ``""``."""
        return self.observation.stopped

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


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: The oracles' parameters (``oracles``) and the values each accepts.
_PARAMS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "codes": (
        "a list of reply codes or classes",
        lambda v: isinstance(v, list) and all(_is_number(c) for c in v),
    ),
    "bound": ("a number of seconds", _is_number),
    "seconds": ("a number of seconds", _is_number),
    "keyword": ("an EHLO keyword", lambda v: isinstance(v, str)),
}


def _check_params(params: dict[str, object]) -> None:
    """``ValueError`` for a parameter an oracle reads that has the wrong type, before
    anything is sent (a hand-edited header must not end the replay half-way)."""
    for name, (what, fits) in _PARAMS.items():
        if name in params and not fits(params[name]):
            raise ValueError(f"the header's params.{name} must be {what}: {params[name]!r}")


def replay(
    source: str | Path | Transcript,
    host: str,
    port: int,
    *,
    timeout: float = REPLAY_READ_TIMEOUT,
    implicit_tls: bool | None = None,
    max_seconds: float | None = MAX_REPLAY_SECONDS,
) -> ReplayResult:
    """Replay ``source`` (a path or a ``Transcript``) against ``host``:``port``.

    ``max_seconds`` bounds the walk (FUZZ-TRANSCRIPT.md asks writers for a replay within
    60 s; a file that sleeps or waits longer is cut, ``ReplayResult.stopped`` says so).

    ``implicit_tls`` defaults to the header's ``implicit_tls`` (the format has no event
    for a connection that starts with TLS). A header whose ``tool`` is another tool's is
    ignored, as the format says: such a file is replayed and not judged.
    """
    transcript = source if isinstance(source, Transcript) else Transcript.load(source)
    header = transcript.header
    if "tool" in header and header["tool"] != TOOL:
        # Another tool's free-form header (FUZZ-TRANSCRIPT.md: the replayer ignores it):
        # its "oracle" or "params" are not ours to apply. Replayed, not judged.
        header = {}
    oracle = header.get("oracle")
    if oracle is not None and (not isinstance(oracle, str) or oracle not in ORACLES):
        raise ValueError(f"the transcript names an unknown oracle: {oracle!r}")
    params = header.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("the transcript header's params must be an object")
    _check_params(params)
    if implicit_tls is None:
        implicit_tls = header.get("implicit_tls", False)
        if not isinstance(implicit_tls, bool):
            raise ValueError(f"the header's implicit_tls must be true or false: {implicit_tls!r}")
    target = Target(host, port, implicit_tls=implicit_tls, reply_timeout=timeout, rate=0.0)
    runner = Runner(target, replay=True)
    obs, recorded = runner.run(
        transcript.events,
        check_liveness=oracle == "crash",
        read_timeout=timeout,
        max_seconds=max_seconds,
    )
    verdict = judge(oracle, obs, params) if oracle is not None else None
    return ReplayResult(transcript, obs, recorded, oracle, verdict)
