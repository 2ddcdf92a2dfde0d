"""End to end: the real fuzzer finds planted flaws, and each finding replays.

For a flaw: a fresh flawed server (random thresholds), one campaign with a bounded
budget, then ``smtpproto replay`` of the claimed transcripts against a fresh flawed
instance (must reproduce, and the server must log the flaw) and against the clean server
(must not reproduce). The default run covers one flaw per required class with only the
probe family that targets it and a short budget; ``-m long`` runs every planted flaw with
every phase at the 60-second budget of the issue's target (docs/fuzzing.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .flaws import FLAWS
from .harness import find

#: One flaw per class the issue names, with the probe family that targets it.
REPRESENTATIVE = [
    ("smuggle-lf", "smuggling"),
    ("starttls-injection", "starttls"),
    ("crash-long-line", "crash"),
    ("crash-many-rcpt", "resource"),
    ("shell-local-part", "syntax"),
    ("data-without-rcpt", "state"),
    ("rcpt-before-mail", "state"),
]


def _check(flaw: str, folder: Path, budget: float, **options: Any) -> None:
    campaign, verdict = find(flaw, folder, budget=budget, **options)
    titles = [finding.probe.title for finding in campaign.report.findings]
    assert verdict is not None, f"{flaw} not found (or no transcript replays it): {titles}"
    assert verdict.ok


@pytest.mark.parametrize(("flaw", "family"), REPRESENTATIVE)
def test_planted_flaw_is_found_and_replays(tmp_path: Path, flaw: str, family: str) -> None:
    _check(flaw, tmp_path, 30.0, probes=(family,))


@pytest.mark.long
@pytest.mark.parametrize("flaw", sorted(FLAWS))
def test_every_planted_flaw_within_60_seconds(tmp_path: Path, flaw: str) -> None:
    _check(flaw, tmp_path, 60.0)
