"""No server event carries a control character (docs/design.md §4 rules 6 and 12).

Whatever a client writes, the text fields of the events the server engine hands the
application (addresses, parameters and their xtext-decoded values, VRFY/EXPN/HELP
arguments, the EHLO name, ...) hold no C0 control, DEL, C1 control, U+2028 or U+2029:
those would be line breaks in the application's log, DSN or ``Received`` header. The
raw ``line`` of a refusal is exempt (it is the client's line, escaped wherever it is
shown). Property-based: command lines built from the verbs with arguments mixing
hostile pieces (CR/LF and NUL are cut by the line reader, so the pieces hide them in
xtext, in UTF-8 and in quoted strings), with SMTPUTF8, DSN and AUTH advertised.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server_support import Session

#: What ``wire.grammar._find_control`` refuses, as a pattern over decoded text.
CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

VERBS = [
    b"EHLO ",
    b"HELO ",
    b"MAIL FROM:",
    b"RCPT TO:",
    b"VRFY ",
    b"EXPN ",
    b"HELP ",
    b"NOOP ",
    b"AUTH ",
    b"MAIL FROM:<a@b.example> ",
    b"RCPT TO:<c@d.example> ",
]
HOSTILE = st.sampled_from(
    [
        b"\x7f",
        b"\x1b",
        b"\xc2\x85",
        b"\xc2\x9b",
        b"\xe2\x80\xa8",
        b"\xe2\x80\xa9",
        b"\xc3\xa9",
        b"<a\xc2\x85b@c.example>",
        b'<"a\\\xc2\x85"@c.example>',
        b"<j\xc3\xa9@c.example>",
        b"ENVID=x+0D+0Ay",
        b"ENVID=+00",
        b"ENVID=+C2+85",
        b"AUTH=a+0A@b.example",
        b"ORCPT=rfc822;a+0D+0A@b.example",
        b"ORCPT=utf-8;a\\x{85}@b.example",
        b"ORCPT=utf-8;a\xc2\x85@b.example",
        b"NOTIFY=NEVER",
        b"SMTPUTF8",
        b"PLAIN",
        b" ",
    ]
)
PIECES = HOSTILE | HOSTILE | st.binary(max_size=12)
LINES = st.lists(
    st.tuples(st.sampled_from(VERBS), st.lists(PIECES, max_size=3)), min_size=1, max_size=6
)


def _texts(value: object, path: str) -> Iterator[tuple[str, str]]:
    """Every str inside ``value`` (events, tuples, mappings), with where it is."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from _texts(item, f"{path}[{index}]")
    elif hasattr(value, "items"):
        for key, item in value.items():
            yield from _texts(key, f"{path}.key")
            yield from _texts(item, f"{path}[{key!r}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            if field.name != "line":  # the client's own line: shown escaped, never used
                yield from _texts(getattr(value, field.name), f"{path}.{field.name}")


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(lines=LINES)
def test_no_event_field_holds_a_control_character(lines: list[tuple[bytes, list[bytes]]]) -> None:
    session = Session()
    session.feed(b"EHLO client.example\r\n")
    for verb, pieces in lines:
        line = (verb + b" ".join(pieces)).replace(b"\r", b"").replace(b"\n", b"")
        for event in session.feed(line + b"\r\n"):
            for where, text in _texts(event, type(event).__name__):
                assert CONTROLS.search(text) is None, (line, where, text)
