"""The user's term file: every good form is read, every bad line names its file and line; the lexicon
merges sources, records the file's hash, and reports a missing source instead of failing."""

from __future__ import annotations

import hashlib

import pytest

from lasl_backend.knowledge import MAX_TERM_CHARS, LexiconError, build_lexicon, read_term_file


def _write(tmp_path, data: bytes | str, name: str = "terms.txt"):
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_reads_terms_frequencies_labels_comments_and_blank_lines(tmp_path):
    path = _write(tmp_path, "# medical terms\n胃癌\n\n奥沙利铂\t12\n  # indented comment\n根治术\t3.5\t手术\n胃镜\t\t影像检查\n   \n")
    assert read_term_file(path) == [("胃癌", 0.0, ""), ("奥沙利铂", 12.0, ""), ("根治术", 3.5, "手术"), ("胃镜", 0.0, "影像检查")]


def test_fields_are_stripped(tmp_path):
    path = _write(tmp_path, " 胃癌 \t 2 \t 疾病 \n")
    assert read_term_file(path) == [("胃癌", 2.0, "疾病")]


def test_bom_and_crlf_are_not_part_of_a_term(tmp_path):
    path = _write(tmp_path, "\ufeff胃癌\t2\r\n奥沙利铂\r\n# note\r\n")
    assert read_term_file(path) == [("胃癌", 2.0, ""), ("奥沙利铂", 0.0, "")]


def test_a_term_of_the_longest_length_is_kept(tmp_path):
    term = "胃" * MAX_TERM_CHARS
    assert read_term_file(_write(tmp_path, term + "\n")) == [(term, 0.0, "")]


@pytest.mark.parametrize(
    ("lines", "line", "words"),
    [
        (["胃癌\tabc"], 1, "not a number"),
        (["胃癌", "奥沙利铂\t-1"], 2, "finite number >= 0"),
        (["胃癌\tnan"], 1, "finite"),
        (["# c", "胃癌\tinf"], 2, "finite"),
        (["胃癌\t-inf"], 1, "finite"),
        (["胃癌\t1\t疾病\textra"], 1, "4 tab-separated fields"),
        (["胃癌", "", "\t5"], 3, "empty term"),
        (["胃" * (MAX_TERM_CHARS + 1)], 1, f"at most {MAX_TERM_CHARS}"),
        (["胃癌", "胃\x01癌"], 2, "control"),
        (["胃癌", "奥\u200b沙利铂"], 2, "control"),  # a zero-width space is a format (C*) character
    ],
)
def test_a_bad_line_names_file_and_line(tmp_path, lines, line, words):
    path = _write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(LexiconError) as info:
        read_term_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert words in message


def test_invalid_utf8_names_its_line(tmp_path):
    path = _write(tmp_path, "胃癌\n奥沙利铂\n".encode() + b"\xff\xfebad\n" + "根治术\n".encode())
    with pytest.raises(LexiconError, match="not UTF-8") as info:
        read_term_file(path)
    assert str(info.value).startswith(f"{path}:3:")


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n  # and another\n", "\ufeff\r\n"])
def test_a_file_without_terms_is_an_error(tmp_path, content):
    path = _write(tmp_path, content)
    with pytest.raises(LexiconError, match="no terms") as info:
        read_term_file(path)
    assert str(info.value).startswith(f"{path}:1:")


def test_a_missing_file_is_a_lexicon_error(tmp_path):
    with pytest.raises(LexiconError, match="cannot read"):
        read_term_file(tmp_path / "absent.txt")


def test_build_lexicon_adds_counts_labels_and_the_file_hash(tmp_path):
    path = _write(tmp_path, "胃癌\t2\t疾病\n奥沙利铂\t1.5\n胃癌\t3\n")
    lexicon, missing = build_lexicon((), path)
    assert missing == []
    assert lexicon.counts == {"胃癌": 5.0, "奥沙利铂": 1.5}  # a repeated term adds up
    assert lexicon.labels == {"胃癌": "疾病"}
    assert "胃癌" in lexicon and len(lexicon) == 2
    assert lexicon.user_file == str(path)
    assert lexicon.user_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert lexicon.sources == []


def test_build_lexicon_reports_an_unknown_or_missing_source_and_goes_on(tmp_path):
    """A source that cannot be read is a note for the caller to warn about, never an exception."""
    path = _write(tmp_path, "胃癌\n")
    lexicon, missing = build_lexicon(("nonexistent", "lac"), path, lac=None)
    assert len(missing) == 2
    assert "'nonexistent'" in missing[0] and "unknown source" in missing[0]
    assert "'lac'" in missing[1]
    assert lexicon.sources == [] and lexicon.counts == {"胃癌": 0.0}


def test_build_lexicon_with_a_bad_file_raises(tmp_path):
    path = _write(tmp_path, "胃癌\tmany\n")
    with pytest.raises(LexiconError, match=r":1: frequency 'many'"):
        build_lexicon((), path)
