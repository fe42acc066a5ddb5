"""Finding a headless Chromium: a binary on PATH is returned, none without install raises, and a non-root
user is told installing needs root and apt-get without anything being run; a real Chromium, where there
is one, renders a local page's DOM."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lasl_backend.devtools import browser
from lasl_backend.devtools.browser import BrowserUnavailable, dump_dom, find_chromium


def _no_subprocess(*args: Any, **kwargs: Any) -> Any:
    pytest.fail(f"subprocess.run called: {args!r}")


@pytest.fixture()
def nothing_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """No binary at all on PATH (no chromium, no apt-get), and no subprocess allowed."""
    monkeypatch.setattr(browser.shutil, "which", lambda name, *a, **kw: None)
    monkeypatch.setattr(browser.subprocess, "run", _no_subprocess)


def test_no_chromium_without_install_raises(nothing_on_path: None) -> None:
    """With nothing on PATH and install=False, BrowserUnavailable says there is no chromium."""
    with pytest.raises(BrowserUnavailable, match="no chromium on PATH"):
        find_chromium(install=False)


def test_a_non_root_user_is_told_why_and_nothing_runs(nothing_on_path: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a non-root user, install=True raises naming root and apt-get, running no command."""
    monkeypatch.setattr(browser.os, "geteuid", lambda: 1000)
    with pytest.raises(BrowserUnavailable) as exc:
        find_chromium(install=True)
    assert "root" in str(exc.value) and "apt-get" in str(exc.value)


def test_root_without_apt_get_is_told_why(nothing_on_path: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root but with no apt-get on PATH, install=True raises the same way, running no command."""
    monkeypatch.setattr(browser.os, "geteuid", lambda: 0)
    with pytest.raises(BrowserUnavailable, match="apt-get"):
        find_chromium(install=True)


@pytest.mark.parametrize("name", ["chromium", "chromium-browser", "google-chrome"])
def test_a_binary_on_path_is_returned(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Whichever of the known names PATH has, its path is returned without installing anything."""
    fake = f"/opt/test-bin/{name}"
    monkeypatch.setattr(browser.shutil, "which", lambda n, *a, **kw: fake if n == name else None)
    monkeypatch.setattr(browser.subprocess, "run", _no_subprocess)
    assert find_chromium(install=False) == fake
    assert find_chromium(install=True) == fake


@pytest.mark.slow
def test_dump_dom_of_a_local_page(tmp_path: Path) -> None:
    """A real Chromium's DOM of a file:// page holds the element the page's script added."""
    real = shutil.which("chromium")
    if real is None:
        pytest.skip("no chromium on PATH")
    page = tmp_path / "page.html"
    page.write_text("<!doctype html><html><body><p id='static'>静态</p><script>"
                    "const d = document.createElement('div'); d.id = 'added-by-script'; d.textContent = '脚本';"
                    "document.body.appendChild(d);</script></body></html>", encoding="utf-8")
    dom = dump_dom(real, page.as_uri(), timeout=60.0)
    assert '<p id="static">静态</p>' in dom
    assert '<div id="added-by-script">脚本</div>' in dom
