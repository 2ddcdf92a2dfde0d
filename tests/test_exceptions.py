"""The adapters' exception hierarchy: attributes, escaping, secrets, pickling."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto import LocalProtocolError, RemoteProtocolError, Reply
from smtpproto.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPDeliveryTimeoutError,
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
    SMTPTimeoutError,
    SMTPTLSError,
)

OK = Reply(250, (b"2.1.5 OK",))
UNKNOWN_USER = Reply(550, (b"5.1.1 <bob@example.test>: user unknown",))
BUSY = Reply(451, (b"4.3.0 try again later",))


def test_every_class_is_an_smtp_error() -> None:
    for cls in (
        SMTPConnectError,
        SMTPTLSError,
        SMTPTimeoutError,
        SMTPProtocolError,
        SMTPReplyError,
        SMTPRecipientsRefused,
        SMTPDeliveryStatusUnknown,
        SMTPDeliveryTimeoutError,
    ):
        assert issubclass(cls, SMTPError), cls


def test_delivery_timeout_is_both_a_timeout_and_unknown_status() -> None:
    error = SMTPDeliveryTimeoutError(
        "no reply after 600 s", timeout=600.0, sender="a@x.test", recipients=["b@y.test"]
    )
    assert isinstance(error, SMTPTimeoutError)
    assert isinstance(error, SMTPDeliveryStatusUnknown)
    assert error.delivery_status_unknown is True
    assert error.timeout == 600.0
    assert error.waiting_for == "reply to the end of content"
    assert error.recipients == ("b@y.test",)
    assert "may have been delivered" in str(error)
    plain = SMTPTimeoutError("no greeting", waiting_for="greeting", timeout=300.0)
    assert plain.delivery_status_unknown is False
    assert not isinstance(plain, SMTPDeliveryStatusUnknown)
    assert (plain.waiting_for, plain.timeout) == ("greeting", 300.0)


def test_reply_error_carries_the_reply() -> None:
    error = SMTPReplyError(UNKNOWN_USER, command="RCPT TO:<bob@example.test>")
    assert error.reply is UNKNOWN_USER
    assert error.code == 550
    assert str(error.enhanced) == "5.1.1"
    assert error.command == "RCPT"
    assert not error.is_transient
    assert str(error) == "RCPT refused: 550 5.1.1 <bob@example.test>: user unknown"
    assert error.explain() == UNKNOWN_USER.explain("RCPT")
    assert SMTPReplyError(BUSY).is_transient
    assert str(SMTPReplyError(BUSY)).startswith("server refused: 451 ")


def test_reply_error_keeps_only_the_verb_so_secrets_never_leak() -> None:
    secret = "AGFsaWNlAHMzY3JldA=="  # base64 of an AUTH PLAIN response
    error = SMTPReplyError(Reply(535, (b"5.7.8 bad credentials",)), command=f"auth PLAIN {secret}")
    assert error.command == "AUTH"
    for text in (str(error), repr(error), error.explain()):
        assert secret not in text


@pytest.mark.parametrize("command", ["", "   ", "\x1b[31m", "RCPT-TO", "42"])
def test_reply_error_rejects_a_command_that_is_not_a_verb(command: str) -> None:
    with pytest.raises(ValueError, match="SMTP verb"):
        SMTPReplyError(UNKNOWN_USER, command=command)


def test_reply_error_rejects_bad_types() -> None:
    with pytest.raises(TypeError, match="Reply"):
        SMTPReplyError(550)  # type: ignore[arg-type]  # wrong type on purpose
    with pytest.raises(TypeError, match="command"):
        SMTPReplyError(UNKNOWN_USER, command=b"RCPT")  # type: ignore[arg-type]  # on purpose


@given(st.lists(st.binary().filter(lambda b: b"\n" not in b), min_size=1, max_size=4))
def test_server_text_is_escaped_in_every_message(lines: list[bytes]) -> None:
    reply = Reply(554, lines)
    for error in (
        SMTPReplyError(reply, command="DATA"),
        SMTPRecipientsRefused([("a@x.test", reply)]),
    ):
        for line in str(error).split("\n"):
            assert line.isprintable(), line


def test_recipients_refused_carries_every_result() -> None:
    error = SMTPRecipientsRefused([("a@x.test", UNKNOWN_USER), ("b@x.test", BUSY)])
    assert error.results == (("a@x.test", UNKNOWN_USER), ("b@x.test", BUSY))
    assert error.refused == {"a@x.test": UNKNOWN_USER, "b@x.test": BUSY}
    assert error.accepted == ()
    assert str(error).startswith("2 of 2 recipient(s) refused: <a@x.test>: 550 5.1.1")
    mapping = SMTPRecipientsRefused({"a@x.test": UNKNOWN_USER, "c@x.test": OK})
    assert mapping.accepted == ("c@x.test",)
    assert mapping.refused == {"a@x.test": UNKNOWN_USER}
    assert str(mapping).startswith("1 of 2 recipient(s) refused")


def test_recipients_refused_message_lists_five_then_counts() -> None:
    results = [(f"r{index}@x.test", UNKNOWN_USER) for index in range(8)]
    error = SMTPRecipientsRefused(results)
    message = str(error)
    assert "<r4@x.test>" in message
    assert "<r5@x.test>" not in message
    assert message.endswith("; and 3 more")
    assert len(error.refused) == 8


def test_recipients_refused_escapes_addresses() -> None:
    error = SMTPRecipientsRefused([("evil\x1b[2J@x.test", UNKNOWN_USER)])
    assert "\x1b" not in str(error)
    assert "\\x1b[2J" in str(error)


@pytest.mark.parametrize(
    "results",
    [[], [("a@x.test",)], [("a@x.test", 550)], [(b"a@x.test", UNKNOWN_USER)], ["a@x.test"]],
)
def test_recipients_refused_rejects_malformed_results(results: list[object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        SMTPRecipientsRefused(results)  # type: ignore[arg-type]  # malformed on purpose


def test_protocol_error_wraps_the_engine_error() -> None:
    remote = RemoteProtocolError("reply line without CRLF \x1b]0;x\x07", offset=12)
    error = SMTPProtocolError(remote)
    assert error.error is remote
    assert error.__cause__ is remote
    assert error.remote
    assert "\x1b" not in str(error) and "\x07" not in str(error)
    assert "(at stream offset 12)" in str(error)
    local = SMTPProtocolError(LocalProtocolError("CHUNKING was not advertised"))
    assert not local.remote
    with pytest.raises(TypeError, match="ProtocolError"):
        SMTPProtocolError(ValueError("x"))  # type: ignore[arg-type]  # wrong type on purpose


def test_connect_error_and_unknown_status_attributes() -> None:
    connect = SMTPConnectError("connection refused", host="127.0.0.1", port=25)
    assert (connect.host, connect.port) == ("127.0.0.1", 25)
    unknown = SMTPDeliveryStatusUnknown("EOF\r\n", sender="a@x.test", recipients=iter(["b@y"]))
    assert unknown.recipients == ("b@y",)
    assert unknown.reason == "EOF\r\n"
    assert "\r" not in str(unknown)


@pytest.mark.parametrize(
    "error",
    [
        SMTPConnectError("refused", host="::1", port=587),
        SMTPTLSError("certificate verify failed"),
        SMTPTimeoutError("no greeting", waiting_for="greeting", timeout=300.0),
        SMTPProtocolError(RemoteProtocolError("bad", offset=3)),
        SMTPReplyError(UNKNOWN_USER, command="RCPT"),
        SMTPRecipientsRefused([("a@x.test", UNKNOWN_USER), ("b@x.test", OK)]),
        SMTPDeliveryStatusUnknown("EOF", sender="a@x.test", recipients=["b@x.test"]),
        SMTPDeliveryTimeoutError("stall", timeout=600.0, sender="a@x", recipients=["b@x"]),
    ],
    ids=lambda error: type(error).__name__,
)
def test_pickle_round_trip(error: SMTPError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    public = {k: v for k, v in vars(error).items() if k != "error"}
    assert {k: v for k, v in vars(copy).items() if k != "error"} == public


def test_importing_the_exceptions_loads_no_io_module() -> None:
    code = (
        "import sys; import smtpproto; before = set(sys.modules); "
        "import smtpproto.exceptions; "
        "banned = {'socket', 'ssl', 'asyncio', 'trio', 'threading', 'selectors', 'time'}; "
        "print(sorted((set(sys.modules) - before) & banned))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
