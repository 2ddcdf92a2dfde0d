"""AUTH EXTERNAL (RFC 4422 App. A) through every adapter against Exim's ``external``
authenticator: the client certificate in the client's ``ssl_context`` is the identity,
``External()`` sends an empty authorisation identity (derive it: the certificate's CN)
and ``External(authzid)`` asks for one, which Exim grants only when it is that CN."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from interop.conftest import _enter
from interop.peers_exim import EximPeer, start_exim
from smtpproto.exceptions import SMTPReplyError
from smtpproto.sasl import External

from .exim_client import exim_client
from .facade import SyncClient

pytestmark = pytest.mark.interop

MakeClient = Callable[..., SyncClient]
CN = "adapter-client.example.test"
CONTENT = b"Subject: external\r\n\r\ncertificate identity\r\n"


@pytest.fixture(scope="module")
def exim() -> Iterator[EximPeer]:
    with ExitStack() as stack:
        yield _enter(stack, start_exim(external=True))


def _client(make_client: MakeClient, exim: EximPeer, directory: Path) -> SyncClient:
    leaf = exim.tls.ca.issue_cert(CN, common_name=CN)
    cert, key = directory / "cert.pem", directory / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    context = exim.tls.client_context()
    context.load_cert_chain(cert, key)
    return exim_client(make_client, exim, ssl_context=context, tls="required")


@pytest.mark.parametrize("authzid", ["", CN])
def test_external_login_with_the_client_certificate(
    make_client: MakeClient, exim: EximPeer, tmp_path: Path, authzid: str
) -> None:
    before = len(exim.messages())
    with _client(make_client, exim, tmp_path) as client:
        caps = client.capabilities
        assert caps is not None and "EXTERNAL" in caps.auth_mechanisms
        assert client.login("", mechanism=External(authzid)).code == 235
        client.sendmail("a@example.org", "b@example.org", CONTENT)
    exim.wait_for_messages(before + 1)
    assert f"A=external_server:{CN}" in exim.log()


def test_external_with_another_identity_is_refused(
    make_client: MakeClient, exim: EximPeer, tmp_path: Path
) -> None:
    with _client(make_client, exim, tmp_path) as client:
        with pytest.raises(SMTPReplyError) as caught:
            client.login("", mechanism=External("mallory"))
        assert caught.value.reply.code == 535 and caught.value.command == "AUTH"
