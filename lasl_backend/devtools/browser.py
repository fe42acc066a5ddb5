"""A real browser for the project page's tests: Debian's headless Chromium, installed on first use.

Chromium comes from the Debian archive (a package registry, reachable where the project's CI runs), not
from a browser download site, and is driven by its own command line (``--dump-dom`` for the DOM after
rendering, ``--screenshot`` for a PNG), so no browser driver package is needed. The CJK font comes along:
without it every Chinese label renders as a box. Where neither a Chromium nor root with ``apt-get`` is
available, :func:`find_chromium` says why, and the tests skip with that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["BrowserUnavailable", "dump_dom", "find_chromium", "screenshot"]

PACKAGES = ("chromium", "fonts-noto-cjk")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars")


class BrowserUnavailable(RuntimeError):
    """No Chromium here, and none can be installed (the message says why)."""


def find_chromium(install: bool = True) -> str:
    """The path of a Chromium binary, installing Debian's package (as root, with apt-get) if there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if not install:
        raise BrowserUnavailable("no chromium on PATH")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BrowserUnavailable("no chromium on PATH, and installing Debian's package needs root and apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise BrowserUnavailable(f"{' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
    path = shutil.which("chromium")
    if not path:
        raise BrowserUnavailable("apt-get installed chromium, but it is not on PATH")
    return path


def _run(chromium: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="lasl-chromium-") as profile:
        argv = [chromium, *_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def dump_dom(chromium: str, url: str, timeout: float = 60.0) -> str:
    """The page's DOM as Chromium serialises it after loading ``url``."""
    done = _run(chromium, ["--dump-dom", url], timeout)
    if done.returncode != 0 or not done.stdout:
        raise RuntimeError(f"chromium --dump-dom {url} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def screenshot(chromium: str, url: str, path: Path, width: int = 1280, height: int = 2200, timeout: float = 60.0) -> Path:
    """A PNG of the page at ``url``, ``width`` × ``height`` CSS pixels."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    done = _run(chromium, [f"--screenshot={path}", f"--window-size={width},{height}", url], timeout)
    if done.returncode != 0 or not path.is_file():
        raise RuntimeError(f"chromium --screenshot {url} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return path
