"""The planted-flaw server itself: every flaw is reached by its dialogue (the server logs
``FLAW-TRIGGERED``; a crash flaw ends the process, a hang flaw leaves others served), and
the clean server answers the same dialogue as a strict RFC 5321 server must.

Non-crash flaws share one server (each dialogue opens its own connection); a crash flaw
gets its own process. These tests cost a few seconds: about 30 short-lived processes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .dialogues import CLEAN, DIALOGUES, converse
from .flaws import FLAWS, catalogue_markdown
from .servers import Target, start_flawed

SHARED = sorted(
    name
    for name, flaw in FLAWS.items()
    if flaw.kind not in ("crash", "hang") and name != "auth-bypass-after-failure"
)
SOLO = sorted(set(FLAWS) - set(SHARED))


def test_every_flaw_has_a_dialogue_and_a_clean_answer() -> None:
    assert set(DIALOGUES) == set(FLAWS) == set(CLEAN)


def _wait_for(target: Target, name: str, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while name not in target.triggered() and time.monotonic() < deadline:
        time.sleep(0.02)
    return target.triggered()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with start_flawed(tmp_path_factory.mktemp("shared"), SHARED, seed=7) as target:
        yield target


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with start_flawed(tmp_path_factory.mktemp("clean"), seed=7) as target:
        yield target


@pytest.fixture(scope="module")
def clean_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with start_flawed(tmp_path_factory.mktemp("clean"), seed=7, require_auth=True) as target:
        yield target


@pytest.mark.parametrize("name", SHARED)
def test_shared_flaw_is_triggered(shared: Target, name: str) -> None:
    converse(shared.port, DIALOGUES[name], None)
    assert name in _wait_for(shared, name)
    assert shared.alive()


@pytest.mark.parametrize("name", SOLO)
def test_solo_flaw_is_triggered(tmp_path: Path, name: str) -> None:
    options = {"require_auth": name == "auth-bypass-after-failure"}
    with start_flawed(tmp_path, [name], **options) as target:
        converse(target.port, DIALOGUES[name], None, wait=2.0)
        assert name in _wait_for(target, name)
        if FLAWS[name].kind == "crash":
            target.process.wait(10)
            assert not target.alive()
        else:
            assert target.alive()
            assert converse(target.port, [b"NOOP\r\n"], rb"250 2\.0\.0 OK").endswith(b"OK\r\n")


@pytest.mark.parametrize("name", sorted(FLAWS))
def test_clean_server_answers_correctly(clean: Target, clean_auth: Target, name: str) -> None:
    target = clean_auth if name == "auth-bypass-after-failure" else clean
    got = converse(target.port, DIALOGUES[name], CLEAN[name])
    expected = CLEAN[name]
    if expected is not None:
        pattern = expected.encode() if isinstance(expected, str) else expected
        assert re.search(pattern, got, re.DOTALL), got[-300:]
    assert target.triggered() == []
    assert target.alive()


def test_thresholds_are_drawn_from_the_seed_and_printed(tmp_path: Path) -> None:
    with start_flawed(tmp_path, seed=1) as one, start_flawed(tmp_path, seed=2) as two:
        first, second = json.loads(one.info["THRESHOLDS"]), json.loads(two.info["THRESHOLDS"])
    assert first["seed"] == 1
    assert first != second


def test_flaws_md_is_the_catalogue() -> None:
    """FLAWS.md is generated: ``python tests/fuzz/flawed_server.py --markdown > FLAWS.md``."""
    assert (Path(__file__).parent / "FLAWS.md").read_text(encoding="utf-8") == catalogue_markdown()
