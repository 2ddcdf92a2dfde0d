"""swaks' XCLIENT variants through the real CLI: ``--xclient-before-starttls``,
``--xclient-optional``, ``--xclient-optional-strict`` and ``--xclient-no-verify``,
against a private Postfix smtpd (the real XCLIENT, with STARTTLS:
``interop/peers_postfix.start_postfix_xclient``) and a scripted peer
for what Postfix never does (attributes it does not list), with swaks side by side."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from interop.conftest import _enter
from interop.peers_postfix import PostfixPeer, start_postfix_xclient

from .helpers import RUN_TIMEOUT, ScriptedSMTPServer, assert_clean_failure, run_cli

#: The private Postfix relays mail for this domain (and discards it).
DOMAIN = "example.org"
ENVELOPE = ("--from", "a@example.org", "--to", f"b@{DOMAIN}", "--body", "xclient test")
EHLO_X = b"250-scripted\r\n250 XCLIENT NAME ADDR\r\n"
EHLO_NAME = b"250-scripted\r\n250 XCLIENT NAME\r\n"
EHLO_PLAIN = b"250-scripted\r\n250 8BITMIME\r\n"
SWAKS = shutil.which("swaks")


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixPeer]:
    """One private Postfix for the module (its start takes seconds)."""
    with ExitStack() as stack:
        yield _enter(stack, start_postfix_xclient())


def _sent(stdout: str) -> list[str]:
    """The verbs of the command lines in a transcript (ours ``-> ``, swaks `` -> ``)."""
    verbs = []
    for line in stdout.splitlines():
        for arrow in ("-> ", "~> "):
            if arrow in line and "<content" not in line:
                verbs.append(line.split(arrow, 1)[1].split(" ")[0].split(":")[0])
    return [verb for verb in verbs if verb.isupper() and verb.isalpha()]


def _ours(postfix: PostfixPeer, *options: str) -> subprocess.CompletedProcess[str]:
    assert postfix.tls is not None
    return run_cli(
        "send", "--server", f"localhost:{postfix.port}", "--cafile", str(postfix.tls.ca_path),
        "--tls", "required", *options, *ENVELOPE,
    )  # fmt: skip


@pytest.mark.parametrize("before", [False, True])
def test_xclient_to_postfix_after_or_before_starttls(postfix: PostfixPeer, before: bool) -> None:
    name = f"{'before' if before else 'after'}.example.test"
    flag = ("--xclient-before-starttls",) if before else ()
    result = _ours(postfix, "--xclient", f"NAME={name}", "--xclient", "ADDR=192.0.2.10", *flag)
    assert result.returncode == 0, result.stdout + result.stderr
    postfix.wait_for_log(f"client={name}[192.0.2.10]")  # Postfix took the new identity
    expected = ["EHLO", "STARTTLS", "EHLO", "XCLIENT", "EHLO", "MAIL"]
    if before:
        expected = ["EHLO", "XCLIENT", "EHLO", "STARTTLS", "EHLO", "MAIL"]
    assert _sent(result.stdout)[:6] == expected


@pytest.mark.skipif(SWAKS is None, reason="swaks is not installed")
def test_swaks_xclient_before_starttls_sends_the_same_commands(postfix: PostfixPeer) -> None:
    swaks = subprocess.run(
        [str(SWAKS), "--server", f"127.0.0.1:{postfix.port}", "--from", "a@example.org",
         "--to", f"b@{DOMAIN}", "--body", "xclient test", "-tls",
         "--xclient-name", "swaks.example.test", "--xclient-before-starttls"],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )  # fmt: skip
    assert swaks.returncode == 0, swaks.stdout + swaks.stderr
    ours = _ours(
        postfix, "--xclient", "NAME=ours.example.test", "--xclient-before-starttls", "--no-chunking"
    )
    assert ours.returncode == 0, ours.stdout + ours.stderr
    assert _sent(ours.stdout) == _sent(swaks.stdout)
    postfix.wait_for_log("client=swaks.example.test[")
    postfix.wait_for_log("client=ours.example.test[")


@pytest.mark.parametrize(
    ("flag", "code"), [(None, 9), ("--xclient-optional-strict", 9), ("--xclient-optional", 0)]
)
def test_xclient_refused_by_postfix(postfix: PostfixPeer, flag: str | None, code: int) -> None:
    """Postfix refuses a PORT that is not a number (501): only --xclient-optional goes on."""
    options = ("--xclient", "PORT=notanumber", *((flag,) if flag else ()))
    result = _ours(postfix, *options)
    if code:
        assert_clean_failure(result, code, "XCLIENT")
        assert "MAIL" not in _sent(result.stdout)
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "XCLIENT refused (501" in result.stdout and "MAIL" in _sent(result.stdout)


#: (EHLO replies, options) -> (exit code, whether XCLIENT was sent, whether MAIL was)
CASES = [
    # not advertised: only the optional variants go on (without XCLIENT)
    ([EHLO_PLAIN], (), (2, False, False)),
    ([EHLO_PLAIN], ("--xclient-optional",), (0, False, True)),
    ([EHLO_PLAIN], ("--xclient-optional-strict",), (0, False, True)),
    ([EHLO_PLAIN], ("--xclient-no-verify",), (2, False, False)),
    # ADDR not listed: --xclient-no-verify sends it anyway; optional goes on without
    ([EHLO_NAME], (), (2, False, False)),
    ([EHLO_NAME, EHLO_NAME], ("--xclient-no-verify",), (0, True, True)),
    ([EHLO_NAME], ("--xclient-optional",), (0, False, True)),
    ([EHLO_NAME], ("--xclient-optional-strict",), (0, False, True)),
    ([EHLO_X, EHLO_X], (), (0, True, True)),
]


@pytest.mark.parametrize(("ehlo", "options", "outcome"), CASES)
def test_xclient_variants_against_a_scripted_peer(
    ehlo: list[bytes], options: tuple[str, ...], outcome: tuple[int, bool, bool]
) -> None:
    code, xclient_sent, mail_sent = outcome
    replies = {"EHLO": list(ehlo), "XCLIENT": b"220 scripted ESMTP\r\n"}
    with ScriptedSMTPServer(replies) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none",
            "--xclient", "NAME=n.example", "--xclient", "ADDR=192.0.2.1", *options, *ENVELOPE,
        )  # fmt: skip
        server.close()
    verbs = [line.split(b" ")[0].rstrip(b"\r\n") for line in server.received]
    if code:
        assert_clean_failure(result, code, "XCLIENT")
    else:
        assert result.returncode == 0, result.stdout + result.stderr
    assert (b"XCLIENT" in verbs) is xclient_sent and (b"MAIL" in verbs) is mail_sent
    if xclient_sent:
        assert b"XCLIENT NAME=n.example ADDR=192.0.2.1\r\n" in server.received
    if code == 0 and not xclient_sent:
        assert "going on without" in result.stdout


@pytest.mark.skipif(SWAKS is None, reason="swaks is not installed")
@pytest.mark.parametrize("case", [case for case in CASES if case[2][0] == 0])
def test_swaks_takes_the_same_xclient_path(
    case: tuple[list[bytes], tuple[str, ...], tuple[int, bool, bool]],
) -> None:
    ehlo, options, _ = case
    replies = {"EHLO": list(ehlo), "XCLIENT": b"220 scripted ESMTP\r\n"}
    with ScriptedSMTPServer(replies) as server:
        swaks = subprocess.run(
            [str(SWAKS), "--server", f"127.0.0.1:{server.port}", "--from", "a@example.org",
             "--to", f"b@{DOMAIN}", "--body", "x", "--xclient-name", "n.example",
             "--xclient-addr", "192.0.2.1", *options],
            capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
        )  # fmt: skip
        server.close()
    assert swaks.returncode == 0, swaks.stdout + swaks.stderr
    theirs = [line.split(b" ")[0].rstrip(b"\r\n") for line in server.received]
    replies = {"EHLO": list(ehlo), "XCLIENT": b"220 scripted ESMTP\r\n"}
    with ScriptedSMTPServer(replies) as server:
        ours = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none", "--from",
            "a@example.org", "--to", f"b@{DOMAIN}", "--body", "x", "--xclient", "NAME=n.example",
            "--xclient", "ADDR=192.0.2.1", *options,
        )  # fmt: skip
        server.close()
    assert ours.returncode == 0, ours.stdout + ours.stderr
    verbs = [line.split(b" ")[0].rstrip(b"\r\n") for line in server.received]
    commands = [verb for verb in verbs if verb in (b"EHLO", b"XCLIENT", b"MAIL", b"RCPT", b"QUIT")]
    assert commands == [v for v in theirs if v in (b"EHLO", b"XCLIENT", b"MAIL", b"RCPT", b"QUIT")]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (("--xclient-optional",), "--xclient-optional needs --xclient"),
        (("--xclient-before-starttls",), "--xclient-before-starttls needs --xclient"),
        (("--xclient-no-verify",), "--xclient-no-verify needs --xclient"),
        (
            ("--xclient", "NAME=x", "--xclient-optional", "--xclient-optional-strict"),
            "not allowed with",
        ),
    ],
)
def test_xclient_variant_usage_errors(options: tuple[str, ...], fragment: str) -> None:
    result = run_cli("send", "--server", "127.0.0.1:9", *options, *ENVELOPE)
    assert_clean_failure(result, 2, fragment)


#: stage option -> (the peer's verbs, the last transcript note)
XCLIENT_STOPS = {
    "--quit-after": (["EHLO", "XCLIENT", "EHLO", "QUIT"], "quit after xclient, as asked"),
    "--drop-after": (["EHLO", "XCLIENT", "EHLO"], "dropped the connection after xclient"),
    "--drop-after-send": (["EHLO", "XCLIENT"], "dropped the connection after sending xclient"),
}


@pytest.mark.parametrize("option", list(XCLIENT_STOPS))
def test_stop_at_the_xclient_stage(option: str) -> None:
    """swaks' xclient stop point: after XCLIENT (and, here, the EHLO its 220 asks for)."""
    verbs, note = XCLIENT_STOPS[option]
    replies = {"EHLO": [EHLO_X, EHLO_X], "XCLIENT": b"220 scripted ESMTP\r\n"}
    with ScriptedSMTPServer(replies) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none",
            "--xclient", "NAME=n.example", option, "xclient", *ENVELOPE,
        )  # fmt: skip
        server.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(b" ")[0].rstrip(b"\r\n").decode() for line in server.received] == verbs
    assert note in result.stdout.splitlines()[-1]


@pytest.mark.skipif(SWAKS is None, reason="swaks is not installed")
def test_swaks_drop_after_send_xclient_leaves_the_same_commands() -> None:
    received = []
    for ours in (False, True):
        replies = {"EHLO": [EHLO_X, EHLO_X], "XCLIENT": b"220 scripted ESMTP\r\n"}
        with ScriptedSMTPServer(replies) as server:
            if ours:
                result = run_cli(
                    "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none",
                    "--xclient", "NAME=n.example", "--drop-after-send", "xclient", *ENVELOPE,
                )  # fmt: skip
                assert result.returncode == 0, result.stdout + result.stderr
            else:
                subprocess.run(
                    [str(SWAKS), "--server", f"127.0.0.1:{server.port}", "--from",
                     "a@example.org", "--to", f"b@{DOMAIN}", "--xclient-name", "n.example",
                     "--drop-after-send", "xclient"],
                    capture_output=True, timeout=RUN_TIMEOUT, check=False,
                )  # fmt: skip
            server.close()
        received.append([line.split(b" ")[0] for line in server.received])
    assert received[0] == received[1] == [b"EHLO", b"XCLIENT"]


def test_quit_after_xclient_before_starttls_to_postfix(postfix: PostfixPeer) -> None:
    result = _ours(
        postfix, "--xclient", "NAME=stop.example.test", "--xclient-before-starttls",
        "--quit-after", "xclient",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert _sent(result.stdout) == ["EHLO", "XCLIENT", "EHLO", "QUIT"]  # no STARTTLS


@pytest.mark.parametrize("option", list(XCLIENT_STOPS))
def test_the_xclient_stage_needs_xclient(option: str) -> None:
    result = run_cli("send", "--server", "127.0.0.1:9", option, "xclient", *ENVELOPE)
    assert_clean_failure(result, 2, f"{option} xclient needs --xclient")
