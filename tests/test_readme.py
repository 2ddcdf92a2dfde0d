"""The README's self-contained Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
# Examples that need no outside server: the engine alone and the built-in server.
RUNNABLE = [block for block in BLOCKS if "mail.example.com" not in block]


def test_readme_has_runnable_examples() -> None:
    assert len(RUNNABLE) >= 3


@pytest.mark.parametrize("source", RUNNABLE, ids=lambda source: source.splitlines()[0][:40])
def test_readme_example_runs(source: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(source, str(README), "exec"), {"__name__": "readme_example"})


SETUP = README.read_text(encoding="utf-8").split("## Set-up", 1)[1].split("\n## ", 1)[0]
SETUP_COMMANDS = re.findall(r"```sh\n(.*?)```", SETUP, re.DOTALL)


def test_setup_commands_need_no_sudo() -> None:
    """Root containers and CI images have no sudo: README's two set-up commands run as
    they are there; .ci/install-peers uses sudo itself only when it is not root."""
    assert len(SETUP_COMMANDS) == 2
    for command in SETUP_COMMANDS:
        assert "sudo" not in command.split()
    install_peers = (README.parent / ".ci" / "install-peers").read_text(encoding="utf-8")
    assert 'if [ "$(id -u)" -ne 0 ]; then' in install_peers
    assert 'exec sudo --preserve-env=SMTPPROTO_EXIM_ROOT bash "$0"' in install_peers


def test_setup_runs_the_test_command_of_ci() -> None:
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert ".venv/bin/python -m pytest" in SETUP_COMMANDS[1]
    assert ".venv/bin/python -m pytest" in ci
    assert "bash .ci/install-peers" in SETUP_COMMANDS[1]
