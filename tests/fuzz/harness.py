"""Run the real fuzzer against a named target and check its findings by replay.

Shared by the end-to-end tests (``test_e2e_*.py``) and the measuring script
(``fuzz/measure.py``). Targets, by name:

- ``clean``: ``flawed_server.py`` with no flaw (a strict, correct server);
- ``flaw:NAME``: the same server with the planted flaw ``NAME`` (``flaws.FLAWS``);
- ``aiosmtpd``: the current aiosmtpd of the test venv; ``aiosmtpd-1.4.4``: aiosmtpd 1.4.4
  from PyPI in a cached venv (two published CVEs);
- ``builtin``: the project's own server (``smtpproto.testing.run_server``), AUTH for the
  fuzz user after STARTTLS;
- ``exim``: the private Exim of ``.ci/install-peers`` (``tests/interop/peers_exim.py``).

``verify(finding, ...)`` replays a finding's transcript with the ``smtpproto replay``
command line against a fresh instance of the flawed target (it must reproduce, and the
server must log the planted flaw) and against the clean server (it must not reproduce).
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from smtpproto.fuzz import CampaignReport, run_campaign
from smtpproto.testing import run_server

from .flawed_server import AUTH_PASSWORD, AUTH_USER
from .servers import HOST, Target, aiosmtpd_144_python, start_aiosmtpd, start_flawed

#: Credentials every target accepts (the fuzzer is given them, as a server owner would).
CREDENTIALS = (AUTH_USER, AUTH_PASSWORD)
REPLAY_TIMEOUT = 120.0


@dataclasses.dataclass
class Running:
    """A started target: where it listens, and the flawed server's handle if it is one."""

    name: str
    host: str
    port: int
    flawed: Target | None = None
    auth: tuple[str, str] | None = CREDENTIALS


def _flaw_options(flaw: str) -> dict[str, Any]:
    return {"require_auth": flaw == "auth-bypass-after-failure"}


@contextlib.contextmanager
def start(name: str, folder: Path, *, seed: int | None = None) -> Iterator[Running]:
    """Start the target ``name`` (see the module docstring) for the ``with`` block."""
    folder.mkdir(parents=True, exist_ok=True)
    if name == "clean" or name.startswith("flaw:"):
        flaw = name.partition(":")[2]
        flaws = [flaw] if flaw else []
        with start_flawed(folder, flaws, seed=seed, **_flaw_options(flaw)) as target:
            yield Running(name, target.host, target.port, target)
    elif name in ("aiosmtpd", "aiosmtpd-1.4.4"):
        python = sys.executable if name == "aiosmtpd" else aiosmtpd_144_python()
        from trustme import CA

        cert = CA().issue_cert("localhost", "127.0.0.1")
        cert_path, key_path = folder / "aiosmtpd-cert.pem", folder / "aiosmtpd-key.pem"
        cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key_path))
        with start_aiosmtpd(python, cert_path, key_path) as target:
            yield Running(target.name, target.host, target.port, auth=None)
    elif name == "builtin":
        users = {AUTH_USER: AUTH_PASSWORD}
        with run_server(host=HOST, users=users, hostname="builtin.test") as server:
            yield Running(name, server.host, server.port)
    elif name == "exim":
        from interop.peers import AUTH_PASSWORD as EXIM_PASSWORD
        from interop.peers import AUTH_USER as EXIM_USER
        from interop.peers_exim import start_exim

        with start_exim() as exim:
            yield Running(name, exim.host, exim.port, auth=(EXIM_USER, EXIM_PASSWORD))
    else:
        raise ValueError(f"unknown target {name!r}")


@dataclasses.dataclass
class Campaign:
    """A campaign's report, where it wrote its findings, and when each was announced."""

    report: CampaignReport
    out: Path
    found_at: list[float]


def fuzz(running: Running, out: Path, *, budget: float, seed: int = 1, **options: Any) -> Campaign:
    """Run ``run_campaign`` against ``running`` with its credentials; findings go to ``out``."""
    started = time.monotonic()
    found_at: list[float] = []

    def progress(text: str, done: float) -> None:
        if text.startswith("finding "):
            found_at.append(time.monotonic() - started)

    report = run_campaign(
        running.host,
        running.port,
        tls="starttls",
        budget=budget,
        seed=seed,
        out=str(out),
        auth=running.auth,
        progress=progress,
        **options,
    )
    return Campaign(report, out, found_at)


def transcripts(out: Path) -> list[Path]:
    """Every claimed finding: each ``.jsonl`` file under ``out``."""
    return sorted(out.rglob("*.jsonl"))


def replay_cli(transcript: Path, host: str, port: int) -> subprocess.CompletedProcess[str]:
    """``smtpproto replay FILE HOST:PORT`` in a subprocess (exit 0: still reproduces)."""
    return subprocess.run(
        [sys.executable, "-m", "smtpproto", "replay", str(transcript), f"{host}:{port}"],
        capture_output=True,
        text=True,
        timeout=REPLAY_TIMEOUT,
        check=False,
    )


@dataclasses.dataclass
class Verdict:
    """Whether one transcript reproduces a planted flaw and only it."""

    transcript: Path
    reproduces: bool  # exit 0 against a fresh flawed instance
    triggers: bool  # ... and that instance logged FLAW-TRIGGERED for the flaw
    clean_reproduces: bool  # exit 0 against the clean server (must be False)
    output: str

    @property
    def ok(self) -> bool:
        return self.reproduces and self.triggers and not self.clean_reproduces


def verify(transcript: Path, flaw: str, folder: Path | None = None) -> Verdict:
    """Replay ``transcript`` against a fresh ``flaw`` instance and against the clean server."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        with start(f"flaw:{flaw}", folder / "fresh") as fresh:
            done = replay_cli(transcript, fresh.host, fresh.port)
            assert fresh.flawed is not None
            deadline = time.monotonic() + 5.0
            while flaw not in fresh.flawed.triggered() and time.monotonic() < deadline:
                time.sleep(0.05)
            triggers = flaw in fresh.flawed.triggered()
        with start("clean", folder / "clean", **{}) as clean:
            against_clean = replay_cli(transcript, clean.host, clean.port)
    return Verdict(
        transcript,
        done.returncode == 0,
        triggers,
        against_clean.returncode == 0,
        (done.stdout + done.stderr)[-2000:],
    )


def find(
    flaw: str, folder: Path, *, budget: float, seed: int = 1, **options: Any
) -> tuple[Campaign, Verdict | None]:
    """Fuzz a fresh ``flaw`` instance (``options`` go to ``run_campaign``); return the
    campaign and the first transcript that verifies (``None`` if none does)."""
    with start(f"flaw:{flaw}", folder / "target") as running:
        campaign = fuzz(running, folder / "out", budget=budget, seed=seed, **options)
    for transcript in transcripts(campaign.out):
        verdict = verify(transcript, flaw, folder / "verify")
        if verdict.ok:
            return campaign, verdict
    return campaign, None
