"""Limits and policy knobs, each a named ``DEFAULT_*`` with its rationale.

Every buffer in the engine is bounded by one of these numbers; crossing a bound is a
sticky error, never silent truncation (docs/design.md §4 rule 2).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_RECEIVE_BUFFER",
    "DEFAULT_MAX_REPLY_BYTES",
    "DEFAULT_MAX_REPLY_LINES",
    "DEFAULT_MAX_REPLY_LINE_LENGTH",
    "MAX_ENVID",
    "MAX_ORCPT",
]

#: Longest reply line accepted, counting the code and the CRLF. RFC 5321 §4.5.3.1.5
#: says 512 octets; real servers exceed it with long EHLO keyword lists and policy
#: URLs, so we follow CPython smtplib's ``_MAXLINE`` (8192) — 16x the RFC — and refuse
#: anything longer as soon as the 8193rd octet arrives without a line end.
DEFAULT_MAX_REPLY_LINE_LENGTH = 8192

#: Most lines in one multiline reply. The largest real EHLO replies are ~30 lines;
#: Exim's and Postfix's HELP texts ~60. 1000 leaves a wide margin while stopping a
#: peer that streams continuation lines forever.
DEFAULT_MAX_REPLY_LINES = 1000

#: Most octets in one reply (all its lines with their CRLFs). 64 KiB holds 1000 lines of
#: 64 octets or 8 maximal lines; memory held by a parser never exceeds this bound plus
#: the one chunk being fed.
DEFAULT_MAX_REPLY_BYTES = 64 * 1024

#: Most octets an engine holds that ``receive_data`` took and ``next_event`` has not yet
#: consumed, in either role. The bundled adapters feed one read (at most 256 KiB, or the
#: 1 MiB read-ahead of a long write, docs/design.md §7) and then drain, so they never come
#: near it; a caller that keeps feeding without ``next_event`` (256 x 64 KiB grew 16 MiB)
#: gets ``LocalProtocolError`` for the chunk that would cross it, with nothing stored.
#: 4 MiB is 64 maximal replies, or the server's unanswered-input bound 16 times over.
DEFAULT_MAX_RECEIVE_BUFFER = 4 * 1024 * 1024

#: RFC 3461 §4.4: the ENVID value, xtext-encoded, is at most 100 characters.
MAX_ENVID = 100
#: RFC 3461 §4.2: the ORCPT value, xtext-encoded, is at most 500 characters.
MAX_ORCPT = 500
