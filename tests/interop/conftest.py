"""Fixtures that run real SMTP peers on 127.0.0.1 (see ``peers.py``).

Every fixture stops its peer at teardown. A peer that is not installed fails the test
with a message naming ``.ci/install-peers``; with ``SMTPPROTO_ALLOW_MISSING_PEERS=1`` it
skips instead (for machines that cannot install Postfix or Exim).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .peers import (
    AiosmtpdPeer,
    PeerMissing,
    SinkPeer,
    TLSMaterial,
    make_tls_material,
    start_aiosmtpd,
    start_smtp_sink,
)
from .peers_exim import EximPeer, start_exim
from .peers_haproxy import HaproxyPeer, start_haproxy_proxy
from .peers_postfix import PostfixPeer, start_postfix_proxy

T = TypeVar("T")


def _enter(stack: ExitStack, manager: AbstractContextManager[T]) -> T:
    """Enter a peer's context; turn ``PeerMissing`` into a fail (or a skip when allowed)."""
    try:
        return stack.enter_context(manager)
    except PeerMissing as exc:
        if os.environ.get("SMTPPROTO_ALLOW_MISSING_PEERS") == "1":
            pytest.skip(f"{exc} (SMTPPROTO_ALLOW_MISSING_PEERS=1)")
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    """A trustme CA and server certificate for localhost/127.0.0.1/::1, as PEM files."""
    return make_tls_material(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def aiosmtpd_factory() -> Iterator[Callable[..., AiosmtpdPeer]]:
    """``start(**options) -> AiosmtpdPeer`` with ``start_aiosmtpd``'s keyword options.

    Every server it started is stopped at teardown.
    """
    with ExitStack() as stack:

        def start(**options: Any) -> AiosmtpdPeer:
            return _enter(stack, start_aiosmtpd(**options))

        yield start


@pytest.fixture
def aiosmtpd_server(aiosmtpd_factory: Callable[..., AiosmtpdPeer]) -> AiosmtpdPeer:
    """aiosmtpd with SMTPUTF8, without TLS or AUTH."""
    return aiosmtpd_factory()


@pytest.fixture
def aiosmtpd_tls_server(
    aiosmtpd_factory: Callable[..., AiosmtpdPeer], tls_material: TLSMaterial
) -> AiosmtpdPeer:
    """aiosmtpd with STARTTLS (trust ``tls_material.ca_path``), AUTH after TLS, SMTPUTF8."""
    return aiosmtpd_factory(tls=tls_material, auth=True, auth_require_tls=True)


@pytest.fixture
def smtp_sink_factory() -> Iterator[Callable[..., SinkPeer]]:
    """``start(**options) -> SinkPeer`` with ``start_smtp_sink``'s keyword options."""
    with ExitStack() as stack:

        def start(**options: Any) -> SinkPeer:
            return _enter(stack, start_smtp_sink(**options))

        yield start


@pytest.fixture
def smtp_sink(smtp_sink_factory: Callable[..., SinkPeer]) -> SinkPeer:
    """Postfix smtp-sink with PIPELINING and 8BITMIME, dumping every message to a file."""
    return smtp_sink_factory()


@pytest.fixture
def exim_factory() -> Iterator[Callable[..., EximPeer]]:
    """``start(**options) -> EximPeer`` with ``start_exim``'s keyword options."""
    with ExitStack() as stack:

        def start(**options: Any) -> EximPeer:
            return _enter(stack, start_exim(**options))

        yield start


@pytest.fixture
def exim_server(exim_factory: Callable[..., EximPeer]) -> EximPeer:
    """Exim 4: PIPELINING, CHUNKING, 8BITMIME, DSN, SMTPUTF8, PRDR, STARTTLS, AUTH after TLS.

    Trust ``exim_server.tls.ca_path``; log in as ``peers.AUTH_USER``/``AUTH_PASSWORD``.
    """
    return exim_factory()


@pytest.fixture(scope="session")
def postfix_proxy() -> Iterator[PostfixPeer]:
    """A private Postfix smtpd that reads HAProxy PROXY headers and refuses the proxied
    clients in ``peers_postfix.REFUSED`` (one instance for the session); its
    ``tls_port`` speaks implicit TLS (trust ``postfix_proxy.tls.ca_path``)."""
    with ExitStack() as stack:
        yield _enter(stack, start_postfix_proxy())


@pytest.fixture(scope="session")
def haproxy_proxy() -> Iterator[HaproxyPeer]:
    """HAProxy with ``accept-proxy`` in front of the built-in server (no STARTTLS),
    logging what it read from each PROXY header (one instance for the session)."""
    from smtpproto.testing import run_server

    with run_server(starttls=False) as server, ExitStack() as stack:
        yield _enter(stack, start_haproxy_proxy((server.host, server.port)))
