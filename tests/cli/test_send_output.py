"""``send`` output control through the real CLI: ``--hide-*``, ``--silent``,
``--no-timestamps``, ``--color`` with ``NO_COLOR``, ``--output-file``; and the one
console that keeps the progress bar (stderr) from corrupting the transcript (stdout)
on one terminal."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from smtpproto.cli.output import Console, ProgressBar, Transcript, use_color

from .helpers import ScriptedSMTPServer, assert_clean_failure, free_port, run_cli

STAMP = re.compile(r"^\[\s*\d+\.\d{3}s\] ")


def _marks(stdout: str) -> set[str]:
    return {STAMP.sub("", line)[:2] for line in stdout.splitlines() if STAMP.match(line)}


@pytest.mark.parametrize(
    ("flag", "absent", "present"),
    [
        ("--hide-send", {"->", "~>"}, {"<-", "<~", "=="}),
        ("--hide-receive", {"<-", "<~"}, {"->", "~>", "=="}),
        ("--hide-informational", {"=="}, {"->", "<-"}),
    ],
)
def test_hide_one_kind_of_line(flag: str, absent: set[str], present: set[str]) -> None:
    result = run_cli("send", flag)
    assert result.returncode == 0, result.stderr
    marks = _marks(result.stdout)
    assert not marks & absent, marks
    assert present <= marks, marks


def test_hide_all_keeps_the_received_message_and_silent_prints_nothing() -> None:
    hidden = run_cli("send", "--hide-all")
    silent = run_cli("send", "--silent")
    assert hidden.returncode == 0 and silent.returncode == 0, hidden.stderr + silent.stderr
    assert _marks(hidden.stdout) == set()
    assert "---- the message as the built-in server received it" in hidden.stdout
    assert silent.stdout == "" and silent.stderr == ""


def test_no_timestamps() -> None:
    result = run_cli("send", "--no-timestamps")
    assert result.returncode == 0, result.stderr
    assert not any(STAMP.match(line) for line in result.stdout.splitlines())
    assert "~> QUIT" in result.stdout.splitlines()


def test_color_always_never_and_no_color() -> None:
    always = run_cli("send", "--color", "always", env={"NO_COLOR": "1"})
    auto = run_cli("send", env={"NO_COLOR": ""})  # not a terminal: no colour
    assert always.returncode == 0 and auto.returncode == 0
    assert "\x1b[36m" in always.stdout and "\x1b[32m" in always.stdout  # sent, received
    assert "\x1b[35m~>\x1b[0m" in always.stdout  # TLS marks
    assert "\x1b[" not in auto.stdout


def test_use_color_rules() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    for env, expected in (({}, True), ({"NO_COLOR": "1"}, False), ({"NO_COLOR": ""}, True)):
        with pytest.MonkeyPatch.context() as patch:
            patch.delenv("NO_COLOR", raising=False)
            for key, value in env.items():
                patch.setenv(key, value)
            assert use_color("auto", Tty()) is expected
            assert use_color("always", Tty()) is True
            assert use_color("never", Tty()) is False
            assert use_color("auto", io.StringIO()) is False


def test_a_refused_reply_is_red() -> None:
    out = io.StringIO()
    transcript = Transcript(out, color=True, clock=lambda: 0.0)
    transcript("S", b"550 5.1.1 no such user")
    transcript("S", b"250 ok")
    first, second = out.getvalue().splitlines()
    assert "\x1b[31m550 5.1.1 no such user" in first
    assert "\x1b[32m250 ok" in second


def test_output_file(tmp_path: Path) -> None:
    path = tmp_path / "session.log"
    result = run_cli("send", "--output-file", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    text = path.read_text()
    assert "~> QUIT" in text and "---- end of message" in text
    bad = run_cli("send", "--output-file", str(tmp_path / "no" / "such" / "dir.log"))
    assert_clean_failure(bad, 2, "cannot write --output-file")


def test_transcript_lines_make_way_for_the_progress_bar() -> None:
    """One terminal (stdout and stderr shared): a transcript line first erases the bar,
    then the bar is redrawn below it, never a line glued to the bar's text."""
    screen = io.StringIO()
    console = Console(screen, screen, shared=True)
    transcript = Transcript(screen, clock=lambda: 0.0, console=console)
    bar = ProgressBar(4 << 20, screen, enabled=True, clock=lambda: 1.0, console=console)
    bar.update(1 << 20)
    transcript("C", b"NOOP")
    bar.finish()
    text = screen.getvalue()
    drawn = text.index("25%")
    line = text.index("-> NOOP")
    assert text[drawn:line].endswith("\x1b[K\r\x1b[K[   0.000s] ")  # erased before the line
    after = text[line:]
    assert after.startswith("-> NOOP\n\r[")  # redrawn right after it
    assert text.endswith("\x1b[K\n")


def test_console_not_shared_leaves_the_bar_alone() -> None:
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err, shared=False)
    console.status("bar")
    console.line("line")
    assert out.getvalue() == "line\n"
    assert err.getvalue() == "\rbar\x1b[K"


def test_transcript_refuses_an_unknown_kind_to_hide() -> None:
    with pytest.raises(ValueError, match="unknown kinds"):
        Transcript(io.StringIO(), hide=["sent"])


def test_send_json_is_one_object_with_replies_and_outcome() -> None:
    result = run_cli("send", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # one object: json.loads refuses anything more
    assert report["outcome"] == {"exit_code": 0, "ok": True, "error": None}
    assert report["tls"].startswith("TLSv1.")
    commands = [(reply["command"] or "").split(" ")[0] for reply in report["replies"]]
    assert commands[:4] == ["", "EHLO", "STARTTLS", "EHLO"]
    assert commands[-1] == "QUIT"
    assert all(isinstance(reply["ms"], float) for reply in report["replies"])
    assert any(line["dir"] == "note" for line in report["transcript"])
    assert "built-in server" not in result.stdout  # only the object


def test_send_json_on_failure_still_one_object() -> None:
    refused = run_cli("send", "--json", "--server", f"127.0.0.1:{free_port()}", "--to", "b@x.test")
    assert_clean_failure(refused, 3, "cannot connect")
    report = json.loads(refused.stdout)
    assert report["outcome"]["exit_code"] == 3 and "cannot connect" in report["outcome"]["error"]
    with ScriptedSMTPServer({"RCPT": b"550 5.1.1 no such user\r\n"}) as server:
        result = run_cli(
            "send", "--json", "--server", f"127.0.0.1:{server.port}", "--tls", "none",
            "--from", "a@example.org", "--to", "b@example.org", "--body", "x",
        )  # fmt: skip
    assert_clean_failure(result, 7, "refused")
    report = json.loads(result.stdout)
    rcpt = next(r for r in report["replies"] if str(r["command"]).startswith("RCPT"))
    assert rcpt["code"] == 550 and rcpt["lines"] == ["5.1.1 no such user"]
    assert report["outcome"]["ok"] is False


def _content_lines(stdout: str) -> list[str]:
    return [STAMP.sub("", line) for line in stdout.splitlines() if "<content:" in line]


@pytest.mark.parametrize("chunking", ["--chunking", "--no-chunking"])
def test_a_big_message_is_one_content_line(tmp_path: Path, chunking: str) -> None:
    body = tmp_path / "body.txt"
    body.write_text("x" * 70 + "\n" * 1 + ("line of text\n" * 30_000))
    result = run_cli("send", "--demo", chunking, "--body-file", str(body), "--hide-receive")
    assert result.returncode == 0, result.stderr
    (content,) = _content_lines(result.stdout)
    sent = [STAMP.sub("", line) for line in result.stdout.splitlines()]
    if chunking == "--chunking":
        assert [line for line in sent if line.startswith("~> BDAT")] == [
            next(line for line in sent if line.endswith(" LAST"))
        ]
        assert re.search(r", in \d+ BDAT chunks>$", content)
    else:
        assert sent[sent.index("~> .") - 1] == content
    assert re.search(r"<content: \d{6} octets, 300\d\d line ends", content)  # + headers


def test_content_tally_keeps_refusals_and_counts_chunks() -> None:
    out = io.StringIO()
    transcript = Transcript(out, clock=lambda: 0.0, timestamps=False)
    for direction, line in [
        ("C", b"BDAT 10"), ("C", b"<content: 10 octets, 1 line ends>"),
        ("C", b"BDAT 5"), ("C", b"<content: 5 octets, 0 line ends>"),
        ("S", b"250 2.0.0 chunk ok"),
        ("C", b"BDAT 3 LAST"), ("C", b"<content: 3 octets, 1 line ends>"),
        ("S", b"452 4.3.1 chunk refused"),
        ("S", b"250 2.0.0 queued"),
        ("C", b"QUIT"),
    ]:  # fmt: skip
        transcript(direction, line)  # type: ignore[arg-type]
    assert out.getvalue().splitlines() == [
        "-> BDAT 3 LAST",
        "-> <content: 18 octets, 2 line ends, in 3 BDAT chunks>",
        "<- 452 4.3.1 chunk refused",
        "<- 250 2.0.0 queued",
        "-> QUIT",
    ]
    raw = io.StringIO()
    Transcript(raw, timestamps=False, collapse_content=False)("C", b"BDAT 10")
    assert raw.getvalue() == "-> BDAT 10\n"
