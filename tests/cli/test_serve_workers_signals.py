"""``smtpproto serve --workers N`` and signals and failures around a worker's start and
stop: a forked worker never unwinds into its parent's frames (which would stop its
siblings and remove the shared certificate), a Ctrl-C while the workers start stops
them as it does later, a Ctrl-C repeated while they stop (a terminal sends SIGINT
to every process of the group, then the parent sends SIGTERM) leaves no traceback, and
a stop signal repeated to the parent while it stops them is dropped."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .helpers import RUN_TIMEOUT, ServeProcess, cli_env
from .test_serve_workers import _alive, _all_gone, _pids

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork"), reason="--workers needs fork and descriptor passing (POSIX)"
)

#: Runs ``serve_workers._supervise`` with 2 workers whose server ``MAKE`` makes, in a
#: session of its own (its Ctrl-C reaches only it); prints who returned from it.
_SUPERVISE = """
import os, signal, sys
from smtpproto.builtin_server.server import SMTPServer
from smtpproto.cli import serve_workers
parent = os.getpid()
{make}
listener = serve_workers._listen("127.0.0.1", 0)
previous = signal.pthread_sigmask(signal.SIG_BLOCK, serve_workers._SIGNALS)  # as run_workers
try:
    code = serve_workers._supervise(
        2, listener, make, lambda: print("banner", flush=True), previous
    )
    print(f"returned {{code}} in {{'parent' if os.getpid() == parent else 'a worker'}}", flush=True)
finally:
    listener.close()
"""


def _supervise(make: str) -> subprocess.CompletedProcess[str]:
    script = _SUPERVISE.format(make=textwrap.dedent(make))
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=RUN_TIMEOUT,
        check=False,
        start_new_session=True,
    )


def test_a_worker_whose_server_cannot_be_made_never_runs_its_parents_code() -> None:
    """An exception in a worker before it serves (here: making its server) ends that
    worker with exit 70 and a line on stderr; before, it unwound into the parent's
    frames in the forked copy: the copy SIGTERMed its siblings, failed on their pids,
    and returned to the caller as if it were the parent."""
    result = _supervise(
        """
        def make(number):
            raise RuntimeError(f"no server for worker {number}")
        """
    )
    detail = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.stdout.splitlines() == ["returned 70 in parent"], detail
    assert result.returncode == 0, detail
    assert "worker failed: RuntimeError('no server for worker 1')" in result.stderr, detail
    assert re.search(r"worker [12] exited \(70\)", result.stderr), detail  # then the rest stop
    assert "Traceback" not in result.stderr, detail


def test_ctrl_c_while_the_workers_start_stops_them_as_it_does_later() -> None:
    """Ctrl-C (SIGINT to the whole process group) while worker 1 makes its server:
    the stop signals stay blocked in a worker until its handlers are there, so it stops
    as it would later, and the parent, which takes them while it waits for the workers
    too, says "stopping" and returns 0; before, each worker died of KeyboardInterrupt
    ("worker failed"), one unwinding into the parent's frames."""
    result = _supervise(
        """
        def make(number):
            if number == 1:
                os.killpg(0, signal.SIGINT)
            return SMTPServer(starttls=False)
        """
    )
    detail = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    # The workers may say they are ready before they handle the signal: then the
    # parent prints its banner first and takes the signal as it does later.
    assert result.stdout.splitlines()[-1:] == ["returned 0 in parent"], detail
    assert "in a worker" not in result.stdout, detail
    assert result.returncode == 0, detail
    assert result.stderr.splitlines() == ["stopping 2 workers (SIGINT)"], detail


#: Servers stopped in turn by ``test_ctrl_c_repeated_while_the_workers_stop_...``.
ROUNDS = 5


def test_ctrl_c_repeated_while_the_workers_stop_leaves_no_traceback() -> None:
    """A terminal's Ctrl-C reaches the parent and every worker; the parent then sends
    SIGTERM, and the user may press Ctrl-C again: every further stop signal a worker
    gets while it stops is one too many, and waits (blocked) for its exit. Before, one
    arriving after asyncio closed the loop's wakeup socket printed "Exception ignored
    ... BrokenPipeError", and one after the handlers were removed raised
    KeyboardInterrupt in the worker ("worker failed"), sometimes unwinding into the
    parent's frames ("internal error"). The repeats are 1 ms apart, for 10 s at most;
    ``ROUNDS`` servers in turn (the window is narrow: one round failed 1 to 8 times in
    10 before the fix, depending on the machine's load)."""
    for _ in range(ROUNDS):
        with ServeProcess("--workers", "2", "--no-starttls") as serve:
            line = serve.wait_for("workers: ")
            pids = [int(pid) for pid in re.findall(r"[0-9]+", line.split("pids", 1)[1])]
            for pid in [serve.process.pid, *pids]:  # the terminal signals the whole group
                os.kill(pid, signal.SIGINT)
            deadline = time.monotonic() + 10.0
            while serve.process.poll() is None and time.monotonic() < deadline:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGINT)
                time.sleep(0.001)
            code = serve.stop()
        detail = f"stdout:\n{serve.output()}\nstderr:\n{serve.stderr}"
        assert code == 0, detail
        assert serve.stderr.splitlines() == ["stopping 2 workers (SIGINT)"], detail


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_repeated_while_the_workers_stop_is_taken_like_the_first(
    sig: signal.Signals,
) -> None:
    """``kill`` twice (or Ctrl-C, then ``kill``): the parent blocks the stop signals
    until it removed the certificate, so the repeat is dropped. Before, it was
    unblocked once the workers were reaped: SIGTERM and SIGHUP killed the parent before
    it removed the certificate (exit -15, -1), SIGINT became a KeyboardInterrupt (exit
    130, "interrupted"). One worker stopped (SIGSTOP) keeps the parent waiting for its
    exit until SIGCONT, so the repeat surely comes while it stops them."""
    with ServeProcess("--workers", "2") as serve:
        cert = Path(serve.wait_for("STARTTLS certificate:").split(": ", 1)[1])
        try:
            pids = _pids(serve)
            os.kill(pids[0], signal.SIGSTOP)
            try:
                serve.process.send_signal(sig)
                # the parent took it once it stopped the other worker (SIGTERM from it)
                assert _all_gone(pids[1:]), "the parent did not stop the running worker"
                assert _alive(pids[0])
                serve.process.send_signal(sig)
            finally:
                os.kill(pids[0], signal.SIGCONT)
            code = serve.stop()
            assert code == 0, serve.stderr
            assert serve.stderr.splitlines() == [f"stopping 2 workers ({sig.name})"]
            assert _all_gone(pids, timeout=1.0)
            assert not cert.parent.exists()
        finally:
            shutil.rmtree(cert.parent, ignore_errors=True)  # a parent killed cannot
