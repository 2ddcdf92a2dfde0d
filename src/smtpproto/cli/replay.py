"""``smtpproto replay FILE HOST:PORT``: replay a finding transcript and re-apply its oracle.

The replay follows FUZZ-TRANSCRIPT.md (``smtpproto.fuzz.replay``). Exit status: 0 the
finding still reproduces (or, for a transcript whose header names no oracle, which the
format allows, it was replayed: nothing to judge), 1 it does not (the server was fixed),
2 usage or a transcript that breaks the format, 3 cannot connect (the first connection
was refused: nothing was replayed), 10 the replay ran past ``--max-time`` (120 s) and
nothing had reproduced by then. So a regression test after a fix asserts status 1,
and a server that is down is never read as a fixed one. As for ``smtpproto fuzz``, a
target that is not a loopback address needs ``--i-own-this-target``.
"""

from __future__ import annotations

import argparse
import json

from ..fuzz.replay import MAX_REPLAY_SECONDS, replay
from ..fuzz.transcript import Transcript, TranscriptError
from ..wire.text import escape_text
from .common import CLIError, ExitCode, parse_server
from .fuzz import is_loopback
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
    p.add_argument(
        "--max-time",
        type=float,
        default=MAX_REPLAY_SECONDS,
        metavar="SECONDS",
        help="stop a replay that runs longer (120 s; the format asks for 60 at most)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--i-own-this-target",
        action="store_true",
        dest="own_target",
        help="allow a target that is not a loopback address (as for smtpproto fuzz)",
    )


def run_replay(args: argparse.Namespace) -> int:
    """Replay, judge, print the verdict; return the exit code."""
    host, port = parse_server(args.server, default_port=25)
    if not args.own_target and not is_loopback(host):
        raise CLIError(
            f"{escape_text(host)} is not a loopback address: a finding (a crash, a "
            "smuggled message) is replayed only against servers you own; say so with "
            "--i-own-this-target",
            ExitCode.USAGE,
        )
    if not 0 < args.timeout <= 60:
        raise CLIError("--timeout must be between 0 and 60 seconds", ExitCode.USAGE)
    if not 0 < args.max_time <= 3600:
        raise CLIError("--max-time must be between 0 and 3600 seconds", ExitCode.USAGE)
    try:
        transcript = Transcript.load(args.file)
    except (OSError, TranscriptError) as error:
        raise CLIError(f"{escape_text(args.file)}: {error}", ExitCode.USAGE) from None
    try:
        result = replay(transcript, host, port, timeout=args.timeout, max_seconds=args.max_time)
    except ValueError as error:
        raise CLIError(f"{escape_text(args.file)}: {error}", ExitCode.USAGE) from None
    if result.unreachable:
        detail = result.observation.conns[0].detail
        raise CLIError(
            f"cannot replay {escape_text(args.file)} to {escape_text(args.server)}: "
            f"{escape_text(detail)}",
            ExitCode.CONNECT,
        )
    if result.stopped and not result.reproduced:
        raise CLIError(
            f"{escape_text(args.file)}: replay {result.stopped} (--max-time), nothing "
            "reproduced so far: not judged",
            ExitCode.TIMEOUT,
        )
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
                    "stopped": result.stopped or None,
                },
                sort_keys=True,
            )
        )
    else:
        rows = [
            ("finding", header.get("title", "-")),
            ("oracle", result.oracle),
            ("result", _outcome(result.reproduced)),
            ("verdict", result.verdict or "-"),
        ]
        print(format_table(rows, indent=""))
    return EXIT_NOT_REPRODUCED if result.reproduced is False else ExitCode.OK


def _outcome(reproduced: bool | None) -> str:
    if reproduced is None:
        return "replayed (no oracle in the header: not judged)"
    return "REPRODUCES" if reproduced else "does not reproduce"
