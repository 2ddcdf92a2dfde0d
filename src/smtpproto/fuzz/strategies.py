"""Hypothesis strategies for fuzzing SMTP servers: addresses, paths, parameters, line ends,
end-of-data variants, over-length values, commands and whole dialogues.

This is the only module of the package that imports ``hypothesis`` (the optional extra
``smtpproto[fuzz]``); nothing imports it implicitly. The valid values follow the RFC 5321
§4.1.2 ABNF (``Mailbox``, ``Local-part``, ``Domain``, ``address-literal``, ``esmtp-param``)
and the RFC 5321 §4.5.3.1 size limits; the hostile ones break exactly one rule each, so a
failing example names the rule it broke. Commands and dialogues are ``bytes``, ready to be
written to a socket; addresses and parameters are ``str``.

Example (pytest + Hypothesis)::

    from hypothesis import given
    from smtpproto.fuzz import strategies as smtp

    @given(smtp.dialogues())
    def test_my_parser_never_crashes(writes):
        for write in writes:
            my_server_feed(write)
"""

from __future__ import annotations

import base64

from hypothesis import strategies as st

__all__ = [
    "ATEXT",
    "NONSTANDARD_END_OF_DATA",
    "address_literals",
    "addresses",
    "auth_commands",
    "bdat_commands",
    "commands",
    "data_bodies",
    "dialogues",
    "domains",
    "end_of_data_variants",
    "esmtp_params",
    "hostile_commands",
    "line_endings",
    "local_parts",
    "over_length",
    "paths",
    "reverse_paths",
    "transactions",
]

#: RFC 5322 atext, the characters of an unquoted local part atom (RFC 5321 §4.1.2).
ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
_LDH = "abcdefghijklmnopqrstuvwxyz0123456789-"
_LET_DIG = "abcdefghijklmnopqrstuvwxyz0123456789"

#: End-of-data sequences a correct server must NOT take as the end of a message
#: (RFC 5321 §4.1.1.4: only CRLF "." CRLF ends it). Each one is an SMTP smuggling
#: vector (CVE-2023-51764, CVE-2023-51765, CVE-2023-51766, CVE-2024-27305).
NONSTANDARD_END_OF_DATA: tuple[bytes, ...] = (
    b"\n.\n",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\n",
    b"\r.\r",
    b"\n.\r",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\r\n\x00.\r\n",
    b"\r\n.\x00\r\n",
)


@st.composite
def _label(draw: st.DrawFn, max_size: int = 63) -> str:
    """A sub-domain: Let-dig [Ldh-str] (RFC 5321 §4.1.2), 1 to ``max_size`` octets."""
    first = draw(st.sampled_from(_LET_DIG))
    if draw(st.booleans()):
        return first
    middle = draw(st.text(_LDH, max_size=max(max_size - 2, 0)))
    return first + middle + draw(st.sampled_from(_LET_DIG))


def domains(*, max_labels: int = 4) -> st.SearchStrategy[str]:
    """Valid domains: at least two labels, each at most 63 octets, at most 255 in all."""
    return (
        st.lists(_label(), min_size=1, max_size=max_labels - 1)
        .map(lambda labels: ".".join([*labels, "test"]))
        .filter(lambda name: len(name) <= 255)
    )


def address_literals() -> st.SearchStrategy[str]:
    """IPv4 and IPv6 address literals (RFC 5321 §4.1.3), e.g. ``[192.0.2.1]``."""
    ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: "[{}.{}.{}.{}]".format(*t))
    groups = st.lists(st.integers(0, 0xFFFF).map(lambda g: f"{g:x}"), min_size=8, max_size=8)
    ipv6 = groups.map(lambda g: "[IPv6:" + ":".join(g) + "]")
    compressed = st.lists(st.integers(0, 0xFFFF).map(lambda g: f"{g:x}"), max_size=6).map(
        lambda g: "[IPv6:" + ":".join(g[:1]) + "::" + ":".join(g[1:]) + "]"
    )
    return ipv4 | ipv6 | compressed


def local_parts(*, max_size: int = 64) -> st.SearchStrategy[str]:
    """Local parts: a Dot-string of atext atoms or a Quoted-string (RFC 5321 §4.1.2)."""
    atoms = st.lists(st.text(ATEXT, min_size=1, max_size=16), min_size=1, max_size=4)
    dot_string = atoms.map(".".join)
    qtext = st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='"\\')
    quoted_pair = st.characters(min_codepoint=32, max_codepoint=126).map(lambda c: "\\" + c)
    quoted = st.lists(qtext | quoted_pair, max_size=20).map(
        lambda parts: '"' + "".join(parts) + '"'
    )
    return (dot_string | quoted).filter(lambda local: len(local) <= max_size)


def addresses() -> st.SearchStrategy[str]:
    """Mailboxes ``local@domain`` with a domain or an address literal."""
    return st.builds(
        lambda local, domain: f"{local}@{domain}", local_parts(), domains() | address_literals()
    )


def paths() -> st.SearchStrategy[str]:
    """Forward-paths ``<mailbox>``, sometimes with a source route (RFC 5321 §4.1.2, App. C)."""
    route = st.lists(domains(max_labels=2), min_size=1, max_size=2).map(
        lambda hops: ",".join("@" + hop for hop in hops) + ":"
    )
    return st.builds(lambda r, a: f"<{r}{a}>", st.just("") | route, addresses())


def reverse_paths() -> st.SearchStrategy[str]:
    """Reverse-paths: a path or the null path ``<>``."""
    return st.just("<>") | paths()


def esmtp_params(
    keywords: tuple[str, ...] = ("SIZE", "BODY", "RET", "ENVID", "SMTPUTF8", "XFOO"),
) -> st.SearchStrategy[str]:
    """``esmtp-param *(SP esmtp-param)`` (RFC 5321 §4.1.2): keyword ["=" value], each
    keyword at most once (``XFOO`` is unknown to every server: 555 expected)."""
    value = st.text(
        st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="="),
        min_size=1,
        max_size=20,
    )
    param = st.builds(
        lambda k, v: k if v is None else f"{k}={v}", st.sampled_from(keywords), st.none() | value
    )
    unique = st.lists(param, min_size=1, max_size=3, unique_by=lambda p: p.split("=")[0])
    return unique.map(" ".join)


def line_endings(*, crlf: bool = True) -> st.SearchStrategy[bytes]:
    """Line ends: the bare and doubled ones, and CRLF (the only valid one, RFC 5321 §2.3.8)
    unless ``crlf=False``."""
    bad = [b"\n", b"\r", b"\r\r\n", b"\n\r", b"\r\n\r\n", b"\r\x00\n"]
    return st.sampled_from([b"\r\n", *bad] if crlf else bad)


def end_of_data_variants(*, standard: bool = False) -> st.SearchStrategy[bytes]:
    """Non-standard end-of-data sequences; with ``standard=True`` also CRLF "." CRLF."""
    choices = list(NONSTANDARD_END_OF_DATA)
    return st.sampled_from([b"\r\n.\r\n", *choices] if standard else choices)


def over_length(limit: int = 512, *, alphabet: bytes = b"x") -> st.SearchStrategy[bytes]:
    """Values past ``limit`` octets (RFC 5321 §4.5.3.1: command line 512, text line 1000,
    local part 64, domain 255), from just over it to 16 times it."""
    return st.integers(limit + 1, 16 * limit).map(
        lambda n: (alphabet * (n // len(alphabet) + 1))[:n]
    )


def _line(verb: str, argument: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[bytes]:
    if argument is None:
        return st.just(f"{verb}\r\n".encode())
    return argument.map(lambda arg: f"{verb} {arg}\r\n".encode())


def auth_commands(user: str = "user", password: str = "password") -> st.SearchStrategy[bytes]:
    """AUTH PLAIN / LOGIN commands (RFC 4954, RFC 4616), valid and with bad base64."""
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    login = base64.b64encode(user.encode()).decode()
    bad = st.sampled_from(["!!!!", "=", "*", "AAA", "Zm9v\x00", "%n%n"])
    return st.one_of(
        st.just(f"AUTH PLAIN {plain}\r\n".encode()),
        st.just(f"AUTH LOGIN {login}\r\n".encode()),
        bad.map(lambda b: f"AUTH PLAIN {b}\r\n".encode()),
        st.just(b"AUTH XUNKNOWN\r\n"),
    )


def bdat_commands() -> st.SearchStrategy[bytes]:
    """``BDAT size [LAST]`` followed by exactly ``size`` octets (RFC 3030 §2)."""
    return st.builds(
        lambda chunk, last: b"BDAT %d%s\r\n%s" % (len(chunk), b" LAST" if last else b"", chunk),
        st.binary(max_size=64),
        st.booleans(),
    )


def commands() -> st.SearchStrategy[bytes]:
    """One syntactically valid command line (any state: the server decides the order)."""
    return st.one_of(
        _line("EHLO", domains() | address_literals()),
        _line("HELO", domains()),
        _line("MAIL FROM:", reverse_paths()).map(lambda b: b.replace(b": ", b":", 1)),
        _line("RCPT TO:", paths()).map(lambda b: b.replace(b": ", b":", 1)),
        _line("DATA"),
        _line("RSET"),
        _line("NOOP"),
        _line("QUIT"),
        _line("HELP"),
        _line("VRFY", local_parts()),
        _line("STARTTLS"),
        auth_commands(),
        bdat_commands(),
    )


def hostile_commands() -> st.SearchStrategy[bytes]:
    """Commands that break one rule each: over-long, NUL, 8-bit, bare line ends, unknown
    parameters, bad literals, huge numbers, format strings, domainless shell paths."""
    verb = st.sampled_from(["EHLO", "MAIL FROM:", "RCPT TO:", "NOOP", "VRFY", "HELP", "BDAT"])
    weird = st.sampled_from(["%n%s%x", "\x00", "\xff\xfe", "$(id)", "`id`", "|id", "../../x"])
    return st.one_of(
        st.builds(lambda v, tail: v.encode() + b" " + tail + b"\r\n", verb, over_length()),
        st.builds(lambda v, w: f"{v} {w}\r\n".encode("latin-1"), verb, weird),
        st.builds(lambda c, end: c[:-2] + end, _line("NOOP"), line_endings(crlf=False)),
        esmtp_params().map(lambda p: f"MAIL FROM:<a@example.test> {p} XUNKNOWN\r\n".encode()),
        st.sampled_from(
            [
                b"RCPT TO:<|/bin/sh -c id>\r\n",
                b"RCPT TO:<root;id>\r\n",
                b"MAIL FROM:<a@[IPv6:1:2:3:4:5:6:7:8:9]>\r\n",
                b"MAIL FROM:<a@[300.1.1.1]>\r\n",
                b"MAIL FROM:<a@example.test> SIZE=99999999999999999999\r\n",
                b"BDAT 18446744073709551616\r\n",
                b"BDAT -1\r\n",
                b"EHLO\r\n",
            ]
        ),
    )


def data_bodies(*, max_lines: int = 8) -> st.SearchStrategy[bytes]:
    """Message content for DATA, dot-stuffed, ending with CRLF "." CRLF (RFC 5321 §4.5.2)."""
    line = st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
    return st.lists(line, max_size=max_lines).map(
        lambda lines: (
            b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)
            + b".\r\n"
        )
    )


def transactions() -> st.SearchStrategy[list[bytes]]:
    """MAIL, one to five RCPT, DATA and its content: the writes of one mail transaction."""
    return st.builds(
        lambda sender, rcpts, body: [
            f"MAIL FROM:{sender}\r\n".encode(),
            *(f"RCPT TO:{r}\r\n".encode() for r in rcpts),
            b"DATA\r\n",
            body,
        ],
        reverse_paths(),
        st.lists(paths(), min_size=1, max_size=5),
        data_bodies(),
    )


def dialogues(*, hostile: bool = True) -> st.SearchStrategy[list[bytes]]:
    """Whole client sides of a session: EHLO, then transactions mixed with single
    commands (and hostile ones when ``hostile``), then QUIT. Each item is one write."""
    single = commands() | hostile_commands() if hostile else commands()
    part = transactions() | single.map(lambda c: [c])
    return st.builds(
        lambda ehlo, parts: [ehlo, *(w for p in parts for w in p), b"QUIT\r\n"],
        _line("EHLO", domains()),
        st.lists(part, max_size=6),
    )
