"""Rule files (``builtin_server/rulefile.py``): every action and field in TOML and JSON,
and a one-line ``RuleFileError`` naming the rule and the field for each kind of mistake."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from smtpproto.testing import (
    Accept,
    Disconnect,
    Drop,
    Greylist,
    Respond,
    Rule,
    RuleFileError,
    Tarpit,
    load_rules,
    parse_rules,
)

EVERY_ACTION = """\
[[rule]]
stage = "connect"
connection = 3
delay = 0.5

[[rule]]
stage = "rcpt"
recipient = "bob@example.org"
times = 2
reply = { code = 550, enhanced = "5.1.1", text = "No such user" }

[[rule]]
stage = "rcpt"
recipient_regex = ".*@grey\\\\.example"
greylist = { retry_after = 60 }

[[rule]]
stage = "data"
sender = "busy@example.org"
disconnect = { text = "Too busy" }

[[rule]]
stage = "data_end"
message = 2
drop = { deliver = false }

[[rule]]
sender_regex = "slow@.*"
tarpit = { delay = 1, step = 0.5 }

[[rule]]
stage = "mail"
accept = {}
"""

EXPECTED = [
    Rule(stage="connect", connection=3, delay=0.5),
    Rule(
        stage="rcpt",
        recipient="bob@example.org",
        times=2,
        action=Respond(550, "No such user", "5.1.1"),
    ),
    Rule(
        stage="rcpt",
        recipient=re.compile(r".*@grey\.example", re.IGNORECASE),
        action=Greylist(retry_after=60),
    ),
    Rule(stage="data", sender="busy@example.org", action=Disconnect("Too busy")),
    Rule(stage="data_end", message=2, action=Drop(deliver=False)),
    Rule(sender=re.compile("slow@.*", re.IGNORECASE), action=Tarpit(delay=1, step=0.5)),
    Rule(stage="mail", action=Accept()),
]


def test_every_action_in_toml() -> None:
    assert parse_rules(EVERY_ACTION) == EXPECTED
    (pattern,) = [r.recipient for r in EXPECTED if isinstance(r.recipient, re.Pattern)]
    assert pattern.fullmatch("Ann@GREY.example")


EVERY_ACTION_JSON = {
    "rule": [
        {"stage": "connect", "connection": 3, "delay": 0.5},
        {
            "stage": "rcpt",
            "recipient": "bob@example.org",
            "times": 2,
            "reply": {"code": 550, "enhanced": "5.1.1", "text": "No such user"},
        },
        {"stage": "rcpt", "recipient_regex": r".*@grey\.example", "greylist": {"retry_after": 60}},
        {"stage": "data", "sender": "busy@example.org", "disconnect": {"text": "Too busy"}},
        {"stage": "data_end", "message": 2, "drop": {"deliver": False}},
        {"sender_regex": "slow@.*", "tarpit": {"delay": 1, "step": 0.5}},
        {"stage": "mail", "accept": {}},
    ]
}


def test_the_json_form_is_the_same(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(EVERY_ACTION_JSON), encoding="utf-8")
    assert load_rules(path) == EXPECTED
    toml = tmp_path / "rules.TOML"
    toml.write_text(EVERY_ACTION, encoding="utf-8")
    assert load_rules(toml) == EXPECTED
    assert parse_rules('{"rule": []}', "json") == parse_rules("") == []


@pytest.mark.parametrize(
    ("text", "syntax", "message"),
    [
        ("rule = 5", "toml", "'rule' must be a list of tables"),
        ("[rules]", "toml", "unknown top-level key 'rules'"),
        ("[1]", "json", "expected a table with a 'rule' list"),
        ('{"rule": [5]}', "json", "rule 1: a rule must be a table"),
        ('[[rule]]\nstage = "rcpt"\n[[rule]]\nstag = "rcpt"', "toml", "rule 2: unknown key 'stag'"),
        ('[[rule]]\nstage = "ehlo"', "toml", "rule 1: unknown stage 'ehlo'"),
        ('[[rule]]\nstage = "rcpt"\nreply = 550', "toml", "reply must be a table of its options"),
        ('[[rule]]\nstage = "rcpt"\nreply = {}', "toml", "reply: missing 1 required"),
        ('[[rule]]\nstage = "rcpt"\nreply = { code = 550, cod = 1 }', "toml", "unexpected keyword"),
        (
            '[[rule]]\nstage = "rcpt"\nreply = { code = "550" }',
            "toml",
            "reply: code must be an int",
        ),
        (
            '[[rule]]\nstage = "rcpt"\nreply = { code = 550, enhanced = "4.1.1" }',
            "toml",
            "class of 550",
        ),
        ('[[rule]]\nstage = "rcpt"\ndrop = {}\naccept = {}', "toml", "one action per rule"),
        ('[[rule]]\nsender = "a@b"\nsender_regex = "a@.*"', "toml", "sender or sender_regex"),
        ('[[rule]]\nsender_regex = "("', "toml", "not a valid regular expression"),
        ("[[rule]]\nsender_regex = 5", "toml", "sender_regex must be a string"),
        ("[[rule]]\nmessage = 0", "toml", "message counts from 1"),
        ("[[rule]]\ndelay = -1", "toml", "delay must be from 0"),
        ('[[rule]]\nstage = "mail"\ngreylist = {}', "toml", "Greylist needs stage 'rcpt'"),
        ("[[rule]\n", "toml", "not valid TOML"),
        ("{", "json", "not valid JSON"),
    ],
)
def test_mistakes_are_one_line_errors(text: str, syntax: str, message: str) -> None:
    with pytest.raises(RuleFileError) as info:
        parse_rules(text, syntax, name="rules.x")
    assert message in str(info.value)
    assert str(info.value).startswith("rules.x: ") and "\n" not in str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match=r"ends in \.toml or \.json"):
        load_rules(tmp_path / "rules.yaml")
    with pytest.raises(RuleFileError, match="cannot read"):
        load_rules(tmp_path / "missing.toml")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'[[rule]]\nsender = "\xe9"\n')
    with pytest.raises(RuleFileError, match="cannot read"):
        load_rules(latin1)
    with pytest.raises(ValueError, match="syntax must be"):
        parse_rules("", "yaml")


def test_toml_without_tomllib_or_tomli_says_to_use_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "version_info", (3, 10, 14, "final", 0))
    monkeypatch.setitem(sys.modules, "tomli", None)  # not installed
    with pytest.raises(RuleFileError, match=r"TOML needs Python 3\.11\+ or the tomli package"):
        parse_rules(EVERY_ACTION)
    assert parse_rules(json.dumps(EVERY_ACTION_JSON), "json") == EXPECTED


def test_duplicate_json_keys_are_refused_not_silently_overwritten() -> None:
    # TOML refuses a key given twice; JSON's decoder keeps the last one silently.
    for text, key in (
        ('{"rule": [{"stage": "rcpt", "stage": "mail"}]}', "stage"),
        ('{"rule": [{"stage": "rcpt", "reply": {"code": 550}, "reply": {"code": 450}}]}', "reply"),
        ('{"rule": [{"stage": "rcpt", "reply": {"code": 550, "code": 551}}]}', "code"),
        ('{"rule": [], "rule": [{"stage": "rcpt"}]}', "rule"),
    ):
        with pytest.raises(RuleFileError, match=f"duplicate key '{key}'") as info:
            parse_rules(text, "json", name="r.json")
        assert "\n" not in str(info.value)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    # Editors on Windows write one; the file is still UTF-8.
    for name, text in (
        ("r.json", '{"rule": [{"stage": "rcpt", "reply": {"code": 550}}]}'),
        ("r.toml", '[[rule]]\nstage = "rcpt"\nreply = { code = 550 }\n'),
    ):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert [rule.action for rule in load_rules(path)] == [Respond(550)]


def test_a_421_reply_points_to_the_files_disconnect_table() -> None:
    # Respond's own error names Python's Disconnect(); a rule file has no such thing.
    with pytest.raises(RuleFileError, match=r"rule 1: reply: 421 .*use disconnect = \{") as info:
        parse_rules('[[rule]]\nstage = "rcpt"\nreply = { code = 421 }\n', name="r.toml")
    assert "Disconnect()" not in str(info.value)
