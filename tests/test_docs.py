"""The documents hold together: links and images resolve inside the repository, anchors name real
headings, nothing cites documents a clone does not contain or the project's history, and the README
stays a short front door that shows the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: where the history and outside-document checks look (docs/results/ holds measured records, kept
#: byte for byte as they were written, so it is left out)
SCANNED = ["lasl_backend", "tests", "docs", "README.md", "Makefile", "docker", ".ci"]
RECORDS = ROOT / "docs" / "results"
HISTORY = re.compile(r"\b(session|issue) [0-9]", re.IGNORECASE)
# built from parts, so that this file does not match itself
OUTSIDE_DOCS = re.compile("|".join(re.escape(name + ".md") for name in ("METHOD", "PROTOCOL")))

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_MD_LINK_TEXT = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((n, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link markup reduced to its text, lower case, punctuation other
    than '-' and '_' dropped, spaces to hyphens."""
    text = _MD_LINK_TEXT.sub(r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub gives the headings of ``path`` (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in _prose_lines(path.read_text(encoding="utf-8")):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        k = seen.get(base, 0)
        seen[base] = k + 1
        out.add(base if k == 0 else f"{base}-{k}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link and image outside code."""
    out = []
    for n, line in _prose_lines(path.read_text(encoding="utf-8")):
        for m in _LINK.finditer(_INLINE_CODE.sub("", line)):
            out.append((n, m.group(1)))
    return out


def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target))


def test_the_link_parser_sees_links_images_and_anchors(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text(
        "# Speed and the loss net's size\n## `R1`: swapped [names](x.md)\n## R1\n"
        "See [b](b.md#part), ![img](pic.png) and `[not](a/link.md)`.\n```\n[nor](this.md)\n```\n",
        encoding="utf-8",
    )
    assert anchors(doc) == {"speed-and-the-loss-nets-size", "r1-swapped-names", "r1"}
    assert links(doc) == [(2, "x.md"), (4, "b.md#part"), (4, "pic.png")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves_inside_the_repository(doc: Path) -> None:
    problems = []
    for line, target in links(doc):
        if _is_external(target):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (doc.parent / path_part).resolve() if path_part else doc
        where = f"{doc.relative_to(ROOT)}:{line}: {target}"
        if ROOT != dest and ROOT not in dest.parents:
            problems.append(f"{where} points outside the repository")
            continue
        if not dest.exists():
            problems.append(f"{where} does not exist")
            continue
        if anchor:
            if dest.suffix != ".md":
                problems.append(f"{where} has an anchor into a file that is not Markdown")
            elif anchor not in anchors(dest):
                problems.append(f"{where}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    assert not problems, "\n".join(problems)


def _scanned_files() -> list[Path]:
    files = []
    for name in SCANNED:
        p = ROOT / name
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files += [f for f in sorted(p.rglob("*")) if f.is_file() and "__pycache__" not in f.parts and RECORDS not in f.parents]
    return files


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None  # compiled kernels, images
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_no_file_mentions_the_history_or_documents_outside_the_repository() -> None:
    hits = []
    for f in _scanned_files():
        text = _text(f)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for pattern in (HISTORY, OUTSIDE_DOCS):
                m = pattern.search(line)
                if m:
                    hits.append(f"{f.relative_to(ROOT)}:{n}: {m.group(0)!r}")
    assert not hits, "history or outside documents cited:\n" + "\n".join(hits)


def test_the_history_patterns_catch_what_they_are_for() -> None:
    # built from parts, like OUTSIDE_DOCS, so that this file passes its own scan
    assert HISTORY.search("measured in Sess" + "ion 7") and HISTORY.search("see iss" + "ue 4")
    assert not HISTORY.search("one session of the device") and not HISTORY.search("issues 1")
    assert OUTSIDE_DOCS.search("METHOD" + ".md gap 3") and OUTSIDE_DOCS.search("PROTOCOL" + ".md §9")
    assert not OUTSIDE_DOCS.search("docs/method.md, R3")


def test_the_readme_is_a_short_front_door_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 300
    fenced, commands = False, set()
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif fenced:
            commands.add(line.split("#")[0].strip())
    assert {"make serve", "make test"} <= commands, "the README must show `make serve` and `make test` as commands"
