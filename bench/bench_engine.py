"""Engine-only throughput: complete SMTP transactions per second, in memory.

One transaction is a whole session: greeting, EHLO, MAIL, one RCPT, DATA, a 1 KB
body, the final reply (and nothing else: no QUIT). Command values are built once and
reused (they are immutable), except in the "new commands" row, which builds and
validates EHLO, MAIL and RCPT for every transaction. The "server" is a fixed reply
script fed back to the engine, so only the client engine is measured: reply parsing,
state machine, command serialisation, DATA encoding.

Peer: agronholm's ``smtpproto`` 2.0 from PyPI. Its import name clashes with ours, so
it runs from its own virtual environment (default ``/tmp/agron``; create it with
``python3 -m venv /tmp/agron && /tmp/agron/bin/pip install 'smtpproto==2.*'``) in a
subprocess running this very file with ``--agronholm``. Both processes also time the
same pure-Python reference loop (each in a fresh interpreter of its environment), and
the comparison uses transactions per reference loop, so interpreter and machine
differences cancel; the raw ratio is printed too (it is the better number when both
environments use the same interpreter binary, as ``python3 -m venv`` does). Its API takes an
``email.message.EmailMessage`` for the content, built once outside the loop (its
``data()`` serialises it every time; that is part of its engine's work).

Run: ``.venv/bin/python bench/bench_engine.py [--venv /tmp/agron]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TRANSACTIONS = 2000
RUNS = 7
REFERENCE_N = 200_000
REFERENCE = "reference loop"
PEER = "agronholm smtpproto 2.0 (per reference loop)"

GREETING = b"220 mx.example.org ESMTP ready\r\n"
EHLO_REPLY = (
    b"250-mx.example.org greets client.example\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 10240000\r\n"
    b"250-8BITMIME\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250 SMTPUTF8\r\n"
)
OK_MAIL = b"250 2.1.0 Ok\r\n"
OK_RCPT = b"250 2.1.5 Ok\r\n"
GO_DATA = b"354 End data with <CR><LF>.<CR><LF>\r\n"
QUEUED = b"250 2.0.0 Ok: queued as 4AB12C\r\n"
LINE = b"The quick brown fox jumps over the lazy dog, again and again, in SMTP.\r\n"
BODY = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: bench\r\n\r\n" + LINE * 14)[:1024]


def reference_loop(runs: int = RUNS) -> float:
    """A fixed pure-Python workload; mean seconds per run over ``runs``."""
    total_seconds = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        table: dict[int, bytes] = {}
        total = 0
        for i in range(REFERENCE_N):
            key = i & 1023
            table[key] = b"%d" % i
            total += len(table[key]) + (i % 7)
        total_seconds += time.perf_counter() - start
    assert total > 0
    return total_seconds / runs


def rate_of(session: Any, transactions: int = RUNS * TRANSACTIONS) -> float:
    """Transactions/s over ``transactions`` sessions (after one warm-up session)."""
    session()  # warm up
    start = time.perf_counter()
    for _ in range(transactions):
        session()
    return transactions / (time.perf_counter() - start)


# -- ours ------------------------------------------------------------------------------


def ours(
    parser: Any, *, pipelined: bool, build_commands: bool = False, shared_config: bool = True
) -> Any:
    """One transaction as a callable, through the public API only (so it runs against any
    installed revision: ``bench_revisions.py``). With ``shared_config`` every connection
    gets the same ``ClientConfig`` (as the session drivers do), else a new one."""
    from smtpproto import (
        NEED_DATA,
        ClientConfig,
        ClientConnection,
        Content,
        Data,
        Ehlo,
        EndOfContent,
        Mail,
        Rcpt,
        TransactionResult,
    )

    shared = ClientConfig(parser_factory=parser)
    ehlo, mail, rcpt, data = (
        Ehlo(hostname="client.example"),
        Mail(sender="a@example.org"),
        (Rcpt(recipient="b@example.org")),
        Data(),
    )
    content, end = Content(data=BODY), EndOfContent()

    def events(conn: ClientConnection, reply: bytes) -> Any:
        conn.receive_data(reply)
        last = None
        while (event := conn.next_event()) is not NEED_DATA:
            last = event
        return last

    def session() -> None:
        nonlocal ehlo, mail, rcpt
        if build_commands:  # validation in the constructors, as a caller would pay it
            ehlo = Ehlo(hostname="client.example")
            mail = Mail(sender="a@example.org")
            rcpt = Rcpt(recipient="b@example.org")
        conn = ClientConnection(shared if shared_config else ClientConfig(parser_factory=parser))
        events(conn, GREETING)
        wire = conn.send(ehlo)
        events(conn, EHLO_REPLY)
        if pipelined:
            wire += conn.send(mail) + conn.send(rcpt) + conn.send(data)
            events(conn, OK_MAIL + OK_RCPT + GO_DATA)
        else:
            wire += conn.send(mail)
            events(conn, OK_MAIL)
            wire += conn.send(rcpt)
            events(conn, OK_RCPT)
            wire += conn.send(data)
            events(conn, GO_DATA)
        wire += conn.send(content) + conn.send(end)
        result = events(conn, QUEUED)
        assert isinstance(result, TransactionResult) and result.delivered
        assert len(wire) > 1024

    return session


# -- agronholm's smtpproto 2.0 (run inside its own venv) --------------------------------


def agronholm() -> Any:
    from email.message import EmailMessage

    from smtpproto.protocol import SMTPClientProtocol  # theirs, in their venv

    message = EmailMessage()
    message["From"] = "a@example.org"
    message["To"] = "b@example.org"
    message["Subject"] = "bench"
    message.set_content((LINE * 14).decode()[: 1024 - 60])

    def session() -> None:
        proto = SMTPClientProtocol()
        proto.feed_bytes(GREETING)
        proto.send_greeting("client.example")
        wire = proto.get_outgoing_data()
        proto.feed_bytes(EHLO_REPLY)
        proto.mail("a@example.org")
        wire += proto.get_outgoing_data()
        proto.feed_bytes(OK_MAIL)
        proto.recipient("b@example.org")
        wire += proto.get_outgoing_data()
        proto.feed_bytes(OK_RCPT)
        proto.start_data()
        wire += proto.get_outgoing_data()
        proto.feed_bytes(GO_DATA)
        proto.data(message)
        wire += proto.get_outgoing_data()
        response = proto.feed_bytes(QUEUED)
        assert response is not None and response.code == 250
        assert len(wire) > 1024

    return session


def run_reference(python: str) -> float:
    """The reference loop in a fresh interpreter (same heap state for both sides)."""
    result = subprocess.run(
        [python, "-I", str(Path(__file__).resolve()), "--reference"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return float(result.stdout)


def run_peer(venv: Path) -> dict[str, float] | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    result = subprocess.run(
        [str(python), "-I", str(Path(__file__).resolve()), "--agronholm"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        print(f"agronholm smtpproto run failed:\n{result.stderr}", file=sys.stderr)
        return None
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/agron"))
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-round order")
    parser.add_argument("--quick", action="store_true", help="fewer transactions: a smoke run")
    parser.add_argument("--agronholm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agronholm:
        rate = rate_of(agronholm())
        print(json.dumps({"tps": rate, "reference": run_reference(sys.executable)}))
        return
    if args.reference:
        print(reference_loop())
        return

    from micro import run_interleaved, spread_of  # bench/ modules: not in the -I runs
    from stats import Spread

    from smtpproto.wire.twins import CReplyParser, PyReplyParser

    twins = [("python parser", PyReplyParser)]
    if CReplyParser is not None:
        twins.insert(0, ("compiled parser", CReplyParser))
    sessions: dict[str, Any] = {}
    for name, twin in twins:
        for pipelined in (False, True):
            label = f"smtpproto (ours, {name}, {'pipelined' if pipelined else 'lock-step'})"
            sessions[label] = ours(twin, pipelined=pipelined)
    label = f"smtpproto (ours, {twins[0][0]}, lock-step, new commands)"
    sessions[label] = ours(twins[0][1], pipelined=False, build_commands=True)
    # Every round measures every row (shuffled order) and, in the same round, the
    # reference loop here and the peer with its own reference loop; ratios are paired
    # within a round, then the median over the rounds is printed with the min-max.
    count = 100 if args.quick else RUNS * TRANSACTIONS
    rows: dict[str, Any] = {
        label: (lambda s=session: rate_of(s, count)) for label, session in sessions.items()
    }
    rows[REFERENCE] = lambda: 1.0 / run_reference(sys.executable)  # loops per second
    peer_seen = run_peer(args.venv) is not None
    if peer_seen:
        rows[PEER] = lambda: _peer_normalised(args.venv)
    rounds = run_interleaved(rows, args.rounds, args.seed)
    print(f"\nmedian over {args.rounds} rounds (min-max); ratios paired within each round")
    for label in sessions:
        line = f"{label:<58} {spread_of(rounds, label).format(',.0f')} transactions/s"
        if peer_seen:
            ours_normalised = [r[label] / r[REFERENCE] for r in rounds]  # per reference loop
            ratios = [o / r[PEER] for o, r in zip(ours_normalised, rounds, strict=True)]
            line += f"   {Spread.of(ratios).format('.2f', 'x')} agronholm (per reference loop)"
        print(line)
    if not peer_seen:
        print(f"agronholm smtpproto 2.0: not available (no venv at {args.venv})")


def _peer_normalised(venv: Path) -> float:
    """The peer's transactions per its own reference loop (its rate x loop seconds)."""
    result = run_peer(venv)
    if result is None:
        raise SystemExit("the agronholm run failed mid-benchmark")
    return result["tps"] * result["reference"]


if __name__ == "__main__":
    main()
