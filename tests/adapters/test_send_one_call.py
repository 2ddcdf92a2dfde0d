"""The one-call sends (``smtpproto.send``, ``smtpproto.send_async``, the trio
``send``) and the OAuth2 token provider hook of ``login`` (issue 13 part 3)."""

from __future__ import annotations

import asyncio
import base64
import inspect
import subprocess
import sys
from email.message import EmailMessage
from typing import Any

import pytest
import trio

import smtpproto
from smtpproto import trio_client
from smtpproto.blocking import SMTPClient
from smtpproto.exceptions import SMTPProtocolError, SMTPReplyError

from .pool_server import FlakyServer, flaky_server
from .test_constructor_checks import assert_caller_mistake

OPTIONS: dict[str, Any] = {"tls": "none", "timeout": 5, "allow_cleartext_auth": True}


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "a@example.org"
    message["To"] = "b@example.org, c@example.org"
    message["Subject"] = "one call"
    message.set_content("hello\n")
    return message


def _run(adapter: str, **kwargs: Any) -> Any:
    """``send`` of ``adapter`` with ``kwargs``, run to completion."""
    if adapter == "blocking":
        return smtpproto.send(**kwargs)
    if adapter == "asyncio":
        return asyncio.run(smtpproto.send_async(**kwargs))

    async def main() -> Any:
        return await trio_client.send(**kwargs)

    return trio.run(main)


def _tokens(server: FlakyServer) -> list[bytes]:
    return [base64.b64decode(line.split()[2]) for line in server.auth_lines]


@pytest.mark.parametrize("adapter", ["blocking", "asyncio", "trio"])
def test_one_call_sends_an_email_message(adapter: str) -> None:
    with flaky_server(auth=True) as server:
        result = _run(
            adapter,
            message=_message(),
            host="127.0.0.1",
            port=server.port,
            username="u",
            password="p",
            **OPTIONS,
        )
        assert result.delivered == ("b@example.org", "c@example.org")
        assert b"Subject: one call" in server.messages[0]
        assert server.commands == ["EHLO", "AUTH", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
        assert server.all_closed()


@pytest.mark.parametrize("adapter", ["blocking", "asyncio", "trio"])
def test_one_call_sends_raw_content_with_an_envelope(adapter: str) -> None:
    with flaky_server() as server:
        result = _run(
            adapter,
            message=b"Subject: raw\r\n\r\nbody\r\n",
            host="127.0.0.1",
            port=server.port,
            sender="a@example.org",
            recipients=["b@example.org"],
            **OPTIONS,
        )
        assert result.delivered == ("b@example.org",)
        assert len(server.messages) == 1


@pytest.mark.parametrize("adapter", ["blocking", "asyncio", "trio"])
@pytest.mark.parametrize(
    "mistake",
    [
        {"message": b"raw content without an envelope"},
        {"password": "p"},
        {"username": "u"},
        {"port": "25"},
    ],
)
def test_one_call_mistakes_are_refused_before_connecting(
    adapter: str, mistake: dict[str, Any]
) -> None:
    with flaky_server() as server:
        kwargs = {"message": _message(), "host": "127.0.0.1", "port": server.port, **OPTIONS}
        with pytest.raises(SMTPProtocolError) as caught:
            _run(adapter, **{**kwargs, **mistake})
        assert_caller_mistake(caught.value)
        assert server.connections == 0


@pytest.mark.parametrize("adapter", ["blocking", "asyncio", "trio"])
def test_a_refused_message_raises_and_the_connection_is_closed(adapter: str) -> None:
    with flaky_server(refuse_rcpt_421=frozenset({1})) as server:
        with pytest.raises(SMTPReplyError) as caught:
            _run(adapter, message=_message(), host="127.0.0.1", port=server.port, **OPTIONS)
        assert caught.value.code == 421
        assert server.all_closed()


@pytest.mark.parametrize("adapter", ["blocking", "asyncio", "trio"])
def test_the_token_provider_is_called_for_each_login(adapter: str) -> None:
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return f"fresh-{len(calls)}"

    with flaky_server(auth=True) as server:
        for _ in range(2):
            _run(
                adapter,
                message=_message(),
                host="127.0.0.1",
                port=server.port,
                username="u",
                token=provider,
                **OPTIONS,
            )
        assert _tokens(server) == [
            b"user=u\x01auth=Bearer fresh-1\x01\x01",
            b"user=u\x01auth=Bearer fresh-2\x01\x01",
        ]


@pytest.mark.parametrize("adapter", ["asyncio", "trio"])
def test_the_async_clients_await_a_coroutine_token_provider(adapter: str) -> None:
    async def provider() -> str:
        await (asyncio.sleep(0) if adapter == "asyncio" else trio.sleep(0))
        return "from-a-coroutine"

    with flaky_server(auth=True) as server:
        _run(
            adapter,
            message=_message(),
            host="127.0.0.1",
            port=server.port,
            username="u",
            token=provider,
            **OPTIONS,
        )
        assert _tokens(server) == [b"user=u\x01auth=Bearer from-a-coroutine\x01\x01"]


@pytest.mark.parametrize("returned", ["coroutine", 42, None])
def test_a_bad_token_provider_is_a_caller_mistake(returned: object) -> None:
    async def coroutine_provider() -> str:
        return "never awaited by the blocking client"

    def provider() -> Any:
        return coroutine_provider() if returned == "coroutine" else returned

    with flaky_server(auth=True) as server, SMTPClient("127.0.0.1", server.port, **OPTIONS) as c:
        with pytest.raises(SMTPProtocolError, match="token provider") as caught:
            c.login("u", token=provider)
        assert_caller_mistake(caught.value)
        assert c.noop().code == 250  # nothing was sent for it
    assert server.auth_lines == []


def test_import_smtpproto_loads_no_adapter_until_send_is_used() -> None:
    code = (
        "import sys, smtpproto\n"
        "assert 'smtpproto.adapters.blocking' not in sys.modules\n"
        "send = smtpproto.send\n"
        "assert send.__module__ == 'smtpproto.adapters.blocking'\n"
        "assert smtpproto.send_async.__module__ == 'smtpproto.adapters.asyncio_client'\n"
        "assert not hasattr(smtpproto, 'no_such_name')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("send", "client", "module", "is_async"),
    [
        (smtpproto.send, "SMTPClient", "blocking", False),
        (smtpproto.send_async, "AsyncSMTPClient", "asyncio_client", True),
        (trio_client.send, "TrioSMTPClient", "trio_client", True),
    ],
)
def test_the_one_call_send_is_written_once_with_each_adapters_signature_and_doc(
    send: Any, client: str, module: str, is_async: bool
) -> None:
    # One source (async_base.send_in_one_call, bound by one_call_send): the three
    # public sends agree parameter for parameter, name their own client class in the
    # doc, live in their adapter's module and are coroutine functions where async.
    from smtpproto.adapters import async_base

    template = inspect.signature(async_base.send_in_one_call)
    expected = list(template.parameters.values())[1:]
    params = list(inspect.signature(send).parameters.values())
    assert [(p.name, p.kind, p.default) for p in params] == [
        (p.name, p.kind, p.default) for p in expected
    ]
    token = "TokenSource | None" if not is_async else "AsyncTokenSource | None"
    assert inspect.signature(send).parameters["token"].annotation == token
    assert inspect.signature(send).return_annotation == "TransactionResult"
    assert send.__name__ == send.__qualname__ == "send"
    assert send.__module__ == f"smtpproto.adapters.{module}"
    assert f"go to ``{client}``" in send.__doc__
    assert "{client}" not in send.__doc__
    assert inspect.iscoroutinefunction(send) is is_async
