"""The oracles: what a finding means, decided from an ``Observation`` alone (no I/O).

Every probe marks the client write that should provoke the flaw with ``"trigger": true``
(the mark survives minimisation and the file format), and names its oracle and
parameters in the transcript header, so ``smtpproto replay`` re-applies the same verdict.
An oracle returns ``None`` (nothing wrong) or one line saying what the server did.

Reply accounting: a correct server sends one reply for the banner and ``expect`` replies
for each write (the recorder stores ``expect`` on ``c2s`` events). ``reply_index`` is the
position of the first reply to the trigger in that count.

=============== ================================================================
``smuggling``    the write carrying a non-standard end-of-data got a 2xx first *and*
                 more replies than a correct server sends: the fake end was taken as
                 the end of the message and the bytes after it ran as commands
                 (RFC 5321 §4.1.1.4, §2.3.8; CVE-2023-51764/51765/51766, CVE-2024-27305).
``unsolicited``  bytes arrived after the trigger (a TLS handshake) before the client
                 said anything: plaintext pipelined behind STARTTLS was executed inside
                 TLS (RFC 3207 §4.2, §5; CVE-2011-0411, CVE-2021-33515, CVE-2024-34083).
``accepted``     the reply to the trigger is 2xx/3xx although the RFC demands a refusal
                 (state violations, permissive syntax, authentication bypass), and every
                 write before it succeeded (so the state was really reached), except
                 writes marked ``may_fail`` (a failed AUTH before a bypass attempt).
``crash``        a connection ended (EOF/RST) without a 421/221 (before QUIT), and
                 a fresh connection afterwards failed (refused, no banner) or got a
                 changed banner (a 421 greeting excepted: a busy server is alive): the
                 server died. (A dropped session alone is not reported: a server may
                 hang up.)
``hang``         no byte at all after the trigger until the connection was closed, while
                 the server answered before (the probe also checks a control input).
``invalid``      the strict reply parser refused the server's output, a reply stopped
                 half-way (a read ran into its deadline inside a reply), or a reply code
                 the RFC does not allow: a greeting other than 220/4yz/5yz, a success to
                 QUIT other than 221, to NOOP or RSET other than 250 (RFC 5321 §4.2,
                 §4.3).
``count``        the connection got more replies than commands, or fewer while QUIT
                 was still answered (a dropped reply) (RFC 5321 §4.2, RFC 2920 §3.1).
``slow``         the reply to the trigger took ``params["seconds"]`` or more (resource
                 exhaustion: cost growing faster than the input).
``advertises``   the reply to the trigger (an EHLO after TLS) lists the keyword in
                 ``params["keyword"]`` (RFC 3207 §4.2: no STARTTLS after TLS).
=============== ================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .observation import ConnResult, Observation, ParsedReply, parse, stalled_reply
from .transcript import Event

__all__ = [
    "ORACLES",
    "is_trigger",
    "judge",
    "prefix_succeeded",
    "reply_index",
    "trigger_position",
]

Oracle = Callable[[Observation, Mapping[str, Any]], str | None]


def is_trigger(event: Event) -> bool:
    """True for the write a probe marked as the one that should provoke the flaw."""
    return bool(event.extra.get("trigger"))


def trigger_position(conn: ConnResult) -> int | None:
    """The position in ``conn.steps`` of the trigger write, if this connection has one."""
    for position, step in enumerate(conn.steps):
        if step.event is not None and is_trigger(step.event):
            return position
    return None


def _trigger_conn(obs: Observation) -> tuple[ConnResult, int] | None:
    for conn in obs.conns:
        position = trigger_position(conn)
        if position is not None:
            return conn, position
    return None


def _expected(conn: ConnResult, upto: int | None = None) -> int:
    """Replies a correct server sends for steps ``[0, upto)`` (banner included)."""
    total = 1 if conn.steps else 0
    for step in conn.steps[:upto]:
        if step.event is not None and step.event.dir == "c2s":
            total += step.event.expect or 0
    return total


def reply_index(conn: ConnResult, position: int) -> int:
    """Index (in the connection's replies) of the first reply to the step at ``position``."""
    return _expected(conn, position)


def _reply_at(replies: list[ParsedReply], index: int) -> ParsedReply | None:
    return replies[index] if 0 <= index < len(replies) else None


def prefix_succeeded(conn: ConnResult, replies: list[ParsedReply], position: int) -> bool:
    """True when every write before ``position`` got only 2xx/3xx replies (the state the
    probe needs was really reached), except writes marked ``may_fail``."""
    index = 1
    if not replies or replies[0].reply.code // 100 != 2:
        return False
    for step in conn.steps[1:position]:
        event = step.event
        if event is None or event.dir != "c2s" or not event.expect:
            continue
        for offset in range(event.expect):
            got = _reply_at(replies, index + offset)
            if got is None:
                return False
            if got.reply.code // 100 not in (2, 3) and not event.extra.get("may_fail"):
                return False
        index += event.expect
    return True


def _smuggling(obs: Observation, params: Mapping[str, Any]) -> str | None:
    found = _trigger_conn(obs)
    if found is None:
        return None
    conn, position = found
    replies, _ = parse(conn)
    first = _reply_at(replies, reply_index(conn, position))
    expected = _expected(conn)
    if first is None or first.reply.code // 100 != 2 or len(replies) <= expected:
        return None
    extra = [str(r.reply.code) for r in replies[reply_index(conn, position) :]]
    return (
        f"the message ended at the non-standard end-of-data and the bytes after it ran as "
        f"commands: {len(replies)} replies where a correct server sends {expected} "
        f"(replies from the trigger on: {' '.join(extra)})"
    )


def _unsolicited(obs: Observation, params: Mapping[str, Any]) -> str | None:
    found = _trigger_conn(obs)
    if found is None:
        return None
    conn, position = found
    data = conn.steps[position].received
    if not data:
        return None
    return (
        f"{len(data)} bytes arrived after the TLS handshake before the client sent "
        f"anything: {data[:80]!r}"
    )


def _accepted(obs: Observation, params: Mapping[str, Any]) -> str | None:
    found = _trigger_conn(obs)
    if found is None:
        return None
    conn, position = found
    replies, _ = parse(conn)
    got = _reply_at(replies, reply_index(conn, position))
    if got is None or got.step < position or not prefix_succeeded(conn, replies, position):
        return None
    bad = tuple(params.get("codes", (2, 3)))
    code = got.reply.code
    if code // 100 in bad or code in bad:
        text = got.reply.text.replace("\n", " | ")[:100]
        return f"the server answered {code} {text!r} where a refusal is required"
    return None


def crashed_conn(obs: Observation) -> ConnResult | None:
    """The first connection the server ended (EOF/RST) without a 421 or 221 and without
    a grammar error; ``None`` if there is none. (Only a failed liveness check afterwards
    makes it a crash: a server may hang up after a 5yz.)"""
    for conn in obs.conns:
        if not conn.peer_closed or conn.ended_after < 0:
            continue
        replies, error = parse(conn)
        if error is None and not any(r.reply.code in (421, 221) for r in replies):
            return conn
    return None


def _crash(obs: Observation, params: Mapping[str, Any]) -> str | None:
    conn = crashed_conn(obs)
    if conn is None:
        return None
    how = "reset" if conn.end == "reset" else "closed"
    live = obs.liveness
    if live is not None and not live.alive:
        return (
            f"server crash: the connection was {how} with replies still due and no 421, "
            f"then a fresh connection failed ({live.detail})"
        )
    banner = conn.steps[0].received[:4] if conn.steps else b""
    # A 421 greeting is a live server that is busy or rate-limiting (RFC 5321 §3.8,
    # §4.2.3: service not available, closing): not the changed banner of a crash.
    busy = live is not None and live.banner[:4] in (b"421 ", b"421-")
    if live is not None and banner and live.banner[:4] != banner and not busy:
        return (
            f"server crash: the connection was {how} with replies still due, and the "
            f"banner changed to {live.banner[:60]!r}"
        )
    return None


def _hang(obs: Observation, params: Mapping[str, Any]) -> str | None:
    found = _trigger_conn(obs)
    if found is None:
        return None
    conn, position = found
    if conn.peer_closed and conn.ended_after <= position + 1:
        return None
    if _expected(conn, position) > len(parse(conn)[0]):
        return None  # the server was not keeping up before the trigger
    if any(step.received for step in conn.steps[position:]):
        return None
    waited = sum(step.elapsed for step in conn.steps[position:])
    if waited < float(params.get("bound", 0.0)):
        return None
    return f"no reply at all to the trigger within {waited:.1f} s"


#: Commands whose success reply has exactly one code (RFC 5321 §4.3.2).
_SUCCESS_CODE = {b"QUIT\r\n": 221, b"NOOP\r\n": 250, b"RSET\r\n": 250}


def _wrong_code(conn: ConnResult, replies: list[ParsedReply]) -> str | None:
    """A greeting that is neither 220 nor a refusal, or a success reply to QUIT, NOOP or
    RSET with another code than the one RFC 5321 §4.3.2 allows. Replies are matched to
    commands by count, so only on a connection that got exactly the replies due."""
    if replies and replies[0].reply.code // 100 == 2 and replies[0].reply.code != 220:
        return f"the greeting has code {replies[0].reply.code}, not 220 (RFC 5321 §4.3.1)"
    if len(replies) != _expected(conn):
        return None  # the accounting is off (a mutated write held two commands, ...)
    for position, step in enumerate(conn.steps):
        event = step.event
        if event is None or event.dir != "c2s" or event.data not in _SUCCESS_CODE:
            continue
        got = _reply_at(replies, reply_index(conn, position))
        want = _SUCCESS_CODE[event.data]
        if got is None or got.step < position:
            continue
        if got.reply.code // 100 == 2 and got.reply.code != want:
            verb = event.data.strip().decode()
            return f"{verb} was answered {got.reply.code}, not {want} (RFC 5321 §4.3.2)"
    return None


def _invalid(obs: Observation, params: Mapping[str, Any]) -> str | None:
    for conn in obs.conns:
        replies, error = parse(conn)
        if error is not None:
            return f"the server's output breaks the reply grammar: {error}"
        wrong = _wrong_code(conn, replies)
        if wrong is not None:
            return wrong
        stalled = stalled_reply(conn)
        if stalled is not None:
            return f"the server stopped in the middle of a reply: {stalled!r}"
    return None


def _count(obs: Observation, params: Mapping[str, Any]) -> str | None:
    found = _trigger_conn(obs)
    if found is None:
        return None
    conn = found[0]
    replies, error = parse(conn)
    if error is not None:
        return None
    expected = _expected(conn)
    if len(replies) > expected:
        return f"{len(replies)} replies on the connection where {expected} were due"
    in_sync = bool(replies) and replies[-1].reply.code == 221
    if len(replies) < expected and in_sync:
        return (
            f"{len(replies)} replies on the connection where {expected} were due "
            "(a reply was dropped, QUIT still answered)"
        )
    return None


def _advertises(obs: Observation, params: Mapping[str, Any]) -> str | None:
    found = _trigger_conn(obs)
    if found is None:
        return None
    conn, position = found
    replies, _ = parse(conn)
    got = _reply_at(replies, reply_index(conn, position))
    keyword = str(params.get("keyword", "STARTTLS")).upper()
    if got is None or got.reply.code != 250:
        return None
    for line in got.reply.lines[1:]:
        if line.split(" ", 1)[0].upper() == keyword:
            return f"EHLO after the TLS handshake still advertises {keyword}"
    return None


def _slow(obs: Observation, params: Mapping[str, Any]) -> str | None:
    found = _trigger_conn(obs)
    if found is None:
        return None
    conn, position = found
    step = conn.steps[position]
    bound = float(params.get("seconds", 0.0))
    if bound <= 0 or step.elapsed < bound or not step.received:
        return None
    return f"the reply to the trigger took {step.elapsed:.2f} s (bound {bound:.2f} s)"


ORACLES: dict[str, Oracle] = {
    "slow": _slow,
    "smuggling": _smuggling,
    "unsolicited": _unsolicited,
    "accepted": _accepted,
    "crash": _crash,
    "hang": _hang,
    "invalid": _invalid,
    "count": _count,
    "advertises": _advertises,
}


def judge(oracle: str, obs: Observation, params: Mapping[str, Any] | None = None) -> str | None:
    """Apply the named oracle; ``KeyError`` for an unknown name."""
    return ORACLES[oracle](obs, params or {})
