"""The client rows: one connection, ``count`` messages, to an SMTP server on loopback.

Each row is a function ``(host, port, workload) -> Sample`` in ``ROWS``; it opens one
session (connect to QUIT, all inside the measured span), sends ``workload.count``
copies of the message and returns the wall time and the client's CPU time. In-process
rows use ``measure.timed`` (``time.process_time`` of this process: the server is
another process, so only the client is counted); ``smtp-source`` is a C program, whose
CPU comes from the kernel's accounting of that child (``measure.run_program``).

Rows:

* ``floor`` — ``floor.deliver``: a raw pipelined socket, the least Python can do;
* ``smtp-source`` — Postfix's C client, ``-d -s 1`` (one session; it does not
  pipeline), its own headers plus a body making the same size;
* ``smtplib`` / ``aiosmtplib`` — their ``sendmail`` once per message (lock-step
  MAIL/RCPT/DATA for smtplib; aiosmtplib pipelines MAIL/RCPT when offered);
* ``blocking|asyncio|trio send_many`` — smtpproto's ``send_many`` over a generator of
  the messages: one round trip per message with PIPELINING (RFC 2920 §3.1);
* ``blocking|asyncio|trio sendmail`` — smtpproto's ``sendmail`` once per message (two
  round trips each: the envelope group up to DATA's 354, then the content).

``REFERENCES`` are the rows every other row is divided by, round by round.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

import aiosmtplib
import trio
from floor import deliver
from measure import Sample, run_program, timed
from peers import find_postfix_tool
from workload import Workload

from smtpproto import TransactionResult
from smtpproto.asyncio_client import AsyncSMTPClient
from smtpproto.blocking import SMTPClient
from smtpproto.trio_client import TrioSMTPClient

__all__ = ["REFERENCES", "ROWS", "Row"]

Row = Callable[[str, int, Workload], Sample]
Session = Callable[[], Coroutine[Any, Any, None]]
ROWS: dict[str, Row] = {}
REFERENCES = ("floor", "smtp-source", "smtplib", "aiosmtplib")
TIMEOUT = 600.0


def _row(name: str) -> Callable[[Row], Row]:
    def register(function: Row) -> Row:
        ROWS[name] = function
        return function

    return register


def _batch(workload: Workload) -> Iterator[tuple[str, tuple[str, ...], bytes]]:
    for _ in range(workload.count):
        yield workload.sender, workload.recipients, workload.message


def _check(outcomes: Sequence[object], count: int) -> None:
    """Every message of a ``send_many`` run was accepted (else the number is void)."""
    accepted = sum(isinstance(outcome, TransactionResult) for outcome in outcomes)
    if accepted != count:
        raise RuntimeError(f"send_many: {accepted} of {count} accepted: {outcomes[:3]!r}")


@_row("floor")
def floor(host: str, port: int, work: Workload) -> Sample:
    return timed(
        lambda: deliver(host, port, work.sender, work.recipients[0], work.message, work.count),
        work.count,
    )


@_row("smtp-source")
def smtp_source(host: str, port: int, work: Workload) -> Sample:
    argv = [
        str(find_postfix_tool("smtp-source")),
        "-d", "-s", "1",
        "-m", str(work.count),
        "-l", str(work.size - work.header_size),
        "-M", "bench.example",
        "-f", work.sender,
        "-t", work.recipients[0],
        f"{host}:{port}",
    ]  # fmt: skip
    return run_program(argv, work.count, TIMEOUT)


@_row("smtplib")
def smtplib_sendmail(host: str, port: int, work: Workload) -> Sample:
    def session() -> None:
        with smtplib.SMTP(host, port, timeout=TIMEOUT) as client:
            for _ in range(work.count):
                client.sendmail(work.sender, list(work.recipients), work.message)

    return timed(session, work.count)


@_row("aiosmtplib")
def aiosmtplib_sendmail(host: str, port: int, work: Workload) -> Sample:
    async def session() -> None:
        client = aiosmtplib.SMTP(hostname=host, port=port, timeout=TIMEOUT, start_tls=False)
        await client.connect()
        try:
            for _ in range(work.count):
                await client.sendmail(work.sender, list(work.recipients), work.message)
        finally:
            await client.quit()

    return timed(lambda: asyncio.run(session()), work.count)


def _blocking(many: bool) -> Row:
    def row(host: str, port: int, work: Workload) -> Sample:
        def session() -> None:
            with SMTPClient(host, port, tls="none", timeout=TIMEOUT) as client:
                if many:
                    _check(client.send_many(_batch(work)), work.count)
                    return
                for _ in range(work.count):
                    client.sendmail(work.sender, work.recipients, work.message)

        return timed(session, work.count)

    return row


AsyncClient = type[AsyncSMTPClient] | type[TrioSMTPClient]


def _async(client_class: AsyncClient, run: Callable[[Session], object], many: bool) -> Row:
    """A row for an async adapter: ``run`` is how its event loop runs a session."""

    def row(host: str, port: int, work: Workload) -> Sample:
        async def session() -> None:
            async with client_class(host, port, tls="none", timeout=TIMEOUT) as client:
                if many:
                    _check(await client.send_many(_batch(work)), work.count)
                    return
                for _ in range(work.count):
                    await client.sendmail(work.sender, work.recipients, work.message)

        return timed(lambda: run(session), work.count)

    return row


def _asyncio_run(session: Session) -> object:
    return asyncio.run(session())


for _many, _verb in ((True, "send_many"), (False, "sendmail")):
    ROWS[f"blocking {_verb}"] = _blocking(_many)
    ROWS[f"asyncio {_verb}"] = _async(AsyncSMTPClient, _asyncio_run, _many)
    ROWS[f"trio {_verb}"] = _async(TrioSMTPClient, trio.run, _many)
