"""Check what ``python -m build`` put into the sdist and the wheel.

    python -m build -o dist . && python scripts/check_dist.py dist

The sdist must hold everything a build needs (``pyproject.toml``, ``setup.py``, every
module, the ``.pyx`` sources and their ``.pyi`` stubs, ``py.typed``) plus ``LICENSE``,
``README.md``, ``CHANGELOG.md``, and nothing generated (no ``.c``: Cython regenerates it
from the ``.pyx``) or local (``tests/``, ``.venv``, caches, compiled objects).

The wheel must hold every module of ``src/smtpproto``, ``py.typed``, the ``.pyi``
stubs, the ``LICENSE`` in its ``.dist-info`` and one compiled shared object per ``.pyx``
(unless ``--pure``, for a build with ``SMTPPROTO_NO_EXTENSIONS=1``), and no ``.c``, no
tests and no local junk. Every problem is printed; the exit status is 1 if there is one.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "smtpproto"

#: Path parts that never belong in a distribution.
JUNK_PARTS = frozenset(
    {
        "tests",
        ".venv",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        ".git",
        "build",
        "dist",
        "bench",
        "fuzz",
    }
)
#: File suffixes that never belong in either distribution (``.so`` only in the wheel).
JUNK_SUFFIXES = frozenset({".c", ".pyc", ".pyo", ".o"})
#: Files of the repository's root the sdist must carry.
SDIST_ROOT_FILES = ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "setup.py")


def package_files(suffix: str) -> set[str]:
    """The repository's package files ending in ``suffix``, as ``smtpproto/...`` paths."""
    return {
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob(f"*{suffix}")
        if "__pycache__" not in path.parts
    }


def junk(names: Iterable[str], *, allow_shared_objects: bool) -> list[str]:
    """The names among ``names`` that are generated, compiled or local files."""
    found = []
    for name in names:
        path = PurePosixPath(name)
        shared_object = path.suffix in {".so", ".pyd"}
        parts = set(path.parts)
        if "smtpproto" in path.parts and path.parts[path.parts.index("smtpproto") + 1 :][:1] == (
            "fuzz",
        ):
            parts.discard("fuzz")  # the smtpproto.fuzz package, not the fuzz/ harnesses
        if (
            JUNK_PARTS.intersection(parts)
            or path.suffix in JUNK_SUFFIXES
            or (shared_object and not allow_shared_objects)
        ):
            found.append(name)
    return sorted(found)


def check_sdist(path: Path) -> list[str]:
    """Problems of the sdist at ``path``."""
    with tarfile.open(path) as archive:
        members = archive.getnames()
    top = PurePosixPath(members[0]).parts[0]
    names = {
        PurePosixPath(*PurePosixPath(name).parts[1:]).as_posix()
        for name in members
        if PurePosixPath(name).parts[0] == top and len(PurePosixPath(name).parts) > 1
    }
    problems = [f"sdist: missing {name}" for name in SDIST_ROOT_FILES if name not in names]
    wanted = {
        f"src/{name}"
        for suffix in (".py", ".pyx", ".pyi", ".typed")
        for name in package_files(suffix)
    }
    problems += [f"sdist: missing {name}" for name in sorted(wanted - names)]
    problems += [
        f"sdist: should not contain {name}" for name in junk(names, allow_shared_objects=False)
    ]
    return problems


def check_wheel(path: Path, *, pure: bool) -> list[str]:
    """Problems of the wheel at ``path``; ``pure`` for a build without the extensions."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        metadata = next(
            (archive.read(name).decode() for name in names if name.endswith(".dist-info/METADATA")),
            "",
        )
    problems = []
    wanted = {
        name for suffix in (".py", ".pyx", ".pyi", ".typed") for name in package_files(suffix)
    }
    problems += [f"wheel: missing {name}" for name in sorted(wanted - names)]
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in names):
        problems.append("wheel: missing .dist-info/licenses/LICENSE")
    if "License-Expression: MIT" not in metadata.splitlines():
        problems.append("wheel: METADATA lacks 'License-Expression: MIT'")
    compiled = {name for name in names if PurePosixPath(name).suffix in {".so", ".pyd"}}
    if pure:
        problems += [f"wheel: a pure build should not contain {name}" for name in sorted(compiled)]
    else:
        for source in sorted(package_files(".pyx")):
            stem = source.removesuffix(".pyx")
            if not any(name.startswith(stem + ".") for name in compiled):
                problems.append(f"wheel: no compiled object for {source}")
    problems += [
        f"wheel: should not contain {name}" for name in junk(names, allow_shared_objects=True)
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dist", type=Path, help="the folder python -m build wrote")
    parser.add_argument(
        "--pure", action="store_true", help="the wheel was built without the C twins"
    )
    args = parser.parse_args(argv)
    sdists = sorted(args.dist.glob("smtpproto-*.tar.gz"))
    wheels = sorted(args.dist.glob("smtpproto-*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        print(
            f"check_dist: expected one sdist and one wheel in {args.dist}, found {sdists + wheels}"
        )
        return 1
    problems = check_sdist(sdists[0]) + check_wheel(wheels[0], pure=args.pure)
    for problem in problems:
        print(f"check_dist: {problem}")
    for artifact in (sdists[0], wheels[0]):
        print(f"check_dist: {artifact.name}: {artifact.stat().st_size} bytes")
    if not problems:
        print("check_dist: sdist and wheel hold what they should")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
