"""A stop signal while ``smtpproto serve`` makes its temporary STARTTLS certificate
(one process, and ``--workers``): serve stops as it would later, exit 0, one line on
stderr, and removes the certificate's folder. Before, SIGTERM and SIGHUP came before
the handlers (one process) or before the signals were blocked (``--workers``): their
default action killed serve and left ``smtpproto-server-*`` in the temporary folder;
Ctrl-C (one process) cancelled the start, whose cleanup removed the folder under the
thread writing the certificate ("STARTTLS not offered: ... No such file or
directory"). The signal is sent by the certificate maker itself (wrapped), so it
surely comes while it runs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .helpers import RUN_TIMEOUT, cli_env, free_port

#: Runs ``smtpproto serve`` with ``MODULE``'s ``make_certificate`` sending ``SIGNAL``
#: to its own process first.
_SCRIPT = """
import importlib, os, signal, sys
from smtpproto.cli.main import main
module = importlib.import_module({module!r})
made = module.make_certificate
def make_certificate(*args, **kwargs):
    os.kill(os.getpid(), {signal})
    return made(*args, **kwargs)
module.make_certificate = make_certificate
sys.exit(main(["serve", "--port", {port!r}, "-q", *{extra!r}]))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("smtpproto.builtin_server.server", []),
        ("smtpproto.cli.serve_workers", ["--workers", "2"]),
    ],
    ids=["one process", "workers"],
)
def test_a_stop_signal_while_the_certificate_is_made_removes_it(
    tmp_path: Path, sig: signal.Signals, module: str, extra: list[str]
) -> None:
    script = _SCRIPT.format(module=module, signal=int(sig), port=str(free_port()), extra=extra)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=cli_env({"TMPDIR": str(tmp_path)}),
        timeout=RUN_TIMEOUT,
        check=False,
    )
    detail = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, detail
    assert "Traceback" not in result.stderr, detail
    if extra:
        assert result.stderr.splitlines() == [f"stopping 2 workers ({sig.name})"], detail
    else:
        assert result.stderr.splitlines() == [f"stopped ({sig.name})"], detail
        assert "listening on" not in result.stdout, detail  # stopped before the banner
    assert sorted(os.listdir(tmp_path)) == [], detail


@pytest.mark.parametrize(
    ("module", "extra", "started", "stopped"),
    [
        ("smtpproto.builtin_server.server", [], "press Ctrl-C", "stopped (SIGTERM)"),
        (
            "smtpproto.cli.serve_workers",
            ["--workers", "2"],
            "workers: 2",
            "stopping 2 workers (SIGTERM)",
        ),
    ],
    ids=["one process", "workers"],
)
@pytest.mark.parametrize("ignored", [signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_ignored_before_serve_starts_stays_ignored(
    tmp_path: Path,
    module: str,
    extra: list[str],
    started: str,
    stopped: str,
    ignored: signal.Signals,
) -> None:
    """``serve &`` (or ``serve --workers 2 &``) from a script starts with SIGINT
    ignored, ``nohup serve`` with SIGHUP ignored: that signal while the certificate is
    made is not taken as a stop (serve starts and prints its banner), nor later to the
    process group (Ctrl-C in the terminal, the terminal closed: serve, or the parent
    and its workers); SIGTERM stops it as usual. With workers, the parent blocked the
    signal whatever its disposition (a blocked signal is kept pending even when
    ignored) and took it as a stop, and the workers set a handler for it; serve set
    one for SIGHUP."""
    script = f"import signal\nsignal.signal({int(ignored)}, signal.SIG_IGN)\n" + _SCRIPT.format(
        module=module, signal=int(ignored), port=str(free_port()), extra=extra
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env({"TMPDIR": str(tmp_path)}),
        start_new_session=True,  # its own process group, as a terminal's job
    )
    killer = threading.Timer(RUN_TIMEOUT, process.kill)  # bounded: never hangs
    killer.start()
    try:
        assert process.stdout is not None
        banner = False
        for line in iter(process.stdout.readline, ""):  # until the banner's end, or EOF
            if started in line:
                banner = True
                break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, ignored)  # Ctrl-C in the terminal, or it closed
            # (bounded) a process that took it stops meanwhile (a worker: reported)
            threading.Event().wait(0.5)
            process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        killer.cancel()
        process.kill()
        process.wait()
    assert banner, stderr
    assert process.returncode == 0, stderr
    assert stderr.splitlines() == [stopped], stderr
    assert sorted(os.listdir(tmp_path)) == []
