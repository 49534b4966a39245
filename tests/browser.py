"""Headless Chromium for the tests that look at pages as a person would (Debian's `chromium`,
installed by .ci/run). As root it needs `--no-sandbox`; every run gets a fresh profile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
# No network: every request that is not for a file goes to a closed port on loopback (loopback
# itself included, `<-loopback>`), so a page that needs anything from a server shows it.
OFFLINE_FLAGS = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


def chromium(profile: Path, *args: str, budget_ms: int = 5000, timeout: float = 120) -> str:
    """Run headless Chromium with `args` (e.g. `--dump-dom URL`); its stdout."""
    assert CHROMIUM, "Debian's chromium package is required (installed by .ci/run)"
    return subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    ).stdout


def dump_dom(url: str, profile: Path, *flags: str, budget_ms: int = 5000) -> str:
    """The page's DOM once scripts have run for `budget_ms` of virtual time."""
    return chromium(profile, *flags, "--dump-dom", url, budget_ms=budget_ms)


def screenshot(url: str, profile: Path, shot: Path, size: tuple[int, int], *flags: str) -> Path:
    chromium(profile, *flags, f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}", url)
    return shot
