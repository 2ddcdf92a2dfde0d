"""End to end: the real fuzzer finds planted flaws, and each finding replays.

A campaign runs against a flawed server whose thresholds come from a fresh random seed;
then every claimed transcript is replayed with the ``smtpproto replay`` command line
against a fresh instance with the same seed (it must reproduce and the server must log
``FLAW-TRIGGERED``) and against the clean server (it must not reproduce).

The default run keeps to about a minute: one campaign against a server carrying one flaw
of each required non-crash class at once (with the probe families that target them),
and one per crash class. ``-m long`` runs every planted flaw alone with every phase at
the issue's 60-second budget (docs/fuzzing.md, "Testing the fuzzer").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .flaws import FLAWS
from .harness import find, fuzz, random_seed, start, transcripts, verify

#: Required classes of the issue that do not end the server, all in one server. (Not
#: ``rcpt-before-mail``: its finding has the same deduplication key as ``shell-local-part``'s
#: on a server that has both; ``test_python_api`` finds it alone.)
TOGETHER = ("smuggle-lf", "starttls-injection", "shell-local-part", "data-without-rcpt")


def test_planted_flaws_in_one_server_are_each_found_and_replay(tmp_path: Path) -> None:
    seed = random_seed()
    name = "flaw:" + ",".join(TOGETHER)
    with start(name, tmp_path / "target", seed=seed) as running:
        families = ("smuggling", "starttls", "state", "syntax")
        campaign = fuzz(running, tmp_path / "out", budget=45, probes=families)
    titles = [finding.probe.title for finding in campaign.report.findings]
    missing = set(TOGETHER)
    for path in transcripts(campaign.out):  # until every flaw is shown: replays are slow
        verdict = verify(path, TOGETHER, tmp_path / "verify", seed=seed)
        # A claimed finding reproduces on a fresh instance, and never on the clean server.
        assert verdict.reproduces and not verdict.clean_reproduces, verdict
        missing -= {flaw for flaw in TOGETHER if verdict.shows(flaw)}
        if not missing:
            break
    assert not missing, f"seed {seed}: not found or not replayable: {sorted(missing)}; {titles}"


@pytest.mark.parametrize(("flaw", "family"), [("crash-long-line", "crash"),
                                              ("crash-many-rcpt", "resource")])  # fmt: skip
def test_crash_flaw_is_found_and_replays(tmp_path: Path, flaw: str, family: str) -> None:
    campaign, verdict = find(flaw, tmp_path, budget=30, probes=(family,))
    titles = [finding.probe.title for finding in campaign.report.findings]
    assert verdict is not None, f"{flaw} not found (or no transcript replays it): {titles}"


@pytest.mark.long
@pytest.mark.parametrize("flaw", sorted(FLAWS))
def test_every_planted_flaw_within_60_seconds(tmp_path: Path, flaw: str) -> None:
    campaign, verdict = find(flaw, tmp_path, budget=60)
    titles = [finding.probe.title for finding in campaign.report.findings]
    assert verdict is not None, f"{flaw} not found (or no transcript replays it): {titles}"
