"""Build the optional Cython twins (every ``.pyx`` under ``src/smtpproto``, today the
wire layer's ``src/smtpproto/wire/_speedups.pyx`` and ``_dataenc_c.pyx``).

Every ``.pyx`` file in the package tree is compiled. A compile failure fails the
build loudly: nobody gets a silently slow install. Set ``SMTPPROTO_NO_EXTENSIONS=1`` to
build the pure-Python package instead (the same variable also makes the package ignore an
already-built extension at import time).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

NO_EXTENSIONS = bool(os.environ.get("SMTPPROTO_NO_EXTENSIONS"))
HERE = Path(__file__).parent
SOURCE_ROOT = HERE / "src"
PYX_FILES = sorted((SOURCE_ROOT / "smtpproto").rglob("*.pyx"))


class LoudBuildExt(build_ext):
    """Turn any compiler failure into an error that names the escape hatch."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            raise SystemExit(self._message(exc)) from exc

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            raise SystemExit(self._message(exc)) from exc

    @staticmethod
    def _message(exc: BaseException) -> str:
        return (
            f"smtpproto: building the Cython extension failed: {exc}\n"
            "Install a C compiler and the Python headers, or set "
            "SMTPPROTO_NO_EXTENSIONS=1 to install the pure-Python package."
        )


def extensions() -> list:  # type: ignore[type-arg]
    if NO_EXTENSIONS:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        raise SystemExit(
            "smtpproto: Cython is required to build the extension "
            f"({exc}); set SMTPPROTO_NO_EXTENSIONS=1 to install the pure-Python package."
        ) from exc
    modules = [
        (
            ".".join(path.relative_to(SOURCE_ROOT).with_suffix("").parts),
            str(path.relative_to(HERE)),
        )
        for path in PYX_FILES
    ]
    from setuptools import Extension

    # -g0 comes after the interpreter's own CFLAGS (which carry -g) and wins: without
    # debug information the wheel's shared objects are about five times smaller.
    # MSVC has no -g0 and adds no debug information by default.
    compile_args = [] if sys.platform == "win32" else ["-g0"]
    exts = [Extension(name, [source], extra_compile_args=compile_args) for name, source in modules]
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": LoudBuildExt})
