"""Shared fixtures: every parser test runs against both twins."""

from __future__ import annotations

import pytest

from smtpproto import CReplyParser, PyReplyParser

PARSER_TWINS = [pytest.param(PyReplyParser, id="py")]
if CReplyParser is not None:
    PARSER_TWINS.append(pytest.param(CReplyParser, id="c"))


@pytest.fixture(params=PARSER_TWINS)
def parser_cls(request: pytest.FixtureRequest) -> type[PyReplyParser]:
    """The reply parser class under test: the Python twin, then the compiled twin."""
    return request.param  # type: ignore[no-any-return]
