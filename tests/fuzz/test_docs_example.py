"""docs/fuzzing.md's aiosmtpd example runs as written: extracted, then run by pytest in a
subprocess (as a user would run it), against current aiosmtpd."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "fuzzing.md"


def example() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Example: fuzz an aiosmtpd handler in pytest", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_the_aiosmtpd_example_passes(tmp_path: Path) -> None:
    path = tmp_path / "test_fuzz_my_handler.py"
    path.write_text(example(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
