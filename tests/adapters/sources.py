"""Content sources for the adapter tests that the drivers read only as they send."""

from __future__ import annotations

import io


class Unseekable:
    """A binary file that cannot seek (a pipe, a socket's file): read only as it is
    sent, so a bad octet in it is found after chunks went out -- unlike a seekable
    file, which is read and checked before MAIL (``drivers.prescan``)."""

    def __init__(self, content: bytes) -> None:
        self._file = io.BytesIO(content)

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seekable(self) -> bool:
        return False
