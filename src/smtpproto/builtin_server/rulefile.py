"""Rules from a file: the TOML or JSON form of ``rules.py`` (``smtpproto serve --rules``).

Adapter layer (reads a file). The file holds a list of rules under the key ``rule``
(an array of tables in TOML); each rule has the fields of ``Rule`` (``stage``,
``sender``, ``recipient``, ``connection``, ``message``, ``times``, ``delay``), the
patterns ``sender_regex`` / ``recipient_regex`` (a Python regular expression matched
in full, case-insensitively), and at most one action, a table named after it whose keys
are the action's fields (none: ``accept``)::

    [[rule]]                       # RCPT TO bob: 550 5.1.1
    stage = "rcpt"
    recipient = "bob@example.org"
    reply = { code = 550, enhanced = "5.1.1", text = "No such user" }

    [[rule]]                       # every other recipient: greylisted for 60 s
    stage = "rcpt"
    greylist = { retry_after = 60 }

    [[rule]]                       # the 2nd message: no reply to the final dot
    stage = "data_end"
    message = 2
    drop = {}

The actions: ``accept`` {}, ``reply`` {code, text, enhanced}, ``greylist``
{retry_after, text}, ``disconnect`` {text, enhanced}, ``drop`` {deliver}, ``tarpit``
{delay, step}. JSON is the same structure: ``{"rule": [{"stage": "rcpt", ...}]}``. A
file ending in ``.json`` is read as JSON, ``.toml`` as TOML — with ``tomllib`` on
Python 3.11+, and on 3.10 with the ``tomli`` package when it is installed (smtpproto
has no dependencies; use JSON there otherwise). Any mistake is a ``RuleFileError`` of
one line naming the file, the rule and the field.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .rules import Accept, Action, Disconnect, Drop, Greylist, Respond, Rule, Tarpit

__all__ = ["ACTIONS", "RuleFileError", "load_rules", "parse_rules"]

#: Action table names in a rule file.
ACTIONS: Mapping[str, type[Action]] = {
    "accept": Accept,
    "reply": Respond,
    "greylist": Greylist,
    "disconnect": Disconnect,
    "drop": Drop,
    "tarpit": Tarpit,
}
_MATCH = ("stage", "sender", "recipient", "connection", "message", "times", "delay")
_PATTERNS = ("sender_regex", "recipient_regex")


class RuleFileError(ValueError):
    """A rule file that cannot be used; the message is one line."""


def load_rules(path: str | os.PathLike[str]) -> list[Rule]:
    """The rules in the TOML or JSON file ``path`` (by its extension)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise RuleFileError(f"{path}: a rule file ends in .toml or .json")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte order mark is not content
    except (OSError, UnicodeDecodeError) as error:
        raise RuleFileError(f"{path}: cannot read: {error}") from None
    return parse_rules(text, "json" if suffix == ".json" else "toml", name=str(path))


def parse_rules(text: str, syntax: str = "toml", *, name: str = "<rules>") -> list[Rule]:
    """The rules in ``text``, written in ``syntax`` (``"toml"`` or ``"json"``)."""
    document = _decode(text, syntax, name)
    if not isinstance(document, dict):
        raise RuleFileError(f"{name}: expected a table with a 'rule' list")
    unknown = sorted(set(document) - {"rule"})
    if unknown:
        raise RuleFileError(f"{name}: unknown top-level key {unknown[0]!r} (expected 'rule')")
    entries = document.get("rule", [])
    if not isinstance(entries, list):
        raise RuleFileError(f"{name}: 'rule' must be a list of tables")
    rules = []
    for number, entry in enumerate(entries, 1):
        try:
            rules.append(_rule(entry))
        except (TypeError, ValueError) as error:
            raise RuleFileError(f"{name}: rule {number}: {error}") from None
    return rules


def _decode(text: str, syntax: str, name: str) -> object:
    if syntax == "json":
        try:
            return json.loads(text, object_pairs_hook=_unique_keys)
        except ValueError as error:
            raise RuleFileError(f"{name}: not valid JSON: {error}") from None
    if syntax != "toml":
        raise ValueError(f"syntax must be 'toml' or 'json', not {syntax!r}")
    if sys.version_info >= (3, 11):
        import tomllib as toml
    else:  # Python 3.10: tomli when installed
        try:
            import tomli as toml  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise RuleFileError(
                f"{name}: TOML needs Python 3.11+ or the tomli package; use a .json file"
            ) from None
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as error:
        raise RuleFileError(f"{name}: not valid TOML: {error}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (JSON keeps the last one silently;
    TOML refuses it, so both forms mean the same)."""
    table: dict[str, Any] = {}
    for key, value in pairs:
        if key in table:
            raise ValueError(f"duplicate key {key!r}")
        table[key] = value
    return table


def _rule(entry: object) -> Rule:
    if not isinstance(entry, dict):
        raise TypeError("a rule must be a table")
    known = {*_MATCH, *_PATTERNS, *ACTIONS}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}")
    fields: dict[str, Any] = {key: entry[key] for key in _MATCH if key in entry}
    for key in _PATTERNS:
        if key in entry:
            plain = key.removesuffix("_regex")
            if plain in fields:
                raise ValueError(f"give {plain} or {key}, not both")
            fields[plain] = _pattern(entry[key], key)
    actions = [key for key in ACTIONS if key in entry]
    if len(actions) > 1:
        raise ValueError(f"one action per rule, got {', '.join(actions)}")
    if actions:
        fields["action"] = _action(actions[0], entry[actions[0]])
    return Rule(**fields)


def _pattern(value: object, key: str) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error as error:
        raise ValueError(f"{key} is not a valid regular expression: {error}") from None


def _action(name: str, options: object) -> Action:
    if not isinstance(options, dict):
        raise TypeError(f"{name} must be a table of its options ({name} = {{...}})")
    if name == "reply" and options.get("code") == 421:  # the file's words, not Python's
        raise ValueError("reply: 421 closes the connection: use disconnect = { text = ... }")
    try:
        return ACTIONS[name](**options)
    except TypeError as error:
        if "unexpected keyword" in str(error) or "positional argument" in str(error):
            raise TypeError(f"{name}: {str(error).split('.__init__() ')[-1]}") from None
        raise TypeError(f"{name}: {error}") from None
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
