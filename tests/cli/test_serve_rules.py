"""``smtpproto serve --rules FILE --max-size N`` (the failing test server from the command
line) and SIGTERM stopping it as cleanly as Ctrl-C."""

from __future__ import annotations

import json
import signal
import smtplib
import ssl
import time
from pathlib import Path

import pytest

from .helpers import ServeProcess, assert_clean_failure, run_cli

MESSAGE = b"Subject: hi\r\nFrom: a@example.org\r\nTo: b@example.org\r\n\r\nHello there.\r\n"

TOML_RULES = """\
[[rule]]                       # RCPT TO bob: 550 5.1.1
stage = "rcpt"
recipient = "bob@example.org"
reply = { code = 550, enhanced = "5.1.1", text = "No such user" }

[[rule]]
stage = "data_end"
sender_regex = "spam@.*"
reply = { code = 554, enhanced = "5.7.1", text = "Looks like spam" }
"""


@pytest.mark.parametrize("syntax", ["toml", "json"])
def test_serve_applies_a_rule_file(tmp_path: Path, syntax: str) -> None:
    path = tmp_path / f"rules.{syntax}"
    if syntax == "toml":
        path.write_text(TOML_RULES, encoding="utf-8")
    else:
        rule = {"stage": "rcpt", "recipient": "bob@example.org"}
        rule["reply"] = {"code": 550, "enhanced": "5.1.1", "text": "No such user"}  # type: ignore[assignment]
        path.write_text(json.dumps({"rule": [rule]}), encoding="utf-8")
    with ServeProcess("--no-starttls", "--rules", str(path)) as serve:
        assert serve.wait_for("rules:").endswith(f"from {path}")
        with smtplib.SMTP("127.0.0.1", serve.port, timeout=20) as client:
            refused = client.sendmail(
                "a@example.org", ["bob@example.org", "ann@example.org"], MESSAGE
            )
            assert refused == {"bob@example.org": (550, b"5.1.1 No such user")}
            if syntax == "toml":
                with pytest.raises(smtplib.SMTPDataError) as info:
                    client.sendmail("spam@example.org", ["ann@example.org"], MESSAGE)
                assert info.value.smtp_code == 554
        serve.wait_for("---- end of message")
        assert serve.stop() == 0
    assert "rule: Respond at rcpt" in serve.output()


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        (
            "r.toml",
            '[[rule]]\nstage = "rcpt"\nrply = { code = 550 }\n',
            ("rule 1", "unknown key 'rply'"),
        ),
        (
            "r.toml",
            '[[rule]]\nstage = "rcpt"\nreply = { code = 250, text = "x\\r\\ny" }\n',
            ("rule 1", "printable"),
        ),
        ("r.toml", '[[rule]]\nstage = "helo"\nreply = { code = 250 }\n', ("use 4yz or 5yz",)),
        ("r.toml", "[[rule]\n", ("not valid TOML",)),
        ("r.json", '{"rule": [{"stage": "mail", "reply": {"code": 421}}]}', ("Disconnect",)),
        ("r.json", "{", ("not valid JSON",)),
        ("r.yaml", "rule: []", (".toml or .json",)),
    ],
)
def test_a_bad_rule_file_is_one_line_and_exit_2(
    tmp_path: Path, name: str, content: str, fragments: tuple[str, ...]
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    result = run_cli("serve", "--no-starttls", "--rules", str(path))
    assert_clean_failure(result, 2, *fragments)


def test_a_missing_rule_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("serve", "--rules", str(tmp_path / "missing.toml"))
    assert_clean_failure(result, 2, "cannot read")


def test_max_size_is_advertised_and_enforced() -> None:
    with ServeProcess("--no-starttls", "--quiet", "--max-size", "1K") as serve:
        assert serve.wait_for("SIZE limit:") == "SIZE limit: 1024 octets"
        with smtplib.SMTP("127.0.0.1", serve.port, timeout=20) as client:
            client.ehlo()
            assert client.esmtp_features["size"] == "1024"
            with pytest.raises(smtplib.SMTPSenderRefused) as info:
                client.sendmail("a@example.org", ["b@example.org"], MESSAGE + b"x" * 1024)
            assert info.value.smtp_code == 552
        assert serve.stop() == 0


@pytest.mark.parametrize("size", ["0", "-5", "1X", "ten", "99999999999999999G"])
def test_a_bad_max_size_is_a_usage_error(size: str) -> None:
    result = run_cli("serve", "--max-size", size)
    assert_clean_failure(result, 2, "--max-size")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_stops_cleanly_and_removes_the_certificate(sig: signal.Signals) -> None:
    """SIGTERM (kill) and SIGHUP (the terminal closed) stop serve as Ctrl-C does."""
    with ServeProcess() as serve:
        cert = Path(serve.wait_for("STARTTLS certificate:").split(": ", 1)[1])
        assert cert.is_file()
        client = smtplib.SMTP("127.0.0.1", serve.port, timeout=20)
        try:
            client.ehlo()  # an open session does not hold the server up
            code = serve.stop(sig=sig)
            assert client.getreply()[0] == 421  # RFC 5321 §3.8: the service shuts down
        finally:
            client.close()
    assert code == 0, serve.stderr
    assert "Traceback" not in serve.stderr
    assert f"stopped ({sig.name})" in serve.stderr
    assert not cert.exists() and not cert.parent.exists()


def test_a_sigterm_repeated_while_serve_stops_still_removes_the_certificate() -> None:
    """A second SIGTERM while serve closes its sessions (an idle STARTTLS session: the
    close waits up to a second for the client's close_notify) is taken like the first;
    before, the signal handlers were removed before the sessions were closed, and its
    default action killed serve with the temporary certificate left behind."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with ServeProcess() as serve:
        cert = Path(serve.wait_for("STARTTLS certificate:").split(": ", 1)[1])
        client = smtplib.SMTP("127.0.0.1", serve.port, timeout=20)
        try:
            client.starttls(context=context)
            client.ehlo()  # then idle: it never answers the server's close_notify
            serve.process.send_signal(signal.SIGTERM)
            time.sleep(0.2)  # serve is closing the session now (its 421 unread)
            if serve.process.poll() is None:
                serve.process.send_signal(signal.SIGTERM)
            code = serve.stop(sig=signal.SIGTERM)
        finally:
            client.close()
    assert code == 0, serve.stderr
    assert "stopped (SIGTERM)" in serve.stderr
    assert not cert.exists() and not cert.parent.exists()
