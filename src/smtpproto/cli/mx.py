"""Where mail for a domain goes: the MX lookup of RFC 5321 §5.1, for ``send`` without
``--server`` and for ``probe DOMAIN``.

CLI layer. The rules live in ``mail_route`` and need only a ``Resolver`` (two
questions: the MX records of a name, the addresses of a host), so they are tested with
a fake one; ``DnsPythonResolver`` asks real DNS through the optional ``dns`` extra
(dnspython). Without dnspython, ``make_resolver`` raises a one-line ``CLIError``
saying how to proceed.

RFC 5321 §5.1, as applied here:

* An address literal (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``, RFC 5321 §4.1.3) is
  the address itself: no lookup.
* The MX records are sorted by preference, lowest first; records of equal preference
  are shuffled (the SMTP client "SHOULD randomize them to spread the load").
* No MX record but the name exists: the name itself is the only mail host (the
  "implicit MX", preference 0).
* The name does not exist (NXDOMAIN): no mail host, an error.
* A single MX record whose exchange is the root (``.``) is a null MX (RFC 7505 §3):
  the domain accepts no mail, an error.
* Every address (A and AAAA) of each mail host is a candidate, in that order; the
  caller tries them until one connects. A host without addresses is skipped.

Names are looked up as ASCII (IDNA, RFC 5890); a name that cannot be encoded is a usage
error.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..wire.text import escape_text
from .common import CLIError, ExitCode, parse_server, quote

__all__ = [
    "NULL_MX",
    "DnsPythonResolver",
    "LookupFailed",
    "MailHost",
    "NoSuchDomain",
    "Resolver",
    "address_literal",
    "mail_route",
    "make_resolver",
    "parse_nameserver",
    "recipient_domain",
]

#: How ``Resolver.mx`` reports an exchange that is the DNS root (RFC 7505 null MX).
NULL_MX = "."

#: The one-line hint when dnspython is missing.
NO_DNS_HINT = (
    "looking up the mail server of {domain} needs the 'dns' extra: "
    "pip install 'smtpproto[dns]'; or give --server HOST[:PORT] (or --demo for the "
    "local demo)"
)


class NoSuchDomain(Exception):
    """The name does not exist in DNS (NXDOMAIN)."""


class LookupFailed(Exception):
    """A DNS question got no usable answer (timeout, SERVFAIL, refused, ...)."""


class Resolver(Protocol):
    """The two DNS questions the MX lookup asks."""

    def mx(self, domain: str) -> list[tuple[int, str]]:
        """The MX records of ``domain`` as ``(preference, exchange)``, the exchange
        without its final dot (``NULL_MX`` for the root); ``[]`` when the name exists
        but has no MX record. Raises ``NoSuchDomain`` or ``LookupFailed``."""

    def addresses(self, host: str) -> list[str]:
        """The IPv4 then IPv6 addresses of ``host``; ``[]`` when it has none. Raises
        ``LookupFailed`` when the question could not be answered."""


@dataclass(frozen=True, slots=True)
class MailHost:
    """One candidate: the mail host's name (for TLS and the transcript), its
    preference and one of its addresses."""

    name: str
    preference: int
    address: str


def recipient_domain(recipients: Sequence[str]) -> str:
    """The one domain of ``recipients``; a usage error when they are in several
    (each domain has its own mail servers) or an address has no domain."""
    domains = {address.rpartition("@")[2].lower() for address in recipients}
    if not recipients or "" in domains or not all("@" in address for address in recipients):
        raise CLIError("a recipient has no domain: give --server HOST[:PORT]", ExitCode.USAGE)
    if len(domains) > 1:
        listed = ", ".join(sorted(escape_text(domain) for domain in domains))
        raise CLIError(
            f"recipients in several domains ({listed}): each has its own mail server; "
            "send to one domain at a time or give --server HOST[:PORT]",
            ExitCode.USAGE,
        )
    return domains.pop()


def address_literal(domain: str) -> str | None:
    """The IP address of an address literal (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``,
    RFC 5321 §4.1.3); None for a domain name; a usage error for a malformed literal."""
    if not domain.startswith("["):
        return None
    inner = domain[1:-1] if domain.endswith("]") else ""
    if inner[:5].lower() == "ipv6:":
        inner = inner[5:]
        version = 6
    else:
        version = 4
    try:
        address = ipaddress.ip_address(inner)
    except ValueError:
        address = None
    if address is None or address.version != version:
        raise CLIError(f"not an address literal: {quote(domain)}", ExitCode.USAGE)
    return str(address)


def _ascii_name(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise CLIError(f"not a valid domain name: {quote(domain)}", ExitCode.USAGE) from None


def mail_route(
    domain: str,
    resolver: Resolver,
    *,
    shuffle: Callable[[list[tuple[int, str]]], None] = random.shuffle,
) -> list[MailHost]:
    """The addresses to try for mail to ``domain``, best first (RFC 5321 §5.1, see the
    module doc). ``CLIError`` (exit 3) when the domain has no mail host; ``shuffle``
    reorders records of equal preference (tests pass a deterministic one)."""
    literal = address_literal(domain)
    if literal is not None:
        return [MailHost(literal, 0, literal)]
    name = _ascii_name(domain)
    shown = escape_text(domain)
    try:
        records = resolver.mx(name)
    except NoSuchDomain:
        raise CLIError(
            f"the domain {shown} does not exist (DNS: NXDOMAIN)", ExitCode.CONNECT
        ) from None
    except LookupFailed as error:
        raise CLIError(
            f"cannot look up the mail server of {shown}: {escape_text(str(error))}",
            ExitCode.CONNECT,
        ) from None
    if any(exchange == NULL_MX for _, exchange in records):
        raise CLIError(f"{shown} accepts no mail (null MX, RFC 7505)", ExitCode.CONNECT)
    if not records:
        records = [(0, name)]  # the implicit MX
    ordered: list[tuple[int, str]] = []
    for preference in sorted({preference for preference, _ in records}):
        same = [record for record in records if record[0] == preference]
        shuffle(same)
        ordered += same
    hosts: list[MailHost] = []
    failures: list[str] = []
    for preference, exchange in ordered:
        try:
            found = resolver.addresses(exchange)
        except LookupFailed as error:
            failures.append(f"{escape_text(exchange)}: {escape_text(str(error))}")
            continue
        hosts += [MailHost(exchange, preference, address) for address in found]
        if not found:
            failures.append(f"{escape_text(exchange)}: no address")
    if not hosts:
        raise CLIError(
            f"no address for the mail server of {shown} ({'; '.join(failures)})", ExitCode.CONNECT
        )
    return hosts


class DnsPythonResolver:
    """``Resolver`` through dnspython: the system's resolvers, or ``nameserver``
    (``(address, port)``); each question gives up after ``timeout`` seconds."""

    def __init__(self, *, timeout: float, nameserver: tuple[str, int] | None = None) -> None:
        import dns.resolver

        resolver = dns.resolver.Resolver(configure=nameserver is None)
        if nameserver is not None:
            resolver.nameservers = [nameserver[0]]
            resolver.port = nameserver[1]
        resolver.lifetime = timeout
        self._resolver = resolver

    def mx(self, domain: str) -> list[tuple[int, str]]:
        import dns.exception
        import dns.name
        import dns.resolver

        try:
            answer = self._resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise NoSuchDomain(domain) from None
        except dns.resolver.NoAnswer:
            return []
        except dns.exception.DNSException as error:
            raise LookupFailed(str(error) or type(error).__name__) from None
        return [
            (
                int(record.preference),
                NULL_MX
                if record.exchange == dns.name.root
                else record.exchange.to_text(omit_final_dot=True),
            )
            for record in answer
        ]

    def addresses(self, host: str) -> list[str]:
        import dns.exception
        import dns.resolver

        found: list[str] = []
        for kind in ("A", "AAAA"):
            try:
                answer = self._resolver.resolve(host, kind)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException as error:
                raise LookupFailed(str(error) or type(error).__name__) from None
            found += [record.to_text() for record in answer]
        return found


def parse_nameserver(text: str | None) -> tuple[str, int] | None:
    """``--resolver ADDRESS[:PORT]`` as ``(address, port)`` (port 53 by default);
    ``None`` (not given): the system's resolvers. DNS servers are asked by IP address
    (a name would need DNS itself), so anything else is a usage error."""
    if text is None:
        return None
    address, port = parse_server(text, default_port=53)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise CLIError(
            f"bad --resolver {quote(text)}: an IP address, with an optional :PORT "
            "(IPv6 as [::1]:53)",
            ExitCode.USAGE,
        ) from None
    return address, port


def make_resolver(
    domain: str, *, timeout: float, nameserver: tuple[str, int] | None = None
) -> Resolver:
    """A ``DnsPythonResolver``; without dnspython a usage error saying how to proceed."""
    try:
        import dns.resolver  # noqa: F401 -- only: is the extra installed?
    except ImportError:
        raise CLIError(NO_DNS_HINT.format(domain=escape_text(domain)), ExitCode.USAGE) from None
    return DnsPythonResolver(timeout=timeout, nameserver=nameserver)
