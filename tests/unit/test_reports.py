"""Report pruning deletes only run folders runner-health made, oldest first, never through links."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runner_health import reports
from runner_health.reports import MARKER, create_run_dir, prune

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def run_dirs(base: Path, count: int, start: datetime = NOW) -> list[Path]:
    """``count`` run folders made one minute apart, each with a report in it."""
    made = []
    for minute in range(count):
        path = create_run_dir(base, start + timedelta(minutes=minute))
        (path / "report.html").write_text("<html></html>")
        made.append(path)
    return made


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
    prune(tmp_path, keep=1)
    assert list(tmp_path.iterdir()) == [second]
