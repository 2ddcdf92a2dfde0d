"""The example loop in docs/engine.md runs as written against the scripted server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from engine_helpers import EHLO_ALL, ScriptedServer

DOC = Path(__file__).resolve().parent.parent / "docs" / "engine.md"


class FakeSocket:
    """Just enough of a socket for the example: the server answers what is sent."""

    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.inbox = b"220 mx.example.org ESMTP\r\n"
        self.timeouts: list[float | None] = []
        self.recv_calls = 0

    def settimeout(self, value: float | None) -> None:
        self.timeouts.append(value)

    def recv(self, size: int) -> bytes:
        self.recv_calls += 1
        assert self.recv_calls < 100, "the example loop does not terminate"
        data, self.inbox = self.inbox[:size], self.inbox[size:]
        return data

    def sendall(self, data: bytes) -> None:
        self.inbox += self.server.receive(data)


def _example() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## A full loop", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_documented_loop_runs() -> None:
    server = ScriptedServer(
        {b"EHLO": [EHLO_ALL], b"RCPT": [b"250 ok\r\n", b"550 5.1.1 unknown\r\n"]}
    )
    sock = FakeSocket(server)
    printed: list[Any] = []
    namespace: dict[str, Any] = {
        "sock": sock,
        "body_chunks": [b"Subject: hi\r\n", b"\r\n.leading dot\r\n"],
        "print": lambda *args: printed.append(args),
    }
    exec(compile(_example(), str(DOC), "exec"), namespace)  # our own docs, not input
    delivered, failed = printed[0]
    assert delivered == ("b@example.org",)
    assert [address for address, _ in failed] == ["c@example.org"]
    assert server.messages == [b"Subject: hi\r\n\r\n.leading dot\r\n"]
    assert server.lines[-1] == b"QUIT"
    assert 300 in sock.timeouts and 600 in sock.timeouts
