"""The Python tools for server authors against live planted servers: ``check_server``
(pytest helper) and the ``RuleBasedStateMachine`` of ``smtpproto.fuzz.statemachine``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from smtpproto.cli.main import main
from smtpproto.fuzz import Transcript, replay, run_campaign
from smtpproto.fuzz.fingerprint import AuthenticationFailed
from smtpproto.fuzz.statemachine import server_state_machine
from smtpproto.fuzz.testing import check_server

from .flawed_server import AUTH_PASSWORD, AUTH_USER
from .servers import Target, start_flawed

CREDENTIALS = (AUTH_USER, AUTH_PASSWORD)
QUICK = settings(
    max_examples=8,
    stateful_step_count=15,
    deadline=None,
    derandomize=True,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def clean(tmp_path: Path) -> Iterator[Target]:
    with start_flawed(tmp_path) as target:
        yield target


@pytest.fixture
def rcpt_before_mail(tmp_path: Path) -> Iterator[Target]:
    with start_flawed(tmp_path, ["rcpt-before-mail"]) as target:
        yield target


def test_check_server_returns_the_report_on_a_correct_server(clean: Target) -> None:
    families = ("starttls", "state", "syntax", "reply", "crash")
    report = check_server(clean.host, clean.port, budget=30, auth=CREDENTIALS, probes=families)
    assert report.findings == []
    assert clean.triggered() == []
    # A report shown by pytest (its repr), logged or saved never holds the password.
    for text in (repr(report), str(report), json.dumps(report.to_json())):
        assert AUTH_PASSWORD not in text


def test_check_server_fails_with_a_replayable_transcript(rcpt_before_mail: Target) -> None:
    target = rcpt_before_mail
    with pytest.raises(pytest.fail.Exception) as failure:
        check_server(target.host, target.port, budget=20, auth=CREDENTIALS, probes=("state",))
    message = str(failure.value)
    assert "finding 1:" in message
    assert "rcpt-before-mail" in target.triggered()
    lines = [line for line in message.splitlines() if line.startswith("{")]
    first = [i for i, line in enumerate(lines) if line.startswith('{"header"')]
    transcript = Transcript.from_lines(lines[first[0] : first[1] if len(first) > 1 else None])
    assert json.dumps(transcript.header)
    assert replay(transcript, target.host, target.port).reproduced is True


def test_state_machine_passes_on_a_correct_server(clean: Target) -> None:
    machine = server_state_machine(
        clean.host, clean.port, tls=True, auth=CREDENTIALS, reply_timeout=5.0
    )
    run_state_machine_as_test(machine, settings=QUICK)
    assert clean.triggered() == []


def test_state_machine_without_tls_passes_on_a_correct_server(clean: Target) -> None:
    machine = server_state_machine(clean.host, clean.port, reply_timeout=5.0)
    run_state_machine_as_test(machine, settings=QUICK)


def test_state_machine_finds_a_state_violation(rcpt_before_mail: Target) -> None:
    target = rcpt_before_mail
    machine = server_state_machine(target.host, target.port, reply_timeout=5.0)
    many = settings(QUICK, max_examples=40)
    with pytest.raises(AssertionError, match="RCPT was accepted outside") as failure:
        run_state_machine_as_test(machine, settings=many)
    assert '"dir": "tcp", "note": "connect"' in str(failure.value)


@pytest.mark.parametrize("require_auth", [True, False])
def test_refused_credentials_stop_the_campaign_instead_of_a_clean_bill(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    require_auth: bool,
) -> None:
    """With a wrong password every probe started from a failed AUTH: a server requiring
    AUTH, with two planted flaws, got "no findings" (exit 0), and without the requirement
    the state flaw was missed. The calibration now stops: exit 5, the password unsaid."""
    wrong = "wrong-password-7731"
    flaws = ["smuggle-lf", "rset-keeps-envelope"]
    with start_flawed(tmp_path, flaws, require_auth=require_auth) as target:
        with pytest.raises(AuthenticationFailed, match="535"):
            run_campaign(target.host, target.port, budget=20, auth=(AUTH_USER, wrong))
        monkeypatch.setenv("FUZZ_PW", wrong)
        argv = ["fuzz", f"{target.host}:{target.port}", "--budget", "20", "--user", AUTH_USER]
        assert main([*argv, "--password-env", "FUZZ_PW", "--out", str(tmp_path / "out")]) == 5
    out, err = capsys.readouterr()
    assert "AUTH PLAIN with the given credentials failed: 535" in err
    assert wrong not in out + err
    assert list((tmp_path / "out").rglob("*.jsonl")) == []
