"""Sphinx configuration: ``sphinx-build -W -b html docs docs/_build/html`` (CI runs it).

Decisions (see docs/index.md "About these docs"):

* Markdown pages through myst-parser; the API reference through autodoc from the
  docstrings (reStructuredText inside the docstrings, as written).
* ``-W`` (warnings are errors) but not ``-n`` (nitpicky): autodoc of typed signatures
  names many objects that have no page of their own (private bases, ``TypeAlias``
  targets, names imported only under ``TYPE_CHECKING``), and nitpicky would fail on
  each of them without telling a reader anything.
* intersphinx to Python's docs reads a local ``objects.inv`` (Debian's ``python3-doc``,
  or ``SMTPPROTO_PYTHON_INVENTORY``) and never fetches: CI has no network except the
  package index. Without a local inventory, standard-library names are plain text.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from smtpproto import __version__  # noqa: E402

project = "smtpproto"
author = "The smtpproto authors"
copyright = "2026, The smtpproto authors"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
root_doc = "index"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"smtpproto {release}"


def _python_inventory() -> str | None:
    """A local copy of Python's ``objects.inv``, or ``None``."""
    candidates = [os.environ.get("SMTPPROTO_PYTHON_INVENTORY", "")]
    candidates += [str(path) for path in Path("/usr/share/doc").glob("python3*/html/objects.inv")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


_inventory = _python_inventory()
intersphinx_mapping = (
    {"python": ("https://docs.python.org/3", _inventory)} if _inventory is not None else {}
)
intersphinx_timeout = 1
if _inventory is None:
    print("docs: no local Python objects.inv (install python3-doc): no intersphinx links")
