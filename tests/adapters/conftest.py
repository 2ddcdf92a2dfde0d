"""Fixtures for the shared adapter suite: the adapter under test and TLS material.

The interop fixtures (real aiosmtpd, smtp-sink and Exim peers) come from
``tests/interop/conftest.py``, imported here so the adapter tests can use them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from interop.conftest import (  # noqa: F401 -- fixtures re-exported for this folder
    aiosmtpd_factory,
    aiosmtpd_tls_server,
    exim_factory,
    exim_server,
    haproxy_proxy,
    postfix_proxy,
    smtp_sink,
    smtp_sink_factory,
    tls_material,
)

from .facade import ADAPTERS, SyncClient, open_client


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> str:
    """The name of the adapter under test (every registered one in turn)."""
    name: str = request.param
    return name


@pytest.fixture
def make_client(adapter: str) -> Callable[..., SyncClient]:
    """``make_client(**kwargs)``: an unconnected client of the adapter under test."""

    def make(**kwargs: Any) -> SyncClient:
        return open_client(adapter, **kwargs)

    return make
