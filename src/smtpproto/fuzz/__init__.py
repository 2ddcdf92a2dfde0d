"""``smtpproto.fuzz``: a black-box, state-aware SMTP server fuzzer with semantic oracles.

Point it at a server you own; within minutes it returns a short list of confirmed,
minimised, replayable findings, and nothing on a correct server.

API (stable; engineer F2's strategies, state machine and pytest helper build on it)::

    from smtpproto.fuzz import run_campaign, replay, Transcript

    report = run_campaign("127.0.0.1", 2525, tls="starttls", budget=60, seed=1,
                          out="fuzz-out")          # -> CampaignReport
    for finding in report.findings:               # Finding: .number, .probe (.title,
        print(finding.probe.title)                #   .state, .verb, .severity, ...),
                                                  #   .candidate (.oracle, .verdict,
                                                  #   .transcript: Transcript)
    result = replay("fuzz-out/finding-1/transcript.jsonl", "127.0.0.1", 2525)
    result.reproduced                             # True / False / None (no oracle)

Modules, one job each:

- ``transcript``: the JSONL exchange format (FUZZ-TRANSCRIPT.md), read and written.
- ``runner``: acts a transcript against a live server (blocking sockets, bounded waits,
  STARTTLS / implicit TLS without verification) and records what happened.
- ``observation``: what a run saw, as plain values; ``oracles``: what a finding means.
- ``fingerprint``: the calibration phase (``Profile``); ``probes``: one deterministic
  dialogue per bug class; ``explore``: breadth-first state walk and mutation fuzzing.
- ``triage``: confirm on fresh connections, drop the flaky, minimise.
- ``campaign``: the phases within a budget; ``report``: its results as values;
  ``findings``: the output folder;
  ``replay``: ``smtpproto replay``.

Docs: docs/fuzzing.md. The CLI is ``smtpproto fuzz`` / ``smtpproto replay``
(``smtpproto.cli.fuzz``).
"""

from __future__ import annotations

from .campaign import ALL_FAMILIES, run_campaign
from .oracles import ORACLES, judge
from .replay import ReplayResult, replay
from .report import CampaignReport, Finding, Phase
from .transcript import Event, Transcript, TranscriptError

__all__ = [
    "ALL_FAMILIES",
    "ORACLES",
    "CampaignReport",
    "Event",
    "Finding",
    "Phase",
    "ReplayResult",
    "Transcript",
    "TranscriptError",
    "judge",
    "replay",
    "run_campaign",
]
