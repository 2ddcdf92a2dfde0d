"""The pytest plugin and the examples of docs/testing-server.md, run as a user runs them.

``examples/testing_server`` (an app that sends mail and its tests) runs in a fresh
pytest process where the fixtures come from the ``pytest11`` entry point alone; without
the entry point they come from ``-p smtpproto.testing`` (a vendored copy's way). Plugin
edge cases (the marker, a policy that raised) run the same way from a temporary folder.
Importing the plugin loads none of the server.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from smtpproto.testing import load_rules

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "testing_server"
TIMEOUT = 120


def _pytest(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        check=False,
    )


def test_the_examples_pass_with_the_entry_point_plugin() -> None:
    result = _pytest(str(EXAMPLES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed" in result.stdout


def test_the_fixtures_come_from_the_entry_point_or_from_smtpproto_testing() -> None:
    missing = _pytest("-p", "no:smtpproto", str(EXAMPLES / "test_mailer.py"))
    assert missing.returncode != 0 and "'smtp_server' not found" in missing.stdout
    vendored = _pytest(
        "-p", "no:smtpproto", "-p", "smtpproto.testing", "-k", "greylisting", str(EXAMPLES)
    )  # fmt: skip
    assert vendored.returncode == 0, vendored.stdout + vendored.stderr
    assert "1 passed" in vendored.stdout


PLUGIN_CASES = """
import pytest
from smtpproto.testing import Context, Respond


@pytest.mark.smtp_server(lmtp=True, starttls=False, max_message_size=1000)
def test_marker_options(smtp_server):
    assert smtp_server.cert_path is None
    assert smtp_server._server.lmtp and smtp_server._server.config.max_message_size == 1000


@pytest.mark.smtp_server("positional")
def test_marker_positional(smtp_server):
    pass


@pytest.mark.smtp_server(max_mesage_size=10)
def test_marker_typo(smtp_server):
    pass


def test_hook_raised(smtp_server, smtp_rules):
    import smtplib

    def hook(context: Context) -> Respond | None:
        raise RuntimeError("bug in my hook")

    smtp_rules.hook = hook
    with pytest.raises(smtplib.SMTPConnectError) as info:  # 421 instead of the greeting
        smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10)
    assert info.value.smtp_code == 421
"""


def test_plugin_markers_and_policy_errors(tmp_path: Path) -> None:
    (tmp_path / "test_cases.py").write_text(textwrap.dedent(PLUGIN_CASES), encoding="utf-8")
    result = _pytest("-W", "error", "--strict-markers", str(tmp_path), cwd=tmp_path)
    out = result.stdout
    assert "PASSED test_cases.py::test_marker_options" in out, out
    assert "ERROR test_cases.py::test_marker_positional" in out, out
    assert "takes keyword options only" in out, out
    assert "ERROR test_cases.py::test_marker_typo" in out, out
    assert "unexpected keyword argument 'max_mesage_size'" in out, out
    assert "ERROR test_cases.py::test_hook_raised" in out, out  # at teardown
    assert "the server's policy raised: RuntimeError('bug in my hook')" in out, out


def test_importing_the_plugin_loads_none_of_the_server() -> None:
    code = (
        "import sys, smtpproto.builtin_server.pytest_plugin\n"
        "loaded = [m for m in ('smtpproto.builtin_server.server', 'smtpproto.builtin_server"
        ".backend', 'smtpproto.builtin_server.testing') if m in sys.modules]\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_example_rule_file_loads() -> None:
    rules = load_rules(EXAMPLES / "rules.toml")
    assert [rule.stage for rule in rules] == ["rcpt", "rcpt", "data_end", "mail"]


def _doc_blocks() -> list[str]:
    text = (ROOT / "docs" / "testing-server.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_the_python_examples_of_the_docs_run_as_written(tmp_path: Path) -> None:
    blocks = _doc_blocks()
    assert len(blocks) >= 6
    standalone = [block for block in blocks if "with run_server(" in block]
    assert len(standalone) == 3  # the rules, greylisting without waiting, the hook
    for block in blocks:
        compile(block, "docs/testing-server.md", "exec")
    for block in standalone:  # each starts a server, runs its `...` body and stops it
        exec(compile(block, "docs/testing-server.md", "exec"), {})
    # The pytest block, against the example app's ``signup_view`` and its conftest.
    (pytest_block,) = [block for block in blocks if "def test_" in block]
    for name in ("mailer.py", "conftest.py"):
        (tmp_path / name).write_text((EXAMPLES / name).read_text(encoding="utf-8"))
    test = "from mailer import signup_view\n" + pytest_block
    (tmp_path / "test_docs.py").write_text(test, encoding="utf-8")
    result = _pytest("--strict-markers", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout
