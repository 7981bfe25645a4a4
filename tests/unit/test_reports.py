"""Report pruning deletes only run folders runner-health made, never through links, and keeps
them by outcome: the newest healthy ones, every other one for keep_days, never past keep_max."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from runner_health import reports
from runner_health.reports import MARKER, create_run_dir, record_outcome

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
# The config's defaults, at a time the test chooses.
prune = partial(reports.prune, keep=50, keep_days=14, keep_max=1000, now=NOW + DAY)


def run_dir(base: Path, finished: datetime, outcome: str | None = "healthy") -> Path:
    """A run folder with a report in it, started a minute before ``finished``; with no
    ``outcome`` the run never recorded one (it was killed)."""
    path = create_run_dir(base, finished - timedelta(minutes=1))
    (path / "report.html").write_text("<html></html>")
    if outcome is not None:
        record_outcome(path, outcome, now=finished)
    return path


def run_dirs(base: Path, count: int, start: datetime = NOW, outcome: str = "healthy") -> list[Path]:
    """``count`` run folders ended one minute apart."""
    return [run_dir(base, start + timedelta(minutes=m), outcome) for m in range(count)]


def names(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir())


def test_keeps_the_newest_and_deletes_the_rest(tmp_path):
    made = run_dirs(tmp_path, 5)
    assert prune(tmp_path, keep=2) == []
    assert sorted(tmp_path.iterdir()) == made[3:]


def test_folders_it_did_not_make_are_left_alone(tmp_path):
    # The --reports-dir case: a user's folder full of other things, some named with digits.
    for name in ("2023-taxes", "2024-photos", "20200101T000000Z"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "keep.txt").write_text("mine")
    (tmp_path / "2025-notes.txt").write_text("mine")
    made = run_dirs(tmp_path, 3)
    prune(tmp_path, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["2023-taxes", "2024-photos", "20200101T000000Z", "2025-notes.txt", made[-1].name]
    )
    assert (tmp_path / "2023-taxes" / "keep.txt").read_text() == "mine"


def test_a_symlink_is_never_entered_or_removed(tmp_path):
    base, victim = tmp_path / "reports", tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("data")
    # Even a marker inside the victim (a copied run folder, a planted file) changes nothing.
    (victim / MARKER).write_text(json.dumps({"made_by": "runner-health", "sequence": 0}))
    base.mkdir()
    (base / "19990101T000000Z").symlink_to(victim)
    made = run_dirs(base, 3)
    assert prune(base, keep=1) == []
    assert (victim / "precious").read_text() == "data"
    assert (base / "19990101T000000Z").is_symlink()
    assert sorted(p for p in base.iterdir() if not p.is_symlink()) == made[-1:]


def test_a_future_dated_folder_never_evicts_the_current_run(tmp_path):
    # A clock skew of a year: that run's folder sorts after every later one by name.
    skewed = run_dirs(tmp_path, 1, start=NOW + timedelta(days=365))[0]
    later = run_dirs(tmp_path, 3)
    prune(tmp_path, keep=2)
    assert not skewed.exists()
    assert sorted(tmp_path.iterdir()) == later[1:]
    assert later[-1].exists()  # the current run


def test_a_folder_with_a_subfolder_is_skipped_with_a_warning(tmp_path):
    odd, *rest = run_dirs(tmp_path, 4)
    (odd / "assets").mkdir()
    warnings = prune(tmp_path, keep=1)
    assert len(warnings) == 1 and odd.name in warnings[0] and "'assets'" in warnings[0]
    assert (odd / MARKER).exists() and (odd / "assets").is_dir()
    assert sorted(tmp_path.iterdir()) == [odd, rest[-1]]


def test_a_vanished_folder_is_skipped_with_a_warning(tmp_path, monkeypatch):
    made = run_dirs(tmp_path, 3)
    real_remove = reports._remove

    def vanishing(base_fd: int, name: str) -> None:
        if name == made[0].name:  # another process removed it after the listing
            for child in made[0].iterdir():
                child.unlink()
            made[0].rmdir()
        real_remove(base_fd, name)

    monkeypatch.setattr(reports, "_remove", vanishing)
    warnings = prune(tmp_path, keep=1)
    assert len(warnings) == 1 and "No such file or directory" in warnings[0]
    assert sorted(tmp_path.iterdir()) == made[-1:]


def test_same_second_runs_get_their_own_folders(tmp_path):
    first, second = create_run_dir(tmp_path, NOW), create_run_dir(tmp_path, NOW)
    assert first != second and first.is_dir() and second.is_dir()
    for path in (first, second):
        record_outcome(path, "healthy", now=NOW)
    prune(tmp_path, keep=1)
    assert list(tmp_path.iterdir()) == [second]


# -- kept by outcome ---------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["unhealthy", "healed", "unknown", None])
def test_a_run_that_was_not_healthy_is_kept_for_keep_days(tmp_path, outcome):
    # None: killed before it recorded an outcome (its start time is all it has).
    old = run_dir(tmp_path, NOW - 15 * DAY, outcome)
    recent = run_dir(tmp_path, NOW - 13 * DAY, outcome)
    healthy = run_dirs(tmp_path, 5, start=NOW - 12 * DAY)
    assert prune(tmp_path, keep=2, now=NOW) == []
    assert names(tmp_path) == sorted([recent.name, healthy[-2].name, healthy[-1].name])
    assert not old.exists()


def test_healthy_runs_beyond_keep_go_whatever_their_age(tmp_path):
    failed = run_dir(tmp_path, NOW - DAY, "unhealthy")
    healthy = run_dirs(tmp_path, 4, start=NOW - timedelta(hours=1))
    prune(tmp_path, keep=3, now=NOW)
    assert names(tmp_path) == sorted([failed.name, *(p.name for p in healthy[1:])])


def test_record_outcome_keeps_the_marker_and_adds_outcome_and_finish(tmp_path):
    path = create_run_dir(tmp_path, NOW)
    before = json.loads((path / MARKER).read_text())
    record_outcome(path, "healed", now=NOW + timedelta(minutes=2))
    after = json.loads((path / MARKER).read_text())
    assert after == {**before, "outcome": "healed", "finished": "2025-06-01T12:02:00+00:00"}
    assert sorted(p.name for p in path.iterdir()) == [MARKER]  # no half-written leftover


def test_record_outcome_never_marks_a_folder_it_did_not_make(tmp_path):
    # A --reports-dir of the user's: a marker would make it prunable.
    (tmp_path / "notes.txt").write_text("mine")
    record_outcome(tmp_path, "healthy", now=NOW)
    assert names(tmp_path) == ["notes.txt"]


def test_keep_max_caps_the_folders_healthy_and_oldest_first(tmp_path):
    failed = run_dirs(tmp_path, 3, start=NOW - 2 * DAY, outcome="unhealthy")
    run_dirs(tmp_path, 3, start=NOW - DAY)  # healthy: the first to go
    current = run_dir(tmp_path, NOW, "unhealthy")
    prune(tmp_path, keep=50, keep_max=4, now=NOW)
    assert names(tmp_path) == sorted([*(p.name for p in failed), current.name])
    prune(tmp_path, keep=50, keep_max=2, now=NOW)
    assert names(tmp_path) == sorted([failed[-1].name, current.name])


def test_the_current_run_is_never_pruned(tmp_path):
    run_dirs(tmp_path, 2, start=NOW - DAY)
    current = run_dir(tmp_path, NOW - 30 * DAY, "unhealthy")  # its clock is a month behind
    prune(tmp_path, keep=1, keep_days=0, keep_max=1, now=NOW)
    assert names(tmp_path) == [current.name]


def test_age_comes_from_the_marker_not_the_folder_name_or_mtime(tmp_path):
    # Named and touched a year ago (a skewed clock when it started), ended yesterday.
    path = create_run_dir(tmp_path, NOW - 365 * DAY)
    record_outcome(path, "unhealthy", now=NOW - DAY)
    year_ago = (NOW - 365 * DAY).timestamp()
    for entry in (path / MARKER, path):
        os.utime(entry, (year_ago, year_ago))
    run_dirs(tmp_path, 3, start=NOW)
    prune(tmp_path, keep=1, now=NOW + timedelta(hours=1))
    assert path.exists()


def test_a_run_whose_clock_ran_behind_is_not_aged_out(tmp_path):
    # A VM that booted before its clock synced: the failing run says 1970. It is no older
    # than the run before it, so it is kept as long as that one.
    earlier = run_dir(tmp_path, NOW - DAY, "unhealthy")
    behind = run_dir(tmp_path, datetime(1970, 1, 1, tzinfo=UTC), "unhealthy")
    run_dirs(tmp_path, 2, start=NOW)
    prune(tmp_path, keep=1, now=NOW + timedelta(hours=1))
    assert earlier.exists() and behind.exists()
    prune(tmp_path, keep=1, now=NOW + 15 * DAY)
    assert not earlier.exists() and not behind.exists()
