"""The ``--proxy*`` options of ``send`` and ``probe``: an HAProxy PROXY header first.

swaks' names and meanings (swaks(1), "PROXY OPTIONS"): ``--proxy-version 1|2``,
``--proxy-family``, ``--proxy-source``, ``--proxy-source-port``, ``--proxy-dest``,
``--proxy-dest-port``, ``--proxy-command PROXY|LOCAL`` (v2), or ``--proxy TEXT``, the
v1 fields after ``PROXY `` (``TCP4 SRC DST SPORT DPORT``, ``UNKNOWN``), which excludes
the others. Unlike swaks, every value is checked (``ProxyHeader``, docs/proxy-protocol.md)
and a bad one is a usage error before anything is connected; the family may be left
out (it is the addresses'); swaks' v2 family names (AF_INET ...) are accepted too.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..wire.errors import LocalProtocolError
from ..wire.text import escape_text
from .common import CLIError, ExitCode

if TYPE_CHECKING:  # the engine module loads when a header is asked for, not with the CLI
    from ..client_engine.proxy import ProxyHeader

__all__ = ["add_proxy_options", "proxy_header"]

#: swaks' version 2 family names to ours (``ProxyHeader`` checks ours).
_SWAKS_FAMILIES = {"AF_INET": "TCP4", "AF_INET6": "TCP6", "AF_UNIX": "UNIX", "AF_UNSPEC": "UNKNOWN"}
_DETAILS = ("proxy_family", "proxy_source", "proxy_source_port", "proxy_dest", "proxy_dest_port")


def add_proxy_options(parser: argparse.ArgumentParser) -> None:
    """Add the ``--proxy*`` options to ``parser`` in a group of their own."""
    group = parser.add_argument_group(
        "PROXY protocol (HAProxy): a header before SMTP, for servers behind a proxy"
    )
    group.add_argument(
        "--proxy",
        metavar="TEXT",
        help="the v1 fields after 'PROXY ': 'TCP4 SRC DST SPORT DPORT', 'TCP6 ...' or "
        "'UNKNOWN' (not with the other --proxy-* options but --proxy-version)",
    )
    group.add_argument(
        "--proxy-version", type=int, choices=(1, 2), help="1 (text, the default) or 2 (binary)"
    )
    group.add_argument(
        "--proxy-family",
        metavar="FAMILY",
        help="TCP4, TCP6, UNIX (v2), UNKNOWN; or AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC "
        "(default: the addresses')",
    )
    group.add_argument("--proxy-source", metavar="ADDRESS", help="the client's address")
    group.add_argument("--proxy-source-port", metavar="PORT", help="the client's port")
    group.add_argument("--proxy-dest", metavar="ADDRESS", help="the address it connected to")
    group.add_argument("--proxy-dest-port", metavar="PORT", help="the port it connected to")
    group.add_argument(
        "--proxy-command",
        metavar="PROXY|LOCAL",
        help="v2 command: PROXY (default) or LOCAL (a health check: no addresses)",
    )


def proxy_header(args: argparse.Namespace) -> ProxyHeader | None:
    """The header the ``--proxy*`` options ask for (None: none); ``CLIError`` (usage)
    for a bad or contradictory value."""
    from ..client_engine.proxy import PROXY_FAMILIES, ProxyHeader

    details = [name for name in _DETAILS if getattr(args, name) is not None]
    if args.proxy is None and not details and args.proxy_command is None:
        if args.proxy_version is not None:
            raise CLIError("--proxy-version needs --proxy or --proxy-source ...", ExitCode.USAGE)
        return None
    values: dict[str, Any] = {"version": args.proxy_version or 1}
    if args.proxy is not None:
        if details or args.proxy_command is not None:
            given = ", ".join("--" + name.replace("_", "-") for name in details)
            raise CLIError(
                f"--proxy gives the whole header: not with {given or '--proxy-command'}",
                ExitCode.USAGE,
            )
        values.update(_parse_text(args.proxy))
    else:
        if args.proxy_command is not None:
            values["command"] = args.proxy_command.upper()
            if values["command"] not in ("PROXY", "LOCAL"):
                raise CLIError(
                    f"--proxy-command {escape_text(args.proxy_command)!r}: 'PROXY' or 'LOCAL'",
                    ExitCode.USAGE,
                )
        if args.proxy_family is not None:
            family = args.proxy_family.upper()
            family = _SWAKS_FAMILIES.get(family, family)
            if family not in PROXY_FAMILIES:
                raise CLIError(
                    f"--proxy-family {escape_text(args.proxy_family)!r}: one of "
                    + ", ".join([*PROXY_FAMILIES, *_SWAKS_FAMILIES]),
                    ExitCode.USAGE,
                )
            values["family"] = family
        _require_addresses(args, values)
        values["source"] = args.proxy_source
        values["destination"] = args.proxy_dest
        values["source_port"] = _port(args.proxy_source_port, "--proxy-source-port")
        values["destination_port"] = _port(args.proxy_dest_port, "--proxy-dest-port")
    try:
        return ProxyHeader(**values)
    except LocalProtocolError as error:
        raise CLIError(f"PROXY header: {error}", ExitCode.USAGE) from None


def _require_addresses(args: argparse.Namespace, values: dict[str, Any]) -> None:
    """swaks needs every address option; so do we, unless the header has no addresses
    (LOCAL, UNKNOWN) or no ports (UNIX)."""
    if values.get("command") == "LOCAL" or values.get("family") == "UNKNOWN":
        return
    needed = ["proxy_source", "proxy_dest"]
    if values.get("family") != "UNIX":
        needed += ["proxy_source_port", "proxy_dest_port"]
    missing = ["--" + name.replace("_", "-") for name in needed if getattr(args, name) is None]
    if missing:
        raise CLIError(f"the PROXY header also needs {', '.join(missing)}", ExitCode.USAGE)


def _parse_text(text: str) -> dict[str, Any]:
    """``--proxy``: the fields of a v1 line after ``PROXY``, separated by spaces."""
    words = text.split(" ")
    if words and words[0].upper() == "PROXY":  # tolerate the keyword itself
        words = words[1:]
    if [word.upper() for word in words] == ["UNKNOWN"]:
        return {"family": "UNKNOWN"}
    if len(words) != 5 or words[0].upper() not in ("TCP4", "TCP6"):
        raise CLIError(
            f"--proxy {escape_text(text)!r}: expected 'TCP4|TCP6 SRC DST SPORT DPORT' or 'UNKNOWN'",
            ExitCode.USAGE,
        )
    family, source, destination, sport, dport = words
    return {
        "family": family.upper(),
        "source": source,
        "destination": destination,
        "source_port": _port(sport, "--proxy source port"),
        "destination_port": _port(dport, "--proxy destination port"),
    }


def _port(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise CLIError(f"{what} {escape_text(text)!r}: a port from 0 to 65535", ExitCode.USAGE)
    return int(text)
