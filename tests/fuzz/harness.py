"""Run the real fuzzer against a named target and check its findings by replay.

Shared by the end-to-end tests (``test_e2e_*.py``) and the measuring script
(``fuzz/measure.py``). Targets, by name:

- ``clean``: ``flawed_server.py`` with no flaw (a strict, correct server);
- ``flaw:NAME[,NAME...]``: the same server with these planted flaws (``flaws.FLAWS``);
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
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from smtpproto.fuzz import CampaignReport, run_campaign
from smtpproto.testing import run_server

from .flawed_server import AUTH_PASSWORD, AUTH_USER
from .servers import HOST, Target, aiosmtpd_144_python, start_aiosmtpd, start_flawed
from .spec_validator import finding_problems

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


@contextlib.contextmanager
def start(
    name: str, folder: Path, *, seed: int | None = None, require_auth: bool = False
) -> Iterator[Running]:
    """Start the target ``name`` (see the module docstring) for the ``with`` block.

    A planted server requires AUTH for MAIL with ``require_auth``, or when it carries
    ``auth-bypass-after-failure`` (that flaw needs it)."""
    folder.mkdir(parents=True, exist_ok=True)
    if name == "clean" or name.startswith("flaw:"):
        flaws = [flaw for flaw in name.partition(":")[2].split(",") if flaw]
        options = {"require_auth": require_auth or "auth-bypass-after-failure" in flaws}
        with start_flawed(folder, flaws, seed=seed, **options) as target:
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


def random_seed() -> int:
    """A fresh seed for a flawed server's thresholds (``SMTPPROTO_FUZZ_SERVER_SEED`` fixes it)."""
    fixed = os.environ.get("SMTPPROTO_FUZZ_SERVER_SEED")
    return int(fixed) if fixed else int.from_bytes(os.urandom(4), "big")


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
    """What replaying one transcript did to a fresh flawed instance and to the clean one."""

    transcript: Path
    reproduces: bool  # exit 0 against a fresh flawed instance
    triggered: set[str]  # the flaws that instance logged
    clean_reproduces: bool  # exit 0 against the clean server (must be False)
    output: str

    def shows(self, flaw: str) -> bool:
        """The transcript reproduces ``flaw``: it triggers it, and not on the clean server."""
        return self.reproduces and flaw in self.triggered and not self.clean_reproduces


def verify(
    transcript: Path, flaws: tuple[str, ...], folder: Path, *, seed: int | None = None
) -> Verdict:
    """Replay ``transcript`` against a fresh instance with ``flaws`` (same ``seed``: same
    thresholds as the fuzzed one) and against the clean server (same seed). The file
    must first pass the independent FUZZ-TRANSCRIPT.md check (``spec_validator``)."""
    assert finding_problems(transcript.read_bytes()) == [], transcript
    with start("flaw:" + ",".join(flaws), folder / "fresh", seed=seed) as fresh:
        done = replay_cli(transcript, fresh.host, fresh.port)
        assert fresh.flawed is not None
        deadline = time.monotonic() + 2.0
        while not fresh.flawed.triggered() and time.monotonic() < deadline:
            time.sleep(0.05)
        triggered = set(fresh.flawed.triggered())
    # The clean server has the same policy (AUTH required when the flawed one needs it).
    policy = "auth-bypass-after-failure" in flaws
    with start("clean", folder / "clean", seed=seed, require_auth=policy) as clean:
        against_clean = replay_cli(transcript, clean.host, clean.port)
    return Verdict(
        transcript,
        done.returncode == 0,
        triggered,
        against_clean.returncode == 0,
        (done.stdout + done.stderr)[-2000:],
    )


def find(
    flaw: str, folder: Path, *, budget: float, seed: int = 1, **options: Any
) -> tuple[Campaign, Verdict | None]:
    """Fuzz a fresh ``flaw`` instance (``options`` go to ``run_campaign``); return the
    campaign and the first transcript that verifies (``None`` if none does).

    The server's thresholds come from a random seed (``random_seed``), printed on stdout,
    and the fresh instance of the replay gets the same one."""
    server_seed = random_seed()
    print(f"{flaw}: server seed {server_seed}")
    with start(f"flaw:{flaw}", folder / "target", seed=server_seed) as running:
        campaign = fuzz(running, folder / "out", budget=budget, seed=seed, **options)
    for transcript in transcripts(campaign.out):
        verdict = verify(transcript, (flaw,), folder / "verify", seed=server_seed)
        if verdict.shows(flaw):
            return campaign, verdict
    return campaign, None
