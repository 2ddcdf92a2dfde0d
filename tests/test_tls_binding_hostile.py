"""A peer certificate the DER reader cannot read gives no channel binding, no crash.

Before, ``channel_binding`` (called by every adapter right after the handshake) let the
reader's ``ValueError`` escape ``connect()``: a server could trigger it with a
certificate OpenSSL accepts, e.g. an RSASSA-PSS signature algorithm without parameters,
whenever verification was off.
"""

from __future__ import annotations

import pytest

from smtpproto.adapters.tls import certificate_signature_hash, channel_binding, tls_server_end_point

_TBS = bytes.fromhex("3000")  # an empty tbsCertificate: the reader skips it
_PSS_WITHOUT_PARAMETERS = bytes.fromhex("300b06092a864886f70d01010a")
_SIGNATURE = bytes.fromhex("030100")
_BODY = _TBS + _PSS_WITHOUT_PARAMETERS + _SIGNATURE
_DER = bytes([0x30, len(_BODY)]) + _BODY


class _Connection:
    """What the helpers ask of an ``SSLObject`` after the handshake."""

    def __init__(self, der: bytes) -> None:
        self.der = der

    def getpeercert(self, binary_form: bool = False) -> bytes:
        return self.der

    def version(self) -> str:
        return "TLSv1.3"


def test_the_reader_refuses_the_certificate() -> None:
    with pytest.raises(ValueError, match="RSASSA-PSS"):
        certificate_signature_hash(_DER)


@pytest.mark.parametrize("der", [_DER, b"\x30\x03\x01", b"not DER at all"])
def test_unreadable_certificate_gives_no_binding(der: bytes) -> None:
    connection: object = _Connection(der)
    assert tls_server_end_point(connection) is None  # type: ignore[arg-type]  # a stand-in
    assert channel_binding(connection) is None  # type: ignore[arg-type]  # a stand-in
