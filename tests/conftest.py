"""Shared fixtures: every parser test runs against both twins.

The compiled twin is a test parameter whenever it is expected (CPython without
``SMTPPROTO_NO_EXTENSIONS``, ``wire.twins.USE_EXTENSIONS``): if it was not built, its
tests fail instead of vanishing, as multidict's fixtures do. With the variable set the
compiled parameters are absent, not skipped.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from conftest_datacodec import MISSING_TWIN, MissingTwin, twin_params
from smtpproto.wire.twins import CReplyParser, PyReplyParser

PARSER_TWINS = twin_params(PyReplyParser, CReplyParser)


def _ignored_signals_reach_children() -> None:
    """Tests stop the CLI processes they start with SIGINT (Ctrl-C) or SIGHUP. A suite
    started with those ignored (a background job of a non-interactive shell ignores
    SIGINT, ``nohup`` SIGHUP) would pass ``SIG_IGN`` on to every child, which then never
    stops. A Python handler that does nothing keeps them ignored here, and ``exec``
    resets a handler (unlike ``SIG_IGN``) to the default in the children."""
    for name in ("SIGINT", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is signal.SIG_IGN:
            signal.signal(number, lambda signum, frame: None)


_ignored_signals_reach_children()


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
