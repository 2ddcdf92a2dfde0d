"""Shared fixtures: every parser test runs against both twins.

The compiled twin is a test parameter whenever it is expected (CPython without
``SMTPPROTO_NO_EXTENSIONS``, ``wire.twins.USE_EXTENSIONS``): if it was not built, its
tests fail instead of vanishing, as multidict's fixtures do. With the variable set the
compiled parameters are absent, not skipped.
"""

from __future__ import annotations

from typing import Any

import pytest

from conftest_datacodec import MISSING_TWIN, MissingTwin, twin_params
from smtpproto.wire.twins import CReplyParser, PyReplyParser

PARSER_TWINS = twin_params(PyReplyParser, CReplyParser)


@pytest.fixture(autouse=True)
def _compiled_twins_built(request: pytest.FixtureRequest) -> None:
    """Fail a test parametrised with a compiled twin that was expected but not built."""
    callspec: Any = getattr(request.node, "callspec", None)
    if callspec is not None and any(
        isinstance(value, type) and issubclass(value, MissingTwin)
        for value in callspec.params.values()
    ):
        pytest.fail(MISSING_TWIN, pytrace=False)


@pytest.fixture(params=PARSER_TWINS)
def parser_cls(request: pytest.FixtureRequest) -> type[PyReplyParser]:
    """The reply parser class under test: the Python twin, then the compiled twin."""
    return request.param  # type: ignore[no-any-return]
