"""Fixtures for the fuzzer's end-to-end tests: a folder per test, the cached aiosmtpd 1.4.4."""

from __future__ import annotations

from pathlib import Path

import pytest

from .servers import aiosmtpd_144_python


@pytest.fixture(scope="session")
def aiosmtpd_144() -> Path:
    """The interpreter of the cached venv with aiosmtpd 1.4.4 (built on first use)."""
    return aiosmtpd_144_python()
