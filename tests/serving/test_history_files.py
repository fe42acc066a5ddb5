"""A project's history files when someone else has written them: an unreadable file is read as empty and
kept aside on the next append (never overwritten), and entries of the wrong shape or type never reach the
rule as numbers, so /dashboard and /metrics answer 200 rather than 500."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lasl_backend.ner import NerModel
from lasl_backend.serving.history import ProjectHistory
from lasl_backend.serving.stop_signal import recommendation, version_signal
from lasl_backend.stopping import NOT_ENOUGH_DATA, StopRule, VersionSignal

from tests.fake_label_studio import FakeLabelStudio
from tests.serving.test_dashboard_route import add_project, client, fake, fixture_model, page, parse_page, train  # noqa: F401

HOSTILE_ENTRIES = [
    {"n_labeled": "abc", "kappa": "x", "f1_held_out": [1], "n_held_out": {"a": 1}, "per_label": "no", "label_counts": [1, 2]},
    {"n_labeled": 1e308, "kappa": 2.5, "f1_held_out": -0.5},
    {"n_labeled": -3},
    {"n_labeled": 12.5},
    {"n_labeled": True},
    {"n_labeled": None},
    "a string",
    7,
]


@pytest.mark.parametrize("content", ["{not json", "\x00\x01", '{"a": 1}', "42"])
def test_an_unreadable_list_is_empty_and_set_aside_on_append(tmp_path: Path, content: str) -> None:
    h = ProjectHistory(tmp_path)
    (tmp_path / "signal.json").write_text(content)
    assert h.signals() == []
    h.append_signal({"n_labeled": 10})
    assert h.signals() == [{"n_labeled": 10}]
    aside = list(tmp_path.glob("signal.json.unreadable-*"))
    assert len(aside) == 1 and aside[0].read_text() == content


def test_a_readable_list_is_appended_to_in_place(tmp_path: Path) -> None:
    h = ProjectHistory(tmp_path)
    (tmp_path / "runs.json").write_text(json.dumps([{"status": "ok"}, "junk", 3]))
    assert h.runs() == [{"status": "ok"}]
    h.append_run({"status": "failed"})
    assert h.runs() == [{"status": "ok"}, {"status": "failed"}]
    assert not list(tmp_path.glob("*.unreadable-*"))


@pytest.mark.parametrize("entry", HOSTILE_ENTRIES[2:])
def test_entries_without_a_usable_count_are_skipped(entry: object) -> None:
    assert version_signal(entry) is None


def test_out_of_range_or_non_numeric_values_read_as_missing() -> None:
    assert version_signal({"n_labeled": "40", "kappa": "x", "f1_held_out": [1], "n_held_out": {"a": 1}}) == \
        VersionSignal(n_labeled=40, heldout_f1=None, heldout_records=0, kappa=None)
    assert version_signal({"n_labeled": 40.0, "kappa": 2.5, "f1_held_out": -0.5, "n_held_out": -2}) == \
        VersionSignal(n_labeled=40, heldout_f1=None, heldout_records=0, kappa=None)
    v = version_signal({"n_labeled": 40, "kappa": -0.2, "f1_held_out": 0.7, "n_held_out": 9})
    assert v == VersionSignal(n_labeled=40, heldout_f1=0.7, heldout_records=9, kappa=-0.2)


def test_the_rule_over_hostile_entries_is_not_enough_data() -> None:
    rec = recommendation(HOSTILE_ENTRIES, StopRule())
    assert rec.state == NOT_ENOUGH_DATA and not any(math.isnan(g) for g in rec.expected_gain.values())


def test_hostile_history_files_never_break_the_page_or_metrics(tmp_path: Path, fake: FakeLabelStudio,  # noqa: F811
                                                               fixture_model: NerModel) -> None:  # noqa: F811
    add_project(fake, 1, 12)
    c = client(tmp_path, fake, fixture_model)
    train(c, 1)
    project = tmp_path / "projects" / "1"
    signals = json.loads((project / "signal.json").read_text())
    (project / "signal.json").write_text(json.dumps(signals + HOSTILE_ENTRIES))
    (project / "runs.json").write_text(json.dumps([{"duration_s": "x", "steps": [1], "started": 5, "status": None,
                                                    "retries": "q", "error": {"a": 1}, "version": ["v"]}]))
    code, html = page(c, "?project=1")
    assert code == 200
    parse_page(html)
    r = c.get("/metrics")
    assert r.status_code == 200
    assert r.get_json()["projects"]["1"]["stopping"]["recommendation"]["state"] == NOT_ENOUGH_DATA
    (project / "signal.json").write_text("{truncated")
    (project / "runs.json").write_text("[{")
    assert page(c, "?project=1")[0] == 200 and c.get("/metrics").status_code == 200
    train(c, 1)  # the next run starts new lists and keeps the unreadable ones beside them
    assert len(ProjectHistory(project).signals()) == 1
    assert len(list(project.glob("signal.json.unreadable-*"))) == 1 and len(list(project.glob("runs.json.unreadable-*"))) == 1
