"""``run_server``'s options are typed keywords: mypy catches a misspelt or mistyped one.

Before, ``run_server(**options: Any)`` accepted anything until the server started. One
mypy run (strict, no cache, ~4 s of CPU) checks a snippet that uses the API correctly
and wrongly: only the wrong lines may be reported.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from mypy import api

SNIPPET = """\
from smtpproto.server import SMTPServer
from smtpproto.testing import Context, Greylist, Respond, Rule, run_server


def hook(context: Context) -> Respond | None:
    return Respond(550, "no") if context.recipient == "x@y.test" else None


rules = [Rule(stage="rcpt", action=Greylist(retry_after=60)), Rule(stage="mail", delay=0.5)]
with run_server(starttls=False, lmtp=True, rules=rules, hook=hook, clock=lambda: 0.0) as ok:
    port: int = ok.port
    count: int = len(ok.received)
with run_server(max_mesage_size=10) as typo:  # line 13
    pass
with run_server(lmtp="yes") as wrong_type:  # line 15
    pass
with run_server(rules=[Respond(550)]) as not_a_rule:  # line 17
    pass
Rule(stag="rcpt")  # line 19
Rule(stage="ehlo")  # line 20
SMTPServer(max_mesage_size=10)  # line 21
"""

EXPECTED = {
    13: 'Unexpected keyword argument "max_mesage_size" for "run_server"',
    15: 'Argument "lmtp" to "run_server" has incompatible type "str"',
    17: 'List item 0 has incompatible type "Respond"',
    19: 'Unexpected keyword argument "stag" for "Rule"',
    20: 'Argument "stage" to "Rule" has incompatible type',
    21: 'Unexpected keyword argument "max_mesage_size" for "SMTPServer"',
}


def test_mypy_catches_misspelt_and_mistyped_options(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET, encoding="utf-8")
    stdout, stderr, _ = api.run(
        ["--strict", "--no-incremental", "--follow-imports=silent", str(snippet)]
    )
    errors: dict[int, list[str]] = {}
    for match in re.finditer(r"snippet\.py:(\d+): error: (.*)", stdout):
        errors.setdefault(int(match[1]), []).append(match[2])
    assert set(errors) == set(EXPECTED), stdout + stderr
    for line, words in EXPECTED.items():
        assert any(words in error for error in errors[line]), (line, errors[line])


def test_run_server_has_every_option_of_smtpserver_and_the_docs_list_them() -> None:
    # Typed keywords are a copy of SMTPServer's: an option added there and not here
    # would be missing from run_server and from @pytest.mark.smtp_server.
    from smtpproto.server import SMTPServer
    from smtpproto.testing import run_server

    server = dict(inspect.signature(SMTPServer.__init__).parameters)
    server.pop("self")
    ours = dict(inspect.signature(run_server).parameters)
    assert list(ours) == list(server)
    for name, parameter in server.items():
        mine = ours[name]
        assert (mine.kind, mine.default, mine.annotation) == (
            parameter.kind,
            parameter.default,
            parameter.annotation,
        ), name
    docs = (Path(__file__).parent.parent / "docs" / "testing-server.md").read_text("utf-8")
    listed = re.search(r"takes the same keyword options as `SMTPServer`.*?:(.*?)\.\n", docs, re.S)
    assert listed is not None
    assert re.findall(r"`(\w+)`", listed[1]) == list(server)
