"""Writing a campaign to disk: one ``finding-N/`` per confirmed finding, and the report.

Layout under ``--out``::

    report.json          the whole campaign (profile, phases with time and connections,
                         findings, flaky candidates)
    state-graph.dot      the learned state graph (Graphviz)
    campaign.log         a readable summary (never ``.jsonl``: every ``.jsonl`` file
                         under the folder is read as a claimed finding)
    finding-N/transcript.jsonl   the minimised reproduction (FUZZ-TRANSCRIPT.md format)
    finding-N/summary.md         oracle, state, what the server did, what a correct
                                 server does, the RFC section or CVE class, severity

Stale ``finding-*`` folders of an earlier campaign in the same folder are removed first,
so the folder never claims a finding this campaign did not confirm.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

from .report import CampaignReport, Finding
from .transcript import Transcript

__all__ = ["finding_lines", "headline", "prepare_out", "summary_lines", "write_findings"]


def _summary_md(finding: Finding, report: CampaignReport) -> str:
    probe = finding.probe
    target = report.target.address
    lines = [
        f"# Finding {finding.number}: {probe.title}",
        "",
        f"- **Severity**: {probe.severity}",
        f"- **Oracle**: `{finding.candidate.oracle}`",
        f"- **State**: {probe.state} (last verb {probe.verb})",
        f"- **Probe**: `{probe.name}` ({probe.family})",
        f"- **Reference**: {probe.reference}",
        f"- **Confirmed**: {finding.confirmations} runs on fresh connections",
        "",
        "## What the server did",
        "",
        finding.candidate.verdict,
        "",
        "## What a correct server does",
        "",
        probe.correct,
        "",
        "## Reproduce",
        "",
        "```",
        f"smtpproto replay {Path('finding-' + str(finding.number)) / 'transcript.jsonl'} {target}",
        "```",
        "",
        "Exit status 0: the finding still reproduces; 1: it does not.",
    ]
    if finding.also:
        lines += ["", "## Same flaw, other probes", "", *[f"- `{name}`" for name in finding.also]]
    return "\n".join(lines) + "\n"


def headline(report: CampaignReport) -> str:
    """One line: target, seed, time, connections, why it stopped."""
    return (
        f"smtpproto fuzz {report.target.address}  seed {report.seed}  "
        f"{report.seconds:.1f} s  {report.target.connections} connections  ({report.stopped})"
    )


def finding_lines(report: CampaignReport) -> list[str]:
    """One line per finding, then one per flaky candidate (never reported as a file)."""
    lines = [] if report.findings else ["no findings"]
    for finding in report.findings:
        probe = finding.probe
        lines.append(
            f"finding-{finding.number}  [{probe.severity}] {finding.candidate.oracle}: "
            f"{probe.title}"
        )
    for flaky in report.flaky:
        lines.append(
            f"flaky (not reported): {flaky['probe']} {flaky['oracle']} "
            f"fired {flaky['fired']} time(s)"
        )
    return lines


def summary_lines(report: CampaignReport) -> list[str]:
    """A plain-text summary: headline, phases, findings, flaky candidates."""
    lines = [headline(report), "", "phase          seconds  connections  runs"]
    for phase in report.phases:
        lines.append(
            f"{phase.name:<14} {phase.seconds:7.1f}  {phase.connections:11d}  {phase.runs:4d}"
        )
    return [*lines, "", *finding_lines(report)]


def prepare_out(out: str | Path) -> Path:
    """Create the output folder (and its parents) before the campaign spends its budget;
    ``OSError`` when it cannot be a writable folder (a file is in the way, no right)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "the findings folder is not writable", str(folder))
    return folder


def write_findings(report: CampaignReport, out: str | Path) -> Path:
    """Write the campaign under ``out`` (created if needed); return the folder."""
    folder = prepare_out(out)
    for stale in folder.glob("finding-*"):
        if stale.is_dir():
            shutil.rmtree(stale)
    for finding in report.findings:
        where = folder / f"finding-{finding.number}"
        where.mkdir()
        transcript = Transcript(
            list(finding.candidate.transcript.events),
            finding.header(report.target, report.settings, report.seed),
        )
        transcript.dump(where / "transcript.jsonl")
        (where / "summary.md").write_text(_summary_md(finding, report), encoding="utf-8")
    (folder / "report.json").write_text(
        json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    (folder / "state-graph.dot").write_text(report.graph, encoding="utf-8")
    (folder / "campaign.log").write_text("\n".join(summary_lines(report)) + "\n", encoding="utf-8")
    return folder
