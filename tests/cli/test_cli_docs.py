"""docs/cli.md's swaks table stays complete and honest: every option of swaks 20201014
(``swaks --help``) has a row, and every test a row names exists."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).parent
DOC = TESTS.parents[1] / "docs" / "cli.md"

#: The options of swaks 20201014, as its --help lists them (short and long forms).
SWAKS_OPTIONS = tuple(
    re.findall(
        r"\S+",
        """
--config -s --server -p --port -li --local-interface -lp --local-port --lport -4 -6 -nsf
--quit
--copy-routing --socket --pipe -t --to -f --from --ehlo --lhlo -h --helo -q
--quit-after --da --drop-after --das --drop-after-send --timeout --protocol
--pipeline --prdr --force-getpwuid -tls -tlso --tls-optional -tlsos
--tls-optional-strict -tlsc --tls-on-connect -tlsp --tls-protocol --tls-cipher
--tls-verify --tls-ca-path --tls-cert --tls-key --tls-get-peer-cert --tls-sni -a
--auth -ao -aos -au --auth-user -ap --auth-password -ae -am -apt --auth-plaintext
-ahp --xclient-addr --xclient-name --xclient-port --xclient-proto --xclient-destaddr
--xclient-destport --xclient-helo --xclient-login --xclient-reverse-name
--xclient-delim --xclient --xclient-no-verify --xclient-before-starttls
--xclient-optional --xclient-optional-strict --proxy-version --proxy --proxy-family
--proxy-protocol --proxy-command --proxy-source --proxy-source-port --proxy-dest
--proxy-dest-port -d --data -dab -dabsp --body --attach --attach-body --attach-type
--attach-name -ah --add-header --header -g --no-data-fixup --no-strip-from -n
--suppress-data -stl --show-time-lapse -nih -nsh -nrh -nth --hide-informational -raw
--show-raw-text --output --output-file --output-file-stdout --output-file-stderr -pp
--protect-prompt -hr --hide-receive -hs --hide-send -hi -ha --hide-all -S --silent
--support --dump-mail --dump --help --version
""",
    )
)


def _rows() -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("## swaks options and their smtpproto equivalents", 1)[1]
    rows = []
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows[1:]  # without the heading row


def _swaks_column_options(cell: str) -> set[str]:
    """The options a first cell names: every ``-x``/``--xy`` inside backquotes, and
    ``--prefix*`` patterns."""
    found: set[str] = set()
    for quoted in re.findall(r"`([^`]*)`", cell):
        found |= set(re.findall(r"(?<![\w-])--?[a-zA-Z0-9][\w-]*\*?", quoted))
    return found


def test_every_swaks_option_has_a_row() -> None:
    named: set[str] = set()
    for row in _rows():
        named |= _swaks_column_options(row[0])
    patterns = [option[:-1] for option in named if option.endswith("*")]
    missing = [
        option
        for option in SWAKS_OPTIONS
        if option not in named and not any(option.startswith(p) for p in patterns)
    ]
    assert missing == []


def test_every_named_test_exists() -> None:
    defined = {
        path.name: set(re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE))
        for path in TESTS.glob("test_*.py")
    }
    for row in _rows():
        module = None
        for token in re.finditer(r"(test_\w+\.py)|::(test_\w+)", row[-1]):
            if token[1] is not None:
                module = token[1]
                assert module in defined, row
            else:
                assert module is not None, row
                assert token[2] in defined[module], (module, token[2])


def test_every_equivalent_names_a_test() -> None:
    """A row with an smtpproto equivalent (not "—") names the tests that show it."""
    for row in _rows():
        if not row[1].startswith("—"):
            assert "test_" in row[-1], row
