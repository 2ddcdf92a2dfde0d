"""Vendoring: copy the package under another name, and it runs as it is.

    python examples/vendoring.py

Every import inside the package is relative, and the engine has no runtime dependency,
so a framework can ship it inside its own package (``myframework/_smtp``). This example
copies the installed package to a temporary folder as ``myframework._smtp`` and runs a
whole session in memory, without any socket: the vendored client engine
(``ClientConnection``) talks to the vendored server engine (``ServerConnection``), whose
replies come from the built-in server's policy (``Backend``), which has no I/O either.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import smtpproto


def vendor(into: Path) -> Any:
    """Copy the package to ``into/myframework/_smtp`` and import it from there."""
    target = into / "myframework" / "_smtp"
    shutil.copytree(
        Path(smtpproto.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__")
    )
    (into / "myframework" / "__init__.py").write_text("")
    sys.path.insert(0, str(into))
    return importlib.import_module("myframework._smtp")


def run_session(smtp: Any) -> None:
    backend_module = importlib.import_module("myframework._smtp.builtin_server.backend")
    events = importlib.import_module("myframework._smtp.server_engine.events")
    client = smtp.ClientConnection()
    server = smtp.ServerConnection()
    policy = backend_module.Backend().new_session(server)

    def to_server(data: bytes) -> bytes:
        """Feed the server engine; return the bytes of its policy's replies."""
        server.receive_data(data)
        answer = b""
        while True:
            event = server.next_event()
            if event is smtp.NEED_DATA or event is smtp.PAUSED:
                return answer
            if isinstance(event, events.ClientDisconnected):
                return answer
            for reply in policy.replies(event):
                answer += server.send(reply)

    def to_client(data: bytes) -> list[Any]:
        """Feed the client engine; return its events."""
        client.receive_data(data)
        seen = []
        while (event := client.next_event()) is not smtp.NEED_DATA:
            seen.append(event)
        return seen

    def say(command: Any) -> list[Any]:
        wire = client.send(command)
        print("C:", wire.decode().rstrip())
        return to_client(to_server(wire))

    print("greeting:", to_client(server.send(policy.greeting())))
    print("EHLO:", type(say(smtp.Ehlo(hostname="client.example"))[0]).__name__)
    say(smtp.Mail(sender="alice@example.com"))
    say(smtp.Rcpt(recipient="bob@example.org"))
    print("DATA:", type(say(smtp.Data())[-1]).__name__)
    client.send(smtp.Content(data=b"Subject: vendored\r\n\r\nHello\r\n"))
    (result,) = say(smtp.EndOfContent())
    print("delivered to:", result.delivered)
    say(smtp.Quit())
    print("the policy kept", len(policy.backend.messages), "message")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        smtp = vendor(Path(folder))
        print("vendored as", smtp.__name__, "from", Path(smtp.__file__).parent)
        run_session(smtp)
        loaded = sorted({name.split(".")[0] for name in sys.modules if "_smtp" in name})
        print("top-level packages of the vendored modules:", loaded)


if __name__ == "__main__":
    main()
