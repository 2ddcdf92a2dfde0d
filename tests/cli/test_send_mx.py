"""``send`` without ``--server``: the demo only when asked for, otherwise the
recipients' mail server from DNS (RFC 5321 §5.1), through a real DNS server on
127.0.0.1 (``FakeDNSServer``) and a ``serve`` subprocess as the mail server."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtpproto.cli.common import CLIError
from smtpproto.cli.mx import (
    NULL_MX,
    LookupFailed,
    MailHost,
    NoSuchDomain,
    address_literal,
    mail_route,
    recipient_domain,
)

from .helpers import FakeDNSServer, ServeProcess, assert_clean_failure, run_cli

RECEIVED = "---- the message as the built-in server received it"


class _Resolver:
    """A ``Resolver`` from two dicts (the unit tests of the RFC 5321 §5.1 rules)."""

    def __init__(
        self,
        mx: dict[str, list[tuple[int, str]] | Exception],
        hosts: dict[str, list[str] | Exception],
    ) -> None:
        self._mx, self._hosts = mx, hosts
        self.asked: list[str] = []

    def mx(self, domain: str) -> list[tuple[int, str]]:
        self.asked.append(domain)
        found = self._mx.get(domain, NoSuchDomain(domain))
        if isinstance(found, Exception):
            raise found
        return found

    def addresses(self, host: str) -> list[str]:
        found = self._hosts.get(host, [])
        if isinstance(found, Exception):
            raise found
        return found


def _keep(records: list[tuple[int, str]]) -> None:
    """A shuffle that keeps the order (deterministic tests)."""


def _reverse(records: list[tuple[int, str]]) -> None:
    records.reverse()


def test_route_orders_by_preference_and_shuffles_only_equal_ones() -> None:
    resolver = _Resolver(
        {"example.test": [(20, "c.test"), (10, "a.test"), (10, "b.test"), (30, "d.test")]},
        {"a.test": ["192.0.2.1"], "b.test": ["192.0.2.2", "2001:db8::2"], "c.test": ["192.0.2.3"]},
    )
    kept = mail_route("example.test", resolver, shuffle=_keep)
    assert [(h.name, h.address) for h in kept] == [
        ("a.test", "192.0.2.1"),
        ("b.test", "192.0.2.2"),
        ("b.test", "2001:db8::2"),
        ("c.test", "192.0.2.3"),
    ]  # d.test has no address: skipped
    reversed_ = mail_route("example.test", resolver, shuffle=_reverse)
    assert [h.name for h in reversed_] == ["b.test", "b.test", "a.test", "c.test"]


def test_route_implicit_mx_when_the_name_has_no_mx() -> None:
    resolver = _Resolver({"example.test": []}, {"example.test": ["192.0.2.9"]})
    assert mail_route("Example.TEST", _lower(resolver), shuffle=_keep) == [
        MailHost("example.test", 0, "192.0.2.9")
    ]


def _lower(resolver: _Resolver) -> _Resolver:
    resolver._mx = {k.lower(): v for k, v in resolver._mx.items()}
    return resolver


@pytest.mark.parametrize(
    ("mx", "hosts", "fragment"),
    [
        ({}, {}, "does not exist"),
        ({"example.test": [(0, NULL_MX)]}, {}, "accepts no mail (null MX"),
        ({"example.test": LookupFailed("SERVFAIL")}, {}, "cannot look up"),
        (
            {"example.test": [(10, "a.test")]},
            {"a.test": LookupFailed("timeout")},
            "a.test: timeout",
        ),
        ({"example.test": [(10, "a.test")]}, {}, "a.test: no address"),
        ({"example.test": []}, {}, "example.test: no address"),
    ],
)
def test_route_failures_are_one_line_exit_3(
    mx: dict[str, list[tuple[int, str]] | Exception],
    hosts: dict[str, list[str] | Exception],
    fragment: str,
) -> None:
    with pytest.raises(CLIError) as caught:
        mail_route("example.test", _Resolver(mx, hosts), shuffle=_keep)
    assert caught.value.code == 3
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_address_literals_need_no_lookup() -> None:
    assert address_literal("[192.0.2.1]") == "192.0.2.1"
    assert address_literal("[IPv6:2001:DB8::1]") == "2001:db8::1"
    assert address_literal("example.test") is None
    for bad in ("[2001:db8::1]", "[IPv6:192.0.2.1]", "[192.0.2.300]", "[192.0.2.1", "[]"):
        with pytest.raises(CLIError):
            address_literal(bad)
    resolver = _Resolver({}, {})
    assert mail_route("[127.0.0.1]", resolver) == [MailHost("127.0.0.1", 0, "127.0.0.1")]
    assert resolver.asked == []


def test_recipient_domain_is_one_domain() -> None:
    assert recipient_domain(["a@Example.test", "b@example.TEST"]) == "example.test"
    for recipients in (["a@x.test", "b@y.test"], ["nodomain"], []):
        with pytest.raises(CLIError) as caught:
            recipient_domain(recipients)
        assert caught.value.code == 2


def test_an_unencodable_domain_is_a_usage_error() -> None:
    with pytest.raises(CLIError) as caught:
        mail_route("a" * 64 + ".test", _Resolver({}, {}))
    assert caught.value.code == 2


# -- the real CLI -------------------------------------------------------------------------


def _send_via_dns(dns: FakeDNSServer, port: int, *extra: str) -> list[str]:
    return [
        "send", "--resolver", dns.address, "--port", str(port), "--tls", "opportunistic",
        "--from", "a@example.org", "--body", "hi", *extra,
    ]  # fmt: skip


def test_recipients_without_server_go_to_the_mx_not_the_demo() -> None:
    with ServeProcess("--no-starttls") as serve:
        records = {
            ("example.test", "MX"): ["20 backup.example.test.", "10 mx.example.test."],
            ("mx.example.test", "A"): ["127.0.0.1"],
            ("backup.example.test", "A"): ["127.0.0.1"],
        }
        with FakeDNSServer(records) as dns:
            result = run_cli(*_send_via_dns(dns, serve.port, "--to", "bob@example.test"))
        assert result.returncode == 0, result.stderr
        assert "== connecting to mx.example.test [127.0.0.1] port" in result.stdout
        assert "(MX 10 for example.test)" in result.stdout
        assert "message accepted for 1 recipient(s)" in result.stdout
        assert "built-in server on" not in result.stdout  # not the demo
        assert RECEIVED not in result.stdout
        serve.wait_for("RCPT TO:<bob@example.test>")
        assert ("example.test", "MX") in dns.questions


def test_an_unreachable_mx_falls_back_to_the_next() -> None:
    with ServeProcess("--no-starttls") as serve:
        records = {
            ("example.test", "MX"): ["5 dead.example.test.", "10 mx.example.test."],
            ("dead.example.test", "AAAA"): ["::1"],  # serve listens on 127.0.0.1 only
            ("mx.example.test", "A"): ["127.0.0.1"],
        }
        with FakeDNSServer(records) as dns:
            result = run_cli(*_send_via_dns(dns, serve.port, "--to", "bob@example.test"))
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        dead = next(i for i, line in enumerate(lines) if "dead.example.test [::1]" in line)
        live = next(i for i, line in enumerate(lines) if "mx.example.test [127.0.0.1]" in line)
        assert dead < live


def test_implicit_mx_over_real_dns() -> None:
    with ServeProcess("--no-starttls") as serve:
        records = {("example.test", "A"): ["127.0.0.1"]}
        with FakeDNSServer(records) as dns:
            result = run_cli(*_send_via_dns(dns, serve.port, "--to", "bob@example.test"))
        assert result.returncode == 0, result.stderr
        assert "connecting to example.test [127.0.0.1]" in result.stdout
        assert "(MX 0 for example.test)" in result.stdout


@pytest.mark.parametrize(
    ("records", "fragment"),
    [
        ({("other.test", "A"): ["127.0.0.1"]}, "example.test does not exist"),
        ({("example.test", "MX"): ["0 ."]}, "accepts no mail (null MX"),
        ({("example.test", "MX"): ["10 nowhere.example.test."]}, "no address"),
    ],
)
def test_dns_failures_are_exit_3(records: dict[tuple[str, str], list[str]], fragment: str) -> None:
    with FakeDNSServer(records) as dns:
        result = run_cli(*_send_via_dns(dns, 25, "--to", "bob@example.test"))
    assert_clean_failure(result, 3, fragment)
    assert "message accepted" not in result.stdout


def test_an_mx_that_refuses_every_connection_is_exit_3() -> None:
    records = {
        ("example.test", "MX"): ["10 mx.example.test."],
        ("mx.example.test", "AAAA"): ["::1"],
    }
    with FakeDNSServer(records) as dns:
        result = run_cli(*_send_via_dns(dns, 9, "--to", "bob@example.test"))
    assert_clean_failure(result, 3, "no mail server of example.test answered")


def test_an_address_literal_needs_no_dns() -> None:
    with ServeProcess("--no-starttls") as serve:
        result = run_cli(
            "send", "--port", str(serve.port), "--from", "a@example.org",
            "--to", "bob@[127.0.0.1]", "--body", "hi",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "connecting to 127.0.0.1 [127.0.0.1]" in result.stdout


def _without_dnspython(tmp_path: Path) -> dict[str, str]:
    """An environment where ``import dns`` fails, as without the ``dns`` extra."""
    shadow = tmp_path / "shadow" / "dns"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named dns')\n")
    return {"PYTHONPATH": str(shadow.parent)}


def test_without_the_dns_extra_a_one_line_hint_and_nothing_sent(tmp_path: Path) -> None:
    result = run_cli(
        "send", "--to", "user@example.com", "--body", "hi", env=_without_dnspython(tmp_path)
    )
    assert_clean_failure(result, 2, "pip install 'smtpproto[dns]'", "--server", "--demo")
    assert "message accepted" not in result.stdout
    assert "built-in server" not in result.stdout


def test_recipients_in_several_domains_need_a_server() -> None:
    result = run_cli("send", "--to", "a@example.com", "--to", "b@example.org", "--body", "x")
    assert_clean_failure(result, 2, "several domains")


def test_explicit_demo_with_recipients() -> None:
    result = run_cli("send", "--demo", "--to", "bob@example.com", "-q")
    assert result.returncode == 0, result.stderr
    result = run_cli("send", "--demo", "--to", "bob@example.com")
    assert result.returncode == 0, result.stderr
    assert "for <bob@example.com>" in result.stdout.split(RECEIVED, 1)[1]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--demo", "--server", "127.0.0.1:25"), "--demo and --server contradict"),
        (("--demo", "--port", "2525"), "--port needs --server"),
        (("--resolver", "127.0.0.1"), "--resolver needs --server"),
    ],
)
def test_demo_option_conflicts(args: tuple[str, ...], fragment: str) -> None:
    assert_clean_failure(run_cli("send", *args), 2, fragment)
