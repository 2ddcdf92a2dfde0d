"""Every config value checks every field at construction (issue:
``ServerConfig(max_message_size=True)`` was accepted, a bool being an int): bools where
numbers go, numbers where flags go, NaN/infinite/negative/zero seconds and sizes, wrong
types — one clear error naming the field (``wire.fields``). ``ServerConfig``,
``ClientConfig``, ``Timeouts``, ``MailOptions``, the built-in server (``SMTPServer``,
``Backend``), the engine's commands' flags (``Mail``, ``Bdat``),
``client_ssl_context(verify=)``, the fuzzer's ``Target`` and ``run_campaign``; the
pools' options are
``tests/adapters/test_pool.py::test_bad_pool_options_are_caller_mistakes``."""

from __future__ import annotations

import math
import ssl
import sys
from typing import Any

import pytest

from smtpproto.adapters.tls import client_ssl_context
from smtpproto.builtin_server.backend import Backend
from smtpproto.builtin_server.server import SMTPServer
from smtpproto.client_engine.commands import Bdat, Mail
from smtpproto.client_engine.config import ClientConfig, Timeouts
from smtpproto.drivers.support import MailOptions
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.fuzz.campaign import run_campaign
from smtpproto.fuzz.runner import Target
from smtpproto.server_engine.config import ServerConfig
from smtpproto.wire.errors import LocalProtocolError

NAN, INF = math.nan, math.inf
#: Wrong for any count or size.
NOT_COUNTS = [True, False, 1.0, "100", None, NAN, INF]
#: Wrong for any number of seconds.
NOT_SECONDS = [True, False, "5", NAN, INF, -1, 0, -INF]
#: Wrong for any flag.
NOT_FLAGS = [0, 1, "yes", "no", "", None, 1.0]

SERVER_COUNTS = {
    "max_command_line": 512,
    "max_mail_rcpt_line": 512,
    "max_auth_line": 512,
    "max_recipients": 1,
    "max_pipelined_input": 4096,
    "max_data_line": 1000,
}


@pytest.mark.parametrize("name", sorted(SERVER_COUNTS))
@pytest.mark.parametrize("bad", [*NOT_COUNTS, "below"])
def test_server_config_counts(name: str, bad: object) -> None:
    value = SERVER_COUNTS[name] - 1 if bad == "below" else bad
    with pytest.raises(ValueError, match=f"^{name} must be an int >= {SERVER_COUNTS[name]}"):
        ServerConfig(**{name: value})
    ServerConfig(**{name: max(SERVER_COUNTS[name], 8192) if name != "max_recipients" else 1})


@pytest.mark.parametrize("bad", [True, False, -1, 1.5, "10", NAN, INF])
def test_server_config_max_message_size(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^max_message_size must be an int >= 0 or None"):
        ServerConfig(max_message_size=bad)  # type: ignore[arg-type]  # deliberately wrong
    assert ServerConfig(max_message_size=0).max_message_size == 0
    assert ServerConfig(max_message_size=None).max_message_size is None


@pytest.mark.parametrize("bad", NOT_SECONDS)
def test_server_config_timeout(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^timeout must be a positive finite number of seconds"):
        ServerConfig(timeout=bad)  # type: ignore[arg-type]  # deliberately wrong
    assert ServerConfig(timeout=0.5).timeout == 0.5


@pytest.mark.parametrize("bad", [True, 4096.0, "x", 1])
def test_server_config_receive_buffer(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^max_receive_buffer must be an int >= 262144"):
        ServerConfig(max_receive_buffer=bad)  # type: ignore[arg-type]  # deliberately wrong


CLIENT_FLAGS = [
    "lmtp",
    "helo_only",
    "allow_cleartext_auth",
    "enforce_line_length",
    "allow_nul",
    "transcript_content",
    "allow_unsafe_raw",
]


@pytest.mark.parametrize("name", CLIENT_FLAGS)
@pytest.mark.parametrize("bad", NOT_FLAGS)
def test_client_config_flags(name: str, bad: object) -> None:
    # lmtp="no" used to select LMTP (a truthy str).
    with pytest.raises(LocalProtocolError, match=f"^{name} must be True or False, got"):
        ClientConfig(**{name: bad})
    assert getattr(ClientConfig(**{name: True}), name) is True


COMMAND_FLAGS: dict[str, Any] = {
    # Mail(smtputf8=1) and Bdat(last="no") were accepted, a truthy value taken as True.
    "smtputf8": lambda v: Mail(sender="a@example.org", smtputf8=v),
    "requiretls": lambda v: Mail(sender="a@example.org", requiretls=v),
    "last": lambda v: Bdat(data=b"x", last=v),
}


@pytest.mark.parametrize("name", sorted(COMMAND_FLAGS))
@pytest.mark.parametrize("bad", NOT_FLAGS)
def test_engine_command_flags(name: str, bad: object) -> None:
    with pytest.raises(LocalProtocolError, match=f"^{name} must be True or False, got"):
        COMMAND_FLAGS[name](bad)
    assert getattr(COMMAND_FLAGS[name](True), name) is True


@pytest.mark.parametrize("bad", NOT_FLAGS)
def test_client_ssl_context_verify(bad: object) -> None:
    # verify=None or 0 turned certificate checks off (a falsy value taken as False).
    with pytest.raises(TypeError, match=r"^verify must be True or False, got"):
        client_ssl_context(verify=bad)  # type: ignore[arg-type]  # deliberately wrong
    assert client_ssl_context(verify=True).verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    "name", ["max_auth_rounds", "max_reply_lines", "max_reply_line_length", "max_reply_bytes"]
)
@pytest.mark.parametrize("bad", [b for b in NOT_COUNTS if b is not False])
def test_client_config_counts(name: str, bad: object) -> None:
    with pytest.raises(LocalProtocolError, match=f"^{name} must be an int"):
        ClientConfig(**{name: bad})


@pytest.mark.parametrize("name", ["greeting", "mail", "rcpt", "data_termination", "other"])
@pytest.mark.parametrize("bad", NOT_SECONDS)
def test_timeouts(name: str, bad: object) -> None:
    with pytest.raises(LocalProtocolError, match=f"^timeout {name} must be a positive finite"):
        Timeouts(**{name: bad})
    assert getattr(Timeouts(**{name: None}), name) is None


@pytest.mark.parametrize("bad", NOT_SECONDS)
def test_one_timeout_for_every_wait(bad: object) -> None:
    from smtpproto.drivers.support import make_timeouts

    with pytest.raises(LocalProtocolError, match=r"^timeout must be"):
        make_timeouts(bad)  # type: ignore[arg-type]  # deliberately wrong


MAIL_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"size": True}, "^size must be an int >= 0 or None"),
    ({"size": -1}, "^size must be"),
    ({"size": 1.5}, "^size must be"),
    ({"smtputf8": 1}, "^smtputf8 must be True or False or None"),
    ({"requiretls": "yes"}, "^requiretls must be True or False"),
    ({"orcpt": None}, "^orcpt must be True or False"),
    ({"split_recipients": 0}, "^split_recipients must be True or False"),
    ({"body": "8bit"}, "^body must be one of"),
    ({"ret": "ALL"}, "^ret must be one of"),
    ({"envid": "a\r\nb"}, "envid"),
    ({"envid": 5}, "envid"),
    ({"mt_priority": True}, "^mt_priority must be an int from -9 to 9"),
    ({"mt_priority": 10}, "^mt_priority must be"),
    ({"by": "soon"}, "^by must be"),
    ({"auth": "a b"}, "^AUTH= mailbox"),
    ({"notify": "SUCCESS"}, "^notify must be a tuple of str or None"),
    ({"notify": ("NEVER", "DELAY")}, "^notify must be NEVER alone"),
    ({"notify": ()}, "notify"),
]


@pytest.mark.parametrize(("fields", "words"), MAIL_OPTIONS)
def test_mail_options(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(SMTPProtocolError, match=words) as caught:
        MailOptions(**fields)
    assert not caught.value.remote and caught.value.__cause__ is caught.value.error


def test_mail_options_good_values() -> None:
    options = MailOptions(
        size=0,
        body="8BITMIME",
        smtputf8=None,
        ret="HDRS",
        envid="abc",
        requiretls=True,
        mt_priority=-9,
        by="120;R",
        auth="a@example.org",
        notify=["SUCCESS", "FAILURE"],  # type: ignore[arg-type]  # a list is taken too
        orcpt=True,
        split_recipients=False,
    )
    assert options.notify == ("SUCCESS", "FAILURE")


BUILTIN: list[tuple[dict[str, Any], str]] = [
    ({"starttls": "no"}, "^starttls must be True or False"),
    ({"lmtp": 1}, "^lmtp must be True or False"),
    ({"forbid_unauth_pipelining": None}, "^forbid_unauth_pipelining must be True or False"),
    ({"allow_plaintext_auth": "yes"}, "^allow_plaintext_auth must be True or False"),
    ({"require_auth": 0}, "^require_auth must be True or False"),
    ({"port": True}, "^port must be an int in 0..65535"),
    ({"port": 70000}, "^port must be"),
    ({"port": "25"}, "^port must be"),
    ({"host": 127}, "^host must be a str"),
    ({"hostname": "mx example"}, "^hostname must be printable ASCII without spaces"),
    ({"hostname": ""}, "^hostname must be"),
    ({"hostname": "mx\r\n"}, "^hostname must be"),
    ({"users": {"u": 5}}, "^users must map"),
    ({"max_message_size": True}, "^max_message_size must be an int >= 0"),
    ({"max_message_size": -1}, "^max_message_size must be"),
    ({"timeout": NAN}, "^timeout must be a positive finite"),
    ({"timeout": 0}, "^timeout must be"),
    ({"rcptmax": True}, "^rcptmax must be an int in 1..999999"),
    ({"mailmax": 0}, "^mailmax must be"),
]


@pytest.mark.parametrize(("options", "words"), BUILTIN)
def test_builtin_server_options(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        SMTPServer(**options)


@pytest.mark.parametrize(
    ("options", "words"), [(o, w) for o, w in BUILTIN if next(iter(o)) in ("hostname", "users")]
)
def test_backend_options(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Backend(**options)


FUZZ_TARGET: list[tuple[dict[str, Any], str]] = [
    ({"port": True}, "^port must be an int in 1..65535"),
    ({"port": 0}, "^port must be"),
    ({"host": ""}, "^host must be a non-empty str"),
    ({"implicit_tls": "yes"}, "^implicit_tls must be True or False"),
    ({"connect_timeout": NAN}, "^connect_timeout must be a positive finite"),
    ({"reply_timeout": 0}, "^reply_timeout must be"),
    ({"rate": NAN}, "^rate must be a finite number of connections per second"),
    ({"rate": -1}, "^rate must be"),
    ({"rate": True}, "^rate must be"),
    ({"rate": INF}, "^rate must be"),
]


@pytest.mark.parametrize(("options", "words"), FUZZ_TARGET)
def test_fuzz_target(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Target(**{"host": "127.0.0.1", "port": 25, **options})
    assert Target("127.0.0.1", 25, rate=0).rate == 0


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"budget": NAN}, "^budget must be a positive finite"),
        ({"budget": True}, "^budget must be"),
        ({"budget": -5}, "^budget must be"),
        ({"seed": 1.5}, "^seed must be an int"),
        ({"seed": True}, "^seed must be an int"),
        ({"rate": NAN}, "^rate must be"),
        ({"port": 70000}, "^port must be"),
    ],
)
def test_fuzz_campaign_options(options: dict[str, Any], words: str) -> None:
    # Refused before any connection (port 9 on 127.0.0.1: nothing listens).
    with pytest.raises(ValueError, match=words):
        run_campaign("127.0.0.1", options.pop("port", 9), **options)


@pytest.mark.parametrize("name", ["max_message_size", "max_data_line", "max_recipients"])
def test_a_server_size_above_sys_maxsize_is_refused_when_configured(name: str) -> None:
    # Refused by ServerConfig itself, not by the first connection's DATA decoder.
    from smtpproto.server_engine.config import ServerConfig

    with pytest.raises(ValueError, match=f"{name} must be an int >= .* and at most"):
        ServerConfig(**{name: sys.maxsize + 1})
