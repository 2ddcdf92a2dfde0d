"""From the caller's message to one transaction's commands and content (the
``MailDrivers`` of ``drivers.mail`` inherit it): the recipients, MAIL with its
parameters defaulted from the content and the server's capabilities (SMTPUTF8, RFC
6531; BODY=8BITMIME, RFC 6152; SIZE=, RFC 1870), the RCPTs, and the content as a first
chunk and the rest. A seekable file is read once first (``prescan``); content held
whole is checked by the DATA encoder (``mail_checks.check_content``); identical
commands are reused (``COMMAND_CACHE``). Nothing is sent here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from ..client_engine.events import Mail, Rcpt
from ..client_engine.writers import write_rcpt
from ..wire.errors import LocalProtocolError
from .core import DriverCore
from .mail_checks import WHOLE, check_content, check_options, encoder_for, refused
from .prescan import ScannedFile, scan_file, seekable_start
from .support import ContentSource, MailOptions, all_ascii, canonical_size, content_chunks, utf8

__all__ = ["COMMAND_CACHE", "MessagePreparer"]

#: Most MAIL/RCPT commands ``_command`` keeps for reuse (cleared when full).
COMMAND_CACHE = 1024
C = TypeVar("C", Mail, Rcpt)


class MessagePreparer(DriverCore):
    """A message's recipients, MAIL and RCPT commands and content chunks
    (``_prepare``), before anything of it is sent."""

    def _prepare(
        self,
        sender: str,
        recipients: str | Iterable[str],
        content: ContentSource,
        options: MailOptions,
        chunk_size: int,
        raw: bool = False,
    ) -> tuple[tuple[str, ...], Mail, list[Rcpt], bytes, Iterator[bytes], int | None]:
        """The recipients, MAIL and RCPT commands, the first content chunk, the rest
        and the total size (None: unknown) of one message; MAIL parameters defaulted
        from the content and the capabilities (see ``sendmail``). Nothing is sent;
        bad input raises ``LocalProtocolError``: so does content held whole (bytes,
        bytearray, memoryview, str) that the DATA encoder would refuse after the 354
        (``check_content``; ``raw`` content has its own check, ``checked_raw``)."""
        if isinstance(recipients, str):
            rcpts: tuple[str, ...] = (recipients,)
        else:
            try:
                rcpts = tuple(recipients)
            except TypeError:  # not iterable (None, an int): caller misuse
                rcpts = (recipients,)  # type: ignore[assignment]  # refused just below
        if not isinstance(sender, str):
            raise LocalProtocolError(f"sender must be a str, got {type(sender).__name__}")
        if not all(isinstance(r, str) for r in rcpts):
            wrong = next(r for r in rcpts if not isinstance(r, str))
            raise LocalProtocolError(
                f"recipients must be a str or an iterable of str, got a {type(wrong).__name__}"
            )
        check_options(options)
        if not rcpts:
            raise LocalProtocolError("sendmail needs at least one recipient")
        if type(chunk_size) is not int or chunk_size < 1:
            raise LocalProtocolError("chunk_size must be a positive int")
        caps = self.conn.capabilities
        if len(rcpts) > 1 and caps is not None:
            limit = caps.limits.rcptmax
            if limit is not None and len(rcpts) > limit:
                # The engine would refuse the RCPT past it with MAIL already written.
                raise LocalProtocolError(
                    f"{len(rcpts)} recipients and the server's LIMITS RCPTMAX is {limit} "
                    "(RFC 9422 §4.2): one transaction cannot take them; sendmail and "
                    "send_message split them unless MailOptions(split_recipients=False)"
                )
        if isinstance(content, str):
            content = utf8(content)  # once: checked below, then chunked
        body = options.body
        # A seekable file is read once now (``prescan``): its SIZE=, BODY= and the
        # DATA rules' refusal as for content held whole; it is then sent as read.
        scan = None if raw or body == "BINARYMIME" else self._scan(content, chunk_size)
        eight_bit = not scan.ascii if scan is not None else not all_ascii(content)
        if body is None and caps is not None and caps.eightbitmime and eight_bit:
            body = "8BITMIME"
        if scan is not None:
            self._check_scanned(scan, body, chunk_size)
            chunks: Iterator[bytes] = scan.chunks(chunk_size)
            total: int | None = scan.length
        else:
            chunks, total = content_chunks(content, chunk_size)  # refuses what it cannot read
            if not raw and body != "BINARYMIME" and isinstance(content, WHOLE):
                # Content held whole is checked now, by the encoder the engine uses
                # after the 354 (a refusal there breaks the session): nothing is sent.
                check_content(self.config, body, content)
        first = next(chunks, b"")
        smtputf8 = options.smtputf8
        if smtputf8 is None:
            smtputf8 = not sender.isascii() or not (
                rcpts[0].isascii() if len(rcpts) == 1 else all(r.isascii() for r in rcpts)
            )
        size = options.size
        if size is None and total is not None and caps is not None and caps.size is not None:
            # Content held whole and a scanned file are counted with CRLF line ends
            # (RFC 1870 §3); raw and BINARYMIME content is sent as is.
            if scan is not None:
                size = scan.size
            elif not raw and body != "BINARYMIME" and isinstance(content, WHOLE):
                size = canonical_size(content)
            else:
                size = total
        # The same envelope as the last message (the common batch): its commands are
        # immutable values made from exactly these inputs, so they are reused as is.
        key = (sender, rcpts, size, body, smtputf8, options, caps)
        last = self._last_envelope
        if last is not None and last[0] == key:
            return rcpts, last[1], list(last[2]), first, chunks, total
        mail = self._command(
            Mail,
            sender=sender,
            size=size,
            body=body,
            smtputf8=smtputf8,
            ret=options.ret,
            envid=options.envid,
            requiretls=options.requiretls,
            mt_priority=options.mt_priority,
            by=options.by,
            auth=options.auth,
        )
        commands = [
            self._command(
                Rcpt, recipient=r, notify=options.notify, orcpt=r if options.orcpt else None
            )
            for r in rcpts
        ]
        for rcpt in commands:  # what the engine would refuse only with MAIL already out:
            # NOTIFY=/ORCPT= without DSN (RFC 3461 §4.1-4.2), a non-ASCII address without
            # SMTPUTF8 (RFC 6531 §3.4); RCPTMAX is checked above.
            write_rcpt(rcpt, caps, smtputf8=smtputf8, count=0, rcptmax=None)
        if options.notify is None or type(options.notify) is tuple:  # never a list: mutable
            self._last_envelope = (key, mail, tuple(commands))
        return rcpts, mail, commands, first, chunks, total

    def _scan(self, content: ContentSource, chunk_size: int) -> ScannedFile | None:
        """``content`` read once before MAIL when it is a seekable binary file
        (``prescan``), under the DATA rules but 8-bit allowed (BODY= is decided from
        what the scan finds); None for anything else."""
        if isinstance(content, WHOLE):
            return None
        start = seekable_start(content)
        if start is None:
            return None
        config = self.config
        return scan_file(
            content,  # type: ignore[arg-type]  # seekable_start: has read()
            start,
            chunk_size,
            lambda: encoder_for(config, "8BITMIME"),
        )

    def _check_scanned(self, scan: ScannedFile, body: str | None, chunk_size: int) -> None:
        """Refuse before MAIL, as ``check_content`` does for content held whole, a
        scanned file the DATA encoder for ``BODY=body`` would refuse after the 354. An
        8-bit file without BODY=8BITMIME is read again under that body's rules, for the
        refusal that comes first in the file (a NUL before the first 8-bit octet)."""
        refusal = scan.refusal
        if body != "8BITMIME" and not scan.ascii:
            config = self.config
            again = scan_file(scan.file, scan.start, chunk_size, lambda: encoder_for(config, body))
            refusal = again.refusal
        if refusal is not None:
            raise refused(refusal, "Refused before MAIL: nothing was sent, the session is usable")

    def _command(self, cls: type[C], **fields: Any) -> C:
        """``cls(**fields)``, reusing an identical command made recently: commands are
        immutable values, and validating addresses is a large part of a small message's
        cost. The cache holds at most ``COMMAND_CACHE`` entries."""
        key = (cls, *fields.items())
        cache = self._commands
        try:
            found = cache.get(key)
        except TypeError:  # an unhashable field (a notify list): no caching
            return cls(**fields)
        if found is None:
            if len(cache) >= COMMAND_CACHE:
                cache.clear()
            found = cache[key] = cls(**fields)
        assert isinstance(found, cls)
        return found

    def _offers_8bit(self) -> bool:
        """Whether the server advertises 8BITMIME (RFC 6152), which ``_prepare`` uses."""
        caps = self.conn.capabilities
        return caps is not None and caps.eightbitmime
