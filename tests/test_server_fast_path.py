"""The server's fast path for plain transaction lines (``fast_command`` and
``ServerConnection._plain_event``) against the general path it short-cuts.

The fast path may only recognise what the general path takes unchanged: for every
line it recognises, ``split_verb`` + ``parse_mail``/``parse_rcpt`` give the same event,
and a connection with the fast path on behaves exactly as one with it off (events,
state, credentials window, pipelining flags), whatever the line, the state, the
extensions, the replies and the chunking.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto.server_engine import commands
from smtpproto.server_engine import connection as engine_connection
from smtpproto.server_engine.commands import (
    fast_command,
    parse_mail,
    parse_rcpt,
    plain_event,
    split_verb,
)
from smtpproto.server_engine.config import ServerConfig
from smtpproto.server_engine.connection import ServerConnection
from smtpproto.server_engine.events import (
    PAUSED,
    AuthCancelled,
    AuthRequested,
    AuthResponse,
    ClientDisconnected,
    CommandRejected,
    ContentReceived,
    DataRequested,
    EhloReceived,
    MailReceived,
    QuitReceived,
    RcptReceived,
    ResetReceived,
    ServerEvent,
    StartTLSRequested,
)
from smtpproto.server_engine.replies import ehlo_reply, greeting
from smtpproto.wire.grammar import SyntaxErrorInCommand
from smtpproto.wire.need_data import NEED_DATA
from smtpproto.wire.reply import Reply

ATEXT = "abcXYZ019!#$%&'*+-/=?^_`{|}~"
local_parts = st.one_of(
    st.text(ATEXT + ".", min_size=0, max_size=70),
    st.sampled_from(["a", "a" * 64, "a" * 65, "a.b", ".a", "a.", "a..b", '"q"', "a b", "é"]),
)
labels = st.one_of(
    st.text("abz09-", min_size=0, max_size=12),
    st.sampled_from(["x" * 63, "x" * 64, "-a", "a-", "[127.0.0.1]", "ü"]),
)
domains = st.lists(labels, min_size=1, max_size=4).map(".".join)
mailboxes = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains),
    st.sampled_from(["", "postmaster", "Postmaster", "@a.b:c@d.e", "a@" + "b" * 63 + ".c"]),
)
params = st.sampled_from(["", " ", " SIZE=10", " BODY=8BITMIME", " SMTPUTF8", " NOTIFY=NEVER"])


def _line(verb: str, path: str, param: str, space: str, case: int) -> bytes:
    text = f"{verb}{space}<{path}>{param}" if path is not None else verb
    if case == 1:
        text = text.lower()
    elif case == 2:
        text = text[:3].lower() + text[3:]
    return text.encode("utf-8")


mail_lines = st.builds(
    _line,
    st.just("MAIL FROM:"),
    mailboxes,
    params,
    st.sampled_from(["", " ", "  "]),
    st.integers(0, 2),
)
rcpt_lines = st.builds(
    _line,
    st.just("RCPT TO:"),
    mailboxes,
    params,
    st.sampled_from(["", " ", "  "]),
    st.integers(0, 2),
)
bare_lines = st.sampled_from(
    [b"DATA", b"data", b"RSET", b"NOOP", b"QUIT", b"Quit", b"DATA ", b"RSET x", b"NOOP hi"]
)
other_lines = st.sampled_from(
    [
        b"EHLO client.test",
        b"AUTH LOGIN",
        b"AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=",
        b"dXNlcg==",
        b"cGFzcw==",
        b"HELP",
        b"VRFY a@b",
        b"MAIL FROM:<a@b>\x00",
        b"MAIL FROM:<a@b>\rRCPT TO:<c@d>",
        b"MAIL\tFROM:<a@b>",
        b"XYZZY",
    ]
)
command_lines = st.one_of(mail_lines, rcpt_lines, bare_lines, other_lines, st.binary(max_size=40))
#: Mostly plain transaction lines (the fast path's input), in any order, with the rest.
plain_lines = st.sampled_from(
    [b"MAIL FROM:<a@x.test>", b"mail from:<>", b"RCPT TO:<b@y.test>", b"DATA", b"RSET", b"NOOP"]
)
session_lines = st.one_of(plain_lines, plain_lines, plain_lines, command_lines)

EXTENSIONS = [
    "PIPELINING",
    "8BITMIME",
    "SMTPUTF8",
    "DSN",
    "SIZE 100000",
    "AUTH LOGIN PLAIN",
    "LIMITS RCPTMAX=2 MAILMAX=2",
]


@settings(max_examples=400, deadline=None)
@given(line=command_lines, smtputf8=st.booleans())
def test_what_fast_command_recognises_the_general_parser_takes_unchanged(
    line: bytes, smtputf8: bool
) -> None:
    recognised = fast_command(line)
    if recognised is None:
        return
    verb, mailbox = recognised
    general_verb, args = split_verb(line)
    assert general_verb.encode("ascii") == verb
    extensions = {keyword.split()[0]: "" for keyword in EXTENSIONS}
    if verb == b"MAIL":
        assert parse_mail(args, extensions, None) == MailReceived(
            sender=mailbox, params=MappingProxyType({})
        )
        assert parse_mail(args, {}, 10) == MailReceived(sender=mailbox, params={})
    elif verb == b"RCPT":
        expected = RcptReceived(recipient=mailbox, params={})
        assert parse_rcpt(args, extensions, smtputf8) == expected
        assert parse_rcpt(args, {}, False) == expected
    else:
        assert args == b"" and mailbox == ""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"MAIL FROM:<>", (b"MAIL", "")),
        (b"mail from:<a@b.c>", (b"MAIL", "a@b.c")),
        (b"RCPT TO:<" + b"l" * 64 + b"@x.test>", (b"RCPT", "l" * 64 + "@x.test")),
        (b"RCPT TO:<" + b"l" * 65 + b"@x.test>", None),  # local part over 64 octets
        (b"DATA", (b"DATA", "")),
        (b"DATA x", None),
        (b"MAIL FROM:<a@b> SIZE=1", None),
        (b"MAIL FROM: <a@b>", None),
        (b"RCPT TO:<postmaster>", None),
        (b"RCPT TO:<a@[127.0.0.1]>", None),
    ],
)
def test_fast_command_examples(line: bytes, expected: tuple[bytes, str] | None) -> None:
    assert fast_command(line) == expected


def _path_of(length: int) -> bytes:
    """A ``<local@domain>`` path of exactly ``length`` octets (brackets included)."""
    domain = ".".join(["d" * 60] * 4)[: length - 2 - 2 - 10].rstrip(".")
    local = "l" * (length - 2 - 1 - len(domain))
    path = f"<{local}@{domain}>".encode("ascii")
    assert len(path) == length and len(local) <= 64
    return path


@pytest.mark.parametrize("length", [256, 257])
def test_fast_command_takes_a_path_up_to_256_octets_like_the_general_path(length: int) -> None:
    line = b"MAIL FROM:" + _path_of(length)
    recognised = fast_command(line)
    try:
        general = parse_mail(split_verb(line)[1], {}, None)
    except SyntaxErrorInCommand:
        assert length == 257 and recognised is None
    else:
        assert length == 256 and recognised == (b"MAIL", general.sender)


def _answer(event: ServerEvent, accept: bool, extensions: list[str]) -> Reply:
    if isinstance(event, CommandRejected):
        return event.reply
    if isinstance(event, StartTLSRequested):
        return Reply(454, (b"4.7.0 no TLS today",))
    if isinstance(event, EhloReceived) and accept:
        return ehlo_reply("mx.test", extensions)
    if isinstance(event, QuitReceived):
        return Reply(221, (b"bye",))
    if not accept:
        return Reply(550, (b"5.0.0 no",))
    if isinstance(event, DataRequested):
        return Reply(354, (b"go ahead",))
    if isinstance(event, AuthRequested):
        return Reply(334, (b"",))
    if isinstance(event, (AuthResponse, AuthCancelled)):
        return Reply(235, (b"2.7.0 ok",))
    return Reply(250, (b"2.0.0 ok",))


def _snapshot(conn: ServerConnection) -> tuple[object, ...]:
    return (
        conn.state,
        conn.sender,
        conn.recipients,
        conn.error_count,
        conn.replies_due,
        conn._credentials_window,
        conn._verb,
        conn._pending,
        conn._early,
        conn.authenticated,
        conn._mail_commands,
    )


def _run(
    conn: ServerConnection,
    chunks: list[bytes],
    accepts: list[bool],
    extensions: list[str],
    ehlo: bool = True,
    by_line: bool = False,
) -> list[tuple[object, ...]]:
    """The session's trace: every event, reply (octets) and state. ``by_line`` offers each
    chunk to ``receive_line``, then to ``receive_content``, as the built-in server does
    (a ``None`` must leave everything as it was)."""
    trace: list[tuple[object, ...]] = []
    conn.send(greeting("mx.test"))
    if ehlo:
        conn.receive_data(b"EHLO client.test\r\n")
        conn.next_event()
        conn.send(ehlo_reply("mx.test", extensions))
    answers = iter(accepts * 200)
    for chunk in chunks:
        made: list[ServerEvent] = []  # events made by receive_line or receive_content
        taken = False  # one of them took the chunk
        if by_line:
            before = (_snapshot(conn), bytes(conn._buf), conn._pending_event)
            first = conn.receive_line(chunk)
            taken = first is not None
            if first is not None:
                made.append(first)
            else:
                assert (_snapshot(conn), bytes(conn._buf), conn._pending_event) == before
                try:
                    content = conn.receive_content(chunk)
                except Exception as error:
                    trace.append(("error", type(error), str(error)))
                    return trace
                taken = content is not None
                if content is None:
                    assert (_snapshot(conn), bytes(conn._buf), conn._pending_event) == before
                else:
                    made.extend(event for event in content if event is not None)
        if not taken:
            conn.receive_data(chunk)
        made.reverse()
        for _ in range(1000):  # bounded: a chunk may hold a dozen whole transactions
            try:
                event = made.pop() if made else conn.next_event()
            except Exception as error:
                trace.append(("error", type(error), str(error)))
                return trace
            if not isinstance(event, ServerEvent):
                trace.append((event, _snapshot(conn)))
                break
            # No state with content: ``receive_content`` makes the end of the content with
            # it, so the state is already the end's (checked at the next event).
            state = None if isinstance(event, ContentReceived) else _snapshot(conn)
            trace.append((event, event.unauthorized_pipelining, state))
            if isinstance(event, ClientDisconnected):  # EOF (an empty chunk): reported
                return trace
            if event.expects_reply:
                wire = conn.send(_answer(event, next(answers), extensions))
                trace.append(("sent", wire, _snapshot(conn)))
        else:
            raise AssertionError("no pause within 1000 events")
        if conn.state.name in ("CLOSED", "ERROR"):
            break
    return trace


def _agree(
    config: ServerConfig,
    chunks: list[bytes],
    accepts: list[bool],
    extensions: list[str],
    ehlo: bool = True,
    lmtp: bool = False,
) -> None:
    """The general path, the fast path, and the fast path with ``receive_line`` give the
    same trace."""
    general = ServerConnection(config=config, lmtp=lmtp)
    general._fast_path = False
    expected = _run(general, chunks, accepts, extensions, ehlo)
    fast = ServerConnection(config=config, lmtp=lmtp)
    assert _run(fast, chunks, accepts, extensions, ehlo) == expected, chunks
    by_line = ServerConnection(config=config, lmtp=lmtp)
    assert _run(by_line, chunks, accepts, extensions, ehlo, by_line=True) == expected, chunks


@settings(max_examples=500, deadline=None)
@given(
    lines=st.lists(session_lines, min_size=1, max_size=16),
    group=st.integers(1, 4),
    accepts=st.lists(st.booleans(), min_size=1, max_size=5),
    extensions=st.lists(st.sampled_from(EXTENSIONS), unique=True),
    reject_early=st.booleans(),
    max_recipients=st.integers(1, 3),
)
def test_a_connection_behaves_the_same_with_and_without_the_fast_path(
    lines: list[bytes],
    group: int,
    accepts: list[bool],
    extensions: list[str],
    reject_early: bool,
    max_recipients: int,
) -> None:
    stream = b"".join(
        line + b"\r\n" + (b"hi\r\n.\r\n" if line == b"DATA" else b"") for line in lines
    )
    chunks = [stream[i : i + 40 * group] for i in range(0, len(stream), 40 * group)]
    config = ServerConfig(
        max_recipients=max_recipients,
        unauthorized_pipelining="reject" if reject_early else "flag",
    )
    _agree(config, chunks, accepts, extensions)


MAIL = b"MAIL FROM:<a@x.test>\r\n"
RCPT = b"RCPT TO:<b@y.test>\r\n"
SCENARIOS = {
    "nested MAIL": ([MAIL, MAIL], ["PIPELINING"]),
    "RCPT before MAIL": ([RCPT, MAIL, RCPT], ["PIPELINING"]),
    "RCPT past max_recipients": ([MAIL, RCPT, RCPT, RCPT], ["PIPELINING"]),
    "RCPT past LIMITS RCPTMAX": ([MAIL, RCPT, RCPT], ["PIPELINING", "LIMITS RCPTMAX=1"]),
    "MAIL past LIMITS MAILMAX": (
        [MAIL, b"RSET\r\n", MAIL, b"RSET\r\n", MAIL],
        ["PIPELINING", "LIMITS MAILMAX=2"],
    ),
    "DATA before RCPT": ([MAIL, b"DATA\r\n", RCPT, b"DATA\r\n", b"x\r\n.\r\n"], []),
    "DATA after BDAT": ([MAIL, RCPT, b"BDAT 1\r\nx", b"DATA\r\n"], ["CHUNKING"]),
    "DATA with BODY=BINARYMIME": (
        [b"MAIL FROM:<a@x.test> BODY=BINARYMIME\r\n", RCPT, b"DATA\r\n"],
        ["CHUNKING", "BINARYMIME"],
    ),
    "plain lines pipelined without PIPELINING": ([MAIL + RCPT + b"DATA\r\nNOOP\r\n"], []),
    "credentials window closed by a plain MAIL": (
        [b"AUTH LOGIN\r\n", MAIL, b"dXNlcg==\r\n", b"cGFzcw==\r\n"],
        [],
    ),
    "credentials window inside AUTH": (
        [b"AUTH LOGIN\r\n", b"RSET\r\n", b"NOOP\r\n", b"dXNlcg==\r\n"],
        ["AUTH LOGIN"],
    ),
    "RSET, NOOP, QUIT": ([MAIL, b"RSET\r\n", b"NOOP\r\n", b"QUIT\r\n"], []),
    "EOF after a plain line": ([MAIL, b""], []),
    "EOF inside a plain line": ([b"MAIL FROM:<a@x", b""], []),
    "EOF inside DATA content": ([MAIL, RCPT, b"DATA\r\n", b"Subject: x\r\n\r\nbo", b""], []),
    "EOF right after the 354": ([MAIL, RCPT, b"DATA\r\n", b""], []),
    "EOF after the end of the content": ([MAIL, RCPT, b"DATA\r\n", b"x\r\n.\r\n", b""], []),
}


@pytest.mark.parametrize("reject_early", [False, True])
@pytest.mark.parametrize("accepts", [[True], [False], [True, False], [False, True, True]])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_fast_path_guard_leaves_the_line_to_the_general_path(
    scenario: str, accepts: list[bool], reject_early: bool
) -> None:
    chunks, extensions = SCENARIOS[scenario]
    config = ServerConfig(
        max_recipients=2, unauthorized_pipelining="reject" if reject_early else "flag"
    )
    _agree(config, chunks, accepts, extensions)


def test_a_plain_transaction_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import smtpproto.server_engine.connection as module

    def refuse(*args: object) -> object:
        raise AssertionError("the general parser ran")

    conn = ServerConnection()
    conn.send(greeting("mx.test"))
    conn.receive_data(b"EHLO c\r\n")
    conn.next_event()
    conn.send(ehlo_reply("mx.test", ["PIPELINING"]))
    for name in ("parse_mail", "parse_rcpt", "split_verb", "line_verb"):
        monkeypatch.setattr(module, name, refuse)
    replies = {MailReceived: 250, RcptReceived: 250, DataRequested: 354}
    conn.receive_data(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
    for expected in (MailReceived, RcptReceived, DataRequested):
        event = conn.next_event()
        assert type(event) is expected
        conn.send(Reply(replies[expected], (b"ok",)))
    conn.receive_data(b"body\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    kinds = []
    for _ in range(10):
        event = conn.next_event()
        if event is NEED_DATA or not isinstance(event, ServerEvent):
            break
        kinds.append(type(event).__name__)
        if event.expects_reply:
            code = 221 if isinstance(event, QuitReceived) else 250
            conn.send(Reply(code, (b"ok",)))
    assert kinds == [
        "ContentReceived",
        "MessageComplete",
        "ResetReceived",
        "NoopReceived",
        "QuitReceived",
    ]


#: Lines of every kind, whole: plain ones, malformed ones, over-long ones (past 512 and
#: past the MAIL/RCPT bound of 2048), odd case, NUL/CR/LF anywhere.
any_lines = st.one_of(
    st.just(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA"),  # a whole transaction
    plain_lines,
    command_lines,
    st.builds(lambda n: b"MAIL FROM:<" + b"a" * n + b"@x.test>", st.integers(490, 2100)),
    st.builds(lambda n: b"NOOP " + b"x" * n, st.integers(500, 520)),
    st.builds(
        lambda line, at, octet: line[:at] + octet + line[at:],
        plain_lines,
        st.integers(0, 24),
        st.sampled_from([b"\x00", b"\r", b"\n", b"\r\n", b" ", b"\t", b"\x7f", b"\xff"]),
    ),
)
#: DATA content: dots at line starts, bare CR/LF, a final line without its CRLF.
contents = st.lists(
    st.sampled_from([b"hi\r\n", b".\r\n.", b"..x\r\n", b"a\rb\r\n", b"c\nd\r\n", b".", b"\r\n"]),
    max_size=6,
).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(st.tuples(any_lines, contents), min_size=1, max_size=12),
    cuts=st.lists(st.integers(1, 4000), max_size=12),
    accepts=st.lists(st.booleans(), min_size=1, max_size=5),
    extensions=st.lists(st.sampled_from(EXTENSIONS), unique=True),
    reject_early=st.booleans(),
    eof=st.booleans(),
    end=st.one_of(st.none(), st.integers(0, 4000)),
)
def test_fast_and_general_paths_agree_on_any_input_cut_at_any_octet(
    lines: list[tuple[bytes, bytes]],
    cuts: list[int],
    accepts: list[bool],
    extensions: list[str],
    reject_early: bool,
    eof: bool,
    end: int | None,
) -> None:
    stream = b"".join(
        line + b"\r\n" + (content + b"\r\n.\r\n" if line.upper().endswith(b"DATA") else b"")
        for line, content in lines
    )
    stream = stream[:end]  # cut short (None: whole), then maybe EOF: the client vanishes
    points = sorted({cut for cut in cuts if cut < len(stream)})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    if eof:  # the client goes away after its last octet (in a line, in content ...)
        chunks.append(b"")
    config = ServerConfig(unauthorized_pipelining="reject" if reject_early else "flag")
    _agree(config, chunks, accepts, extensions)


def test_plain_events_are_made_once_per_line_and_shared() -> None:
    first = plain_event(b"MAIL FROM:<a@x.test>")
    assert first is not None
    again = plain_event(b"MAIL FROM:<a@x" + b".test>")  # another object, equal
    assert again is not None and again[1] is first[1]
    assert first == (b"MAIL", MailReceived(sender="a@x.test", params={}))
    assert plain_event(b"rset") == (b"RSET", ResetReceived())
    assert plain_event(b"RSET x") is None


def test_the_plain_event_memo_is_bounded() -> None:
    long_line = b"RCPT TO:<" + b"l" * 60 + b"@" + b"d" * 60 + b".test>"
    assert len(long_line) > commands._MEMO_LINE
    assert plain_event(long_line) == (
        b"RCPT",
        RcptReceived(recipient=long_line[9:-1].decode(), params={}),
    )
    assert long_line not in commands._MEMO
    for n in range(commands._MEMO_SIZE * 2):
        assert plain_event(b"RCPT TO:<u%d@x.test>" % n) is not None
        assert len(commands._MEMO) <= commands._MEMO_SIZE


def test_a_plain_line_over_the_shortest_limit_takes_the_general_path() -> None:
    conn = ServerConnection()
    conn.send(greeting("mx.test"))
    conn.receive_data(b"EHLO c\r\n")
    conn.next_event()
    conn.send(ehlo_reply("mx.test", ["PIPELINING"]))
    local = b"l" * 64
    domain = b".".join([b"d" * 60] * 8)
    line = b"MAIL FROM:<" + local + b"@" + domain + b">"
    assert len(line) + 2 > 512
    conn.receive_data(line + b"\r\n")
    event = conn.next_event()
    assert isinstance(event, CommandRejected)  # the path is over 256 octets: 501
    assert conn.state.name == "READY"


#: Pieces of a session the fast path must leave to the general path or agree with: no
#: EHLO yet, HELO, a second EHLO, STARTTLS refused, parameters, case, trailing space, NUL,
#: 8-bit, bare CR/LF, over-long lines, BDAT, smuggling-shaped ends of DATA content.
FRAGMENTS = [
    *(line + b"\r\n" for line in (b"HELO h", b"EHLO h", b"STARTTLS", b"RSET", b"NOOP")),
    *(line + b"\r\n" for line in (b"QUIT", b"DATA", b"data", b"DATA ", b"MAIL FROM:<>")),
    MAIL,
    RCPT,
    b"mail from:<A@X.test>\r\n",
    b"RCPT TO:<b@y.test> \r\n",
    b"RCPT TO:<b@y.test>\x00\r\n",
    b"RCPT TO:<\xc3\xa9@y.test>\r\n",
    b"MAIL FROM:<a@x.test> SIZE=50\r\n",
    b"MAIL FROM:<a@x.test> BODY=8BITMIME\r\n",
    b"MAIL FROM:<" + b"a" * 70 + b"@x.test>\r\n",
    b"MAIL FROM:<a@x.test>\rRCPT TO:<b@y.test>\r\n",
    b"NOOP\nRSET\r\n",
    b"x" * 600 + b"\r\n",
    b"z" * 1200 + b"\r\n",
    b"y" * 300,
    b"BDAT 3\r\nabc",
    b"BDAT 0 LAST\r\n",
    *(b"\n.\n", b"\r.\r", b"\r\n.\r\n", b".\r\n", b"\n", b"\r", b"\xff\xfe\r\n"),
]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=25),
    cuts=st.lists(st.integers(0, 3000), max_size=6),
    accepts=st.lists(st.booleans(), min_size=1, max_size=4),
    extensions=st.lists(st.sampled_from([*EXTENSIONS, "CHUNKING", "SIZE 0", "STARTTLS"])),
    ehlo=st.booleans(),
    lmtp=st.booleans(),
    max_message_size=st.sampled_from([None, 10, 1000]),
    max_recipients=st.integers(1, 3),
)
def test_fast_and_general_paths_agree_on_hostile_sessions(
    pieces: list[bytes],
    cuts: list[int],
    accepts: list[bool],
    extensions: list[str],
    ehlo: bool,
    lmtp: bool,
    max_message_size: int | None,
    max_recipients: int,
) -> None:
    stream = b"".join(pieces)
    points = sorted({cut for cut in cuts if 0 < cut < len(stream)})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    config = ServerConfig(max_message_size=max_message_size, max_recipients=max_recipients)
    _agree(config, chunks, accepts, sorted(set(extensions)), ehlo, lmtp)


#: A session's pieces for the split tests: plain lines and a whole pipelined group,
#: lines in the wrong state, malformed ones (NUL, bare CR, bare LF, a space too many, a
#: parameter), one over the 512-octet limit, and DATA content holding the smuggling
#: sequences that must not end it (``\n.\n``, ``\r.\n``, ``\n.\r\n``, ``\r\n.\n``)
#: before its real end.
SPLIT_PIECES = [
    MAIL,
    RCPT,
    b"DATA\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    MAIL + RCPT + b"DATA\r\n",  # a pipelined group
    b"DATA\r\n",  # in the wrong state when no RCPT came first
    b"RCPT TO:<b@y.test>\x00\r\n",
    b"MAIL FROM:<a@x.test>\rRCPT TO:<b@y.test>\r\n",
    b"NOOP\nRSET\r\n",
    b"MAIL FROM:<a@x.test>  \r\n",
    b"MAIL FROM:<a@x.test> BODY=8BITMIME\r\n",
    b"NOOP " + b"x" * 520 + b"\r\n",
    b"x\n.\ny\r.\nz\n.\r\nw\r\n.\nv\r\n.\r\n",  # content (or junk lines) ending at CRLF.CRLF
    b"..dot\r\n.\r\n",
]


def _every_split(stream: bytes, extensions: list[str], accepts: list[bool]) -> None:
    """Fast and general connections agree on ``stream`` cut once at every octet, and fed
    one octet at a time."""
    cuts = [[stream[:i], stream[i:]] for i in range(1, len(stream))]
    for chunks in [[stream], *cuts, [stream[i : i + 1] for i in range(len(stream))]]:
        _agree(ServerConfig(), chunks, accepts, extensions)


@settings(max_examples=25, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(SPLIT_PIECES), min_size=1, max_size=8).filter(
        lambda pieces: len(b"".join(pieces)) <= 300
    ),
    accepts=st.lists(st.booleans(), min_size=1, max_size=3),
    pipelining=st.booleans(),
)
def test_fast_and_general_paths_agree_at_every_split_point(
    pieces: list[bytes], accepts: list[bool], pipelining: bool
) -> None:
    """The same replies (octets), events and states, whatever the read boundaries."""
    _every_split(b"".join(pieces), ["PIPELINING"] if pipelining else [], accepts)


def test_a_hostile_transaction_at_every_split_point() -> None:
    stream = b"".join(
        [
            MAIL + RCPT + b"DATA\r\n",
            b"a\n.\nb\r.\nc\n.\r\n..d\r\n.\r\n",
            b"MAIL FROM:<a@x.test>\x00\r\n",
            b"RSET\r\nDATA\r\n",
            MAIL + b"RCPT TO:<b@y.test>\nNOOP\r\n",
            MAIL,  # nested: MAIL in the MAIL state
            b"NOOP\r\n",
        ]
    )
    for extensions in ([], ["PIPELINING"]):
        _every_split(stream, extensions, [True])


def _ready(extensions: list[str] | None = None) -> ServerConnection:
    conn = ServerConnection()
    conn.send(greeting("mx.test"))
    conn.receive_data(b"EHLO c\r\n")
    conn.next_event()
    conn.send(ehlo_reply("mx.test", extensions or []))
    return conn


def test_receive_line_takes_a_plain_line_alone() -> None:
    conn = _ready()
    event = conn.receive_line(MAIL)
    assert event == MailReceived(sender="a@x.test", params={})
    assert conn.replies_due == 1 and conn.next_event() is PAUSED
    conn.send(Reply(250, (b"ok",)))
    assert conn.receive_line(RCPT) == RcptReceived(recipient="b@y.test", params={})


@pytest.mark.parametrize(
    ("setup", "data"),
    [
        ("ready", MAIL + RCPT),  # two lines: the second would wait in the buffer
        ("ready", MAIL[:-1]),  # no CRLF yet
        ("ready", b"MAIL FROM:<a@x.test>\n"),  # a bare LF is no line end
        ("ready", b"MAIL FROM:<a@x.test>\x00\r\n"),
        ("ready", b"MAIL FROM:<a@x.test> SIZE=10\r\n"),  # parameters: the general parser
        ("ready", b"RCPT TO:<b@y.test>\r\n"),  # out of sequence: refused by the general path
        ("ready", b"EHLO again\r\n"),
        ("ready", bytearray(MAIL)),
        ("ready", b"NOOP " + b"x" * 510 + b"\r\n"),  # over 512 octets
        ("buffered", MAIL),  # a partial line is waiting
        ("owed", MAIL),  # a reply is owed
        ("eof", MAIL),
        ("data", b"MAIL FROM:<a@x.test>\r\n"),  # content, not a command
        ("greeting", MAIL),
    ],
)
def test_receive_line_leaves_everything_else_to_receive_data(setup: str, data: bytes) -> None:
    conn = _ready(["PIPELINING"])
    if setup == "buffered":
        conn.receive_data(b"NO")
        assert conn.next_event() is NEED_DATA
    elif setup == "owed":
        conn.receive_data(b"NOOP\r\n")
        conn.next_event()
    elif setup == "eof":
        conn.receive_data(b"")
    elif setup == "data":
        for line, code in ((MAIL, 250), (RCPT, 250), (b"DATA\r\n", 354)):
            conn.receive_data(line)
            assert isinstance(conn.next_event(), ServerEvent)
            conn.send(Reply(code, (b"ok",)))
        assert conn.state.name == "DATA"
    elif setup == "greeting":
        conn = ServerConnection()
    before = (_snapshot(conn), bytes(conn._buf), conn._pending_event)
    assert conn.receive_line(data) is None
    assert (_snapshot(conn), bytes(conn._buf), conn._pending_event) == before


ALL_KINDS = [
    "greeting", "ehlo", "helo", "mail", "rcpt", "data", "message", "chunk", "chunk_failed",
    "rset", "quit", "other", "rejected", "starttls", "auth", "sync",
]  # fmt: skip


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_send_asks_must_wait_for_only_for_the_kinds_that_can_wait(kind: str) -> None:
    """``send`` skips ``_must_wait_for`` for a kind outside ``_MAY_WAIT``: whatever the
    last verb and the pending event, such a kind must never have to be waited for
    (RFC 2920 §3.1), and ``_MAY_WAIT`` names only kinds the engine uses."""
    assert set(engine_connection._MAY_WAIT) <= set(ALL_KINDS)
    conn = ServerConnection()
    events = [None, DataRequested(), ResetReceived(), QuitReceived(), StartTLSRequested()]
    for verb in (b"", b"MAIL", b"DATA", b"NOOP", b"HELP", b"AUTH", b"XYZZY"):
        for event in events:
            conn._verb, conn._pending_event = verb, event
            if kind not in engine_connection._MAY_WAIT:
                assert conn._must_wait_for(kind) is False, (verb, event)
