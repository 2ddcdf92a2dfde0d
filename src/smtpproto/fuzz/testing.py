"""A pytest helper for server authors: fuzz your server and fail the test on a finding.

::

    from smtpproto.fuzz.testing import check_server

    def test_my_server_survives_the_fuzzer(my_server):
        check_server(my_server.host, my_server.port, budget=20, tls="none")

``check_server`` runs ``run_campaign`` (every phase, or the ``probes`` families) for at
most ``budget`` seconds. With no finding it returns the ``CampaignReport``; with findings
it fails the test (``pytest.fail``; a plain ``AssertionError`` when pytest is not
installed) with, per finding, its title, oracle verdict, the rule it breaks and the
minimised transcript in the ``FUZZ-TRANSCRIPT.md`` format, ready for
``smtpproto replay FILE HOST:PORT`` once saved to a ``.jsonl`` file.
"""

from __future__ import annotations

from typing import Any

from .campaign import run_campaign
from .report import CampaignReport, Finding

__all__ = ["check_server", "describe_findings"]


def _describe(finding: Finding, report: CampaignReport) -> str:
    probe = finding.probe
    transcript = finding.candidate.transcript
    transcript.header = finding.header(report.target, report.settings, report.seed)
    return (
        f"finding {finding.number}: {probe.title} [{probe.severity}]\n"
        f"  oracle {finding.candidate.oracle}: {finding.candidate.verdict}\n"
        f"  state {probe.state}, verb {probe.verb}; reference: {probe.reference}\n"
        f"  transcript (save as finding-{finding.number}.jsonl, then "
        f"`smtpproto replay finding-{finding.number}.jsonl HOST:PORT`):\n"
        f"{transcript.dumps()}"
    )


def describe_findings(report: CampaignReport) -> str:
    """The failure message of ``check_server``: every finding with its transcript."""
    head = (
        f"smtpproto fuzz: {len(report.findings)} finding(s) on "
        f"{report.target.address} (seed {report.seed}, "
        f"{report.seconds:.1f} s)\n"
    )
    return head + "\n".join(_describe(finding, report) for finding in report.findings)


def check_server(
    host: str,
    port: int,
    *,
    budget: float = 30.0,
    tls: str = "starttls",
    seed: int = 0,
    **options: Any,
) -> CampaignReport:
    """Fuzz ``host``:``port`` for at most ``budget`` seconds; fail the test on a finding.

    ``options`` go to ``run_campaign`` (``auth``, ``probes``, ``mail_from``,
    ``rcpt_to``, ``rate``, ``out``, ...). Returns the report when nothing was found.
    """
    report = run_campaign(host, port, tls=tls, budget=budget, seed=seed, **options)
    if report.findings:
        message = describe_findings(report)
        try:
            import pytest
        except ImportError:
            raise AssertionError(message) from None
        pytest.fail(message, pytrace=False)
    return report
