"""scripts/check_dist.py finds each kind of packaging mistake (CI runs it on real builds)."""

from __future__ import annotations

import importlib.util
import io
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_dist.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_dist", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_dist = load_script()
SOURCES = sorted(
    name
    for suffix in (".py", ".pyx", ".pyi", ".typed")
    for name in check_dist.package_files(suffix)
)
COMPILED = [
    name.removesuffix(".pyx") + ".cpython-311-x86_64-linux-gnu.so"
    for name in check_dist.package_files(".pyx")
]
GOOD_WHEEL = [
    *SOURCES,
    *COMPILED,
    "smtpproto-0.1.0.dist-info/licenses/LICENSE",
    "smtpproto-0.1.0.dist-info/METADATA",
]
GOOD_SDIST = [*check_dist.SDIST_ROOT_FILES, *(f"src/{name}" for name in SOURCES)]
METADATA = b"Metadata-Version: 2.4\nName: smtpproto\nLicense-Expression: MIT\n"


def write_dist(folder: Path, wheel: Iterable[str], sdist: Iterable[str]) -> Path:
    with zipfile.ZipFile(folder / "smtpproto-0.1.0-cp311-cp311-linux_x86_64.whl", "w") as archive:
        for name in wheel:
            archive.writestr(name, METADATA if name.endswith("METADATA") else b"x")
    with tarfile.open(folder / "smtpproto-0.1.0.tar.gz", "w:gz") as archive:
        for name in sdist:
            info = tarfile.TarInfo(f"smtpproto-0.1.0/{name}")
            info.size = 1
            archive.addfile(info, io.BytesIO(b"x"))
    return folder


def problems(folder: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> list[str]:
    status = check_dist.main([str(folder), *flags])
    lines = [line for line in capsys.readouterr().out.splitlines() if "bytes" not in line]
    assert (status == 0) == (lines == ["check_dist: sdist and wheel hold what they should"])
    return lines


def test_good_distributions_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_dist(tmp_path, GOOD_WHEEL, GOOD_SDIST)
    assert problems(tmp_path, capsys) == ["check_dist: sdist and wheel hold what they should"]


@pytest.mark.parametrize(
    ("wheel", "sdist", "expected"),
    [
        ([*GOOD_WHEEL, "smtpproto/wire/_speedups.c"], GOOD_SDIST, "wheel: should not contain"),
        ([*GOOD_WHEEL, "tests/test_x.py"], GOOD_SDIST, "wheel: should not contain tests"),
        (
            [*GOOD_WHEEL, "smtpproto/__pycache__/x.cpython-311.pyc"],
            GOOD_SDIST,
            "wheel: should not contain",
        ),
        ([n for n in GOOD_WHEEL if "LICENSE" not in n], GOOD_SDIST, "licenses/LICENSE"),
        ([n for n in GOOD_WHEEL if not n.endswith(".so")], GOOD_SDIST, "no compiled object"),
        ([n for n in GOOD_WHEEL if not n.endswith("py.typed")], GOOD_SDIST, "missing"),
        ([n for n in GOOD_WHEEL if not n.endswith(".pyi")], GOOD_SDIST, "missing"),
        (GOOD_WHEEL, [n for n in GOOD_SDIST if n != "LICENSE"], "sdist: missing LICENSE"),
        (GOOD_WHEEL, [n for n in GOOD_SDIST if not n.endswith(".pyx")], "sdist: missing"),
        (GOOD_WHEEL, [*GOOD_SDIST, "src/smtpproto/wire/_speedups.c"], "sdist: should not"),
        (GOOD_WHEEL, [*GOOD_SDIST, ".venv/bin/python"], "sdist: should not contain .venv"),
        (GOOD_WHEEL, [*GOOD_SDIST, "src/smtpproto/wire/x.so"], "sdist: should not"),
    ],
)
def test_each_mistake_is_reported(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    wheel: list[str],
    sdist: list[str],
    expected: str,
) -> None:
    write_dist(tmp_path, wheel, sdist)
    assert any(expected in line for line in problems(tmp_path, capsys))


def test_a_pure_wheel_must_not_carry_compiled_objects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dist(tmp_path, GOOD_WHEEL, GOOD_SDIST)
    assert any("a pure build" in line for line in problems(tmp_path, capsys, "--pure"))
    pure = tmp_path / "pure"
    pure.mkdir()
    write_dist(pure, [n for n in GOOD_WHEEL if not n.endswith(".so")], GOOD_SDIST)
    assert problems(pure, capsys, "--pure") == ["check_dist: sdist and wheel hold what they should"]


def test_missing_metadata_licence_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dist(tmp_path, [n for n in GOOD_WHEEL if not n.endswith("METADATA")], GOOD_SDIST)
    assert any("License-Expression" in line for line in problems(tmp_path, capsys))


def test_a_folder_without_both_artifacts_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_dist.main([str(tmp_path)]) == 1
    assert "expected one sdist and one wheel" in capsys.readouterr().out
