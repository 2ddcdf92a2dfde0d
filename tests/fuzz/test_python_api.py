"""The Python tools for server authors against live planted servers: ``check_server``
(pytest helper) and the ``RuleBasedStateMachine`` of ``smtpproto.fuzz.statemachine``."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import socket
import threading
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


@contextlib.contextmanager
def _echoing_server() -> Iterator[tuple[str, int]]:
    """A loopback server that answers AUTH with a 535 echoing the password and the
    PLAIN response (a debug build, a proxy quoting the line); 250 to anything else."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 echo ESMTP\r\n")
            for line in itertools.islice(lines, 50):  # bounded: a few commands per probe
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-echo\r\n250 AUTH PLAIN\r\n")
                elif verb == b"AUTH":
                    response = line.split()[-1]
                    password = base64.b64decode(response).split(b"\0")[-1]
                    conn.sendall(b"535 5.7.8 bad: " + password + b" in " + response + b"\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 ok\r\n")

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_535_echoing_the_password_is_redacted_in_the_refusal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal quoted the server's reply as sent: its 535 'bad: <password> in
    <base64 PLAIN response>' printed both on the command line's error line."""
    password = "FuzzEchoedS3cret"
    plain = base64.b64encode(b"\0alice\0" + password.encode()).decode()
    with _echoing_server() as (host, port):
        with pytest.raises(AuthenticationFailed, match="535") as info:
            run_campaign(host, port, tls="none", budget=20, auth=("alice", password))
        monkeypatch.setenv("FUZZ_PW", password)
        argv = ["fuzz", f"{host}:{port}", "--tls", "none", "--budget", "20", "--user", "alice"]
        assert main([*argv, "--password-env", "FUZZ_PW"]) == 5
    out, err = capsys.readouterr()
    for shown in (str(info.value), out + err):
        assert "<redacted>" in shown
        assert password not in shown and plain not in shown


def test_the_budget_bounds_the_calibration_of_a_server_that_never_answers() -> None:
    """A server that greets and then answers nothing (a tarpit) kept the calibration
    going, every command waiting its reply timeout: a 20 s budget took over 120 s and
    six connections. The calibration now stops at the deadline and says so."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        held: list[socket.socket] = []
        stop = threading.Event()

        def tarpit() -> None:
            listener.settimeout(0.2)
            while not stop.is_set() and len(held) < 16:
                with contextlib.suppress(TimeoutError):
                    conn, _ = listener.accept()
                    conn.sendall(b"220 tarpit ESMTP\r\n")
                    held.append(conn)

        thread = threading.Thread(target=tarpit, daemon=True)
        thread.start()
        try:
            report = run_campaign("127.0.0.1", port, budget=3, tls="none")
        finally:
            stop.set()
            thread.join(5)
            for conn in held:
                conn.close()
    assert report.target.connections <= 2, report.target.connections
    assert "calibration" in report.stopped
    assert report.findings == [] and len(report.phases) == 1


def test_an_auth_refused_for_another_reason_than_the_credentials_does_not_stop_it(
    tmp_path: Path,
) -> None:
    """Only a 535 (credentials invalid, RFC 4954 §6) stops the calibration: with the
    EHLO after STARTTLS broken (bad-multiline-after-tls), the campaign falls back to
    cleartext, where AUTH gets 538; stopping there hid the flaw the STARTTLS probes
    show."""
    with start_flawed(tmp_path, ["bad-multiline-after-tls"]) as target:
        report = run_campaign(
            target.host, target.port, budget=30, auth=CREDENTIALS, probes=("starttls",)
        )
        assert "bad-multiline-after-tls" in target.triggered()
    assert report.findings, report.profile.notes if report.profile else None
    assert report.profile is not None
    assert any("AUTH refused with 538" in note for note in report.profile.notes)
