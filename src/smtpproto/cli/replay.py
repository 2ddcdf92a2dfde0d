"""``smtpproto replay FILE HOST:PORT``: replay a finding transcript and re-apply its oracle.

The replay follows FUZZ-TRANSCRIPT.md (``smtpproto.fuzz.replay``). Exit status: 0 the
finding still reproduces, 1 it does not (the server was fixed), 2 usage or a transcript
that breaks the format or names no oracle, 3 cannot connect. So a regression test after
a fix asserts status 1.
"""

from __future__ import annotations

import argparse
import json

from ..fuzz.replay import replay
from ..fuzz.transcript import Transcript, TranscriptError
from ..wire.text import escape_text
from .common import CLIError, ExitCode, parse_server
from .output import format_table

__all__ = ["EXIT_NOT_REPRODUCED", "add_arguments", "run_replay"]

#: Exit status when the finding no longer reproduces.
EXIT_NOT_REPRODUCED = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``replay`` sub-command's options."""
    p.add_argument("file", metavar="FILE", help="a transcript.jsonl written by smtpproto fuzz")
    p.add_argument("server", metavar="HOST:PORT", help="IPv6 as [::1]:25")
    p.add_argument(
        "--timeout", type=float, default=2.0, metavar="SECONDS", help="read timeout (2 s)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run_replay(args: argparse.Namespace) -> int:
    """Replay, judge, print the verdict; return the exit code."""
    host, port = parse_server(args.server, default_port=25)
    if not 0 < args.timeout <= 60:
        raise CLIError("--timeout must be between 0 and 60 seconds", ExitCode.USAGE)
    try:
        transcript = Transcript.load(args.file)
    except (OSError, TranscriptError, UnicodeDecodeError) as error:
        raise CLIError(f"{escape_text(args.file)}: {error}", ExitCode.USAGE) from None
    if transcript.header.get("oracle") is None:
        raise CLIError(
            f"{escape_text(args.file)} names no oracle in its header: nothing to judge",
            ExitCode.USAGE,
        )
    try:
        result = replay(transcript, host, port, timeout=args.timeout)
    except ValueError as error:
        raise CLIError(f"{escape_text(args.file)}: {error}", ExitCode.USAGE) from None
    header = result.transcript.header
    if args.json:
        print(
            json.dumps(
                {
                    "file": args.file,
                    "oracle": result.oracle,
                    "reproduced": result.reproduced,
                    "verdict": result.verdict,
                    "title": header.get("title"),
                    "connections": len(result.observation.conns),
                    "seconds": round(result.observation.seconds, 3),
                },
                sort_keys=True,
            )
        )
    else:
        rows = [
            ("finding", header.get("title", "-")),
            ("oracle", result.oracle),
            ("result", "REPRODUCES" if result.reproduced else "does not reproduce"),
            ("verdict", result.verdict or "-"),
        ]
        print(format_table(rows, indent=""))
    return ExitCode.OK if result.reproduced else EXIT_NOT_REPRODUCED
