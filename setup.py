"""Build the optional Cython twins (``src/smtpproto/*.pyx``).

Every ``.pyx`` file next to the package sources is compiled. A compile failure fails the
build loudly: nobody gets a silently slow install. Set ``SMTPPROTO_NO_EXTENSIONS=1`` to
build the pure-Python package instead (the same variable also makes the package ignore an
already-built extension at import time).
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

NO_EXTENSIONS = bool(os.environ.get("SMTPPROTO_NO_EXTENSIONS"))
HERE = Path(__file__).parent
PYX_FILES = sorted((HERE / "src" / "smtpproto").glob("*.pyx"))


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
        (f"smtpproto.{path.stem}", str(path.relative_to(HERE))) for path in PYX_FILES
    ]
    from setuptools import Extension

    exts = [Extension(name, [source]) for name, source in modules]
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": LoudBuildExt})
