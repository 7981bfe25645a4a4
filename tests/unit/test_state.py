"""The state store: atomic and safe on disk, budget and holds, events on changes only."""

# ruff: noqa: RUF001  (the multiplication sign in "tried 3 times" is the product's)

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from runner_health import atomic, lock, state
from runner_health.state import Store

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
SETTINGS = SimpleNamespace(remediation=SimpleNamespace(max_attempts=3, window_minutes=60))


def summary(outcome: str, *, name: str = "test_free_space", fix_result: str | None = None) -> dict:
    return {
        "checks": [
            {
                "name": name,
                "condition": "disk",
                "outcome": outcome,
                "remediation": "free_disk",
                "fix_result": fix_result,
                "failure": "only 1 MiB free on /",
                "duration_seconds": 4.5,
            }
        ]
    }


@pytest.fixture
def path(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    return folder / "state.json"


def saved_store(path: Path) -> Store:
    store, warnings = Store.open(path)
    assert warnings == []
    store.record_attempt("free_disk", "failed", NOW)
    store.record_run(summary("failed"), NOW, SETTINGS)
    store.etags["https://api.github.com/x"] = {"etag": '"1"', "body": [], "next": None}
    store.save()
    return store


def test_a_missing_file_is_an_empty_store_and_save_makes_folder_and_file_private(tmp_path):
    path = tmp_path / "new" / "deeper" / "state.json"
    store, warnings = Store.open(path)
    assert (warnings, store.history(), store.remediation_counts()) == ([], {}, {})
    store.save()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert json.loads(path.read_text())["schema"] == state.SCHEMA


def test_what_is_saved_is_read_back(path):
    saved_store(path)
    again, warnings = Store.open(path)
    assert warnings == []
    assert again.history()["test_free_space"]["outcome"] == "failed"
    assert again.history()["test_free_space"]["attempts"] == 1
    assert again.remediation_counts() == {"free_disk": {"failed": 1}}
    assert "https://api.github.com/x" in again.etags


def test_the_last_run_start_is_remembered_for_checks_that_read_events_since_then(path):
    store, _ = Store.open(path)
    assert store.last_run_at is None  # a first run
    started = NOW - timedelta(seconds=40)
    store.record_run({**summary("passed"), "started_at": started.isoformat()}, NOW, SETTINGS)
    store.save()
    assert Store.open(path)[0].last_run_at == started


def test_a_crash_between_write_and_rename_leaves_the_old_file_whole(path, monkeypatch):
    saved_store(path)
    before = path.read_bytes()
    store, _ = Store.open(path)
    store.record_attempt("free_disk", "done", NOW)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what a signal does between the write and the rename

    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        store.save()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]


def test_a_temp_file_left_by_a_killed_run_is_removed_by_the_next_save(path):
    saved_store(path)
    (path.parent / ".state.json.abc123.tmp").write_text('{"half": ')
    Store.open(path)[0].save()
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]
    assert Store.open(path)[1] == []


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"schema": "runner-health-state", "version": 1, "checks": {', "corrupt"),
        (b"\xff\xfe not even text", "corrupt"),
        (b'{"schema": "something-else", "version": 1}', "not runner-health's"),
        (b'{"schema": "runner-health-state", "version": 99}', "schema version 99"),
        (b"[" * 100_000 + b"]" * 100_000, "corrupt"),
        (
            b'{"schema": "runner-health-state", "version": 1, "fixes": '
            b'{"free_disk": {"attempts": ["yesterday"], "last_result": "failed"}}}',
            "corrupt",
        ),
    ],
)
def test_a_corrupt_or_foreign_file_is_kept_aside_and_the_store_starts_afresh(path, content, why):
    path.write_bytes(content)
    store, warnings = Store.open(path)
    assert store.history() == {} and store.fixes == {}
    assert len(warnings) == 1 and why in warnings[0] and "started afresh" in warnings[0]
    assert "kept as state.json.corrupt" in warnings[0]
    assert (path.parent / "state.json.corrupt").read_bytes() == content
    store.save()
    assert Store.open(path)[1] == []


def test_a_huge_file_is_not_read(path, monkeypatch):
    monkeypatch.setattr(state, "MAX_BYTES", 1000)
    path.write_bytes(b" " * 2000)
    _, warnings = Store.open(path)
    assert "larger than" in warnings[0] and "started afresh" in warnings[0]
    assert (path.parent / "state.json.corrupt").stat().st_size == 2000


def test_a_symlink_is_never_followed_when_reading_or_replacing(path, tmp_path):
    target = tmp_path / "elsewhere.json"
    saved_store(tmp_path / "own" / "state.json")
    target.write_bytes((tmp_path / "own" / "state.json").read_bytes())
    path.symlink_to(target)
    store, warnings = Store.open(path)
    assert "symbolic link" in warnings[0] and "kept as state.json.corrupt" in warnings[0]
    assert store.fixes == {}  # what the link pointed to was not read
    assert (path.parent / "state.json.corrupt").is_symlink()
    store.save()
    assert not path.is_symlink()
    assert target.read_bytes() == (tmp_path / "own" / "state.json").read_bytes()  # untouched


def test_a_fifo_or_hard_link_is_not_ours(path, tmp_path):
    os.mkfifo(path)
    assert "not a plain file" in Store.open(path)[1][0]  # and it did not hang
    (path.parent / "state.json.corrupt").unlink()
    saved_store(path)
    os.link(path, tmp_path / "other-name")
    assert "2 names" in Store.open(path)[1][0]


def test_a_file_of_another_user_is_not_ours(path):
    path.write_text(json.dumps({"schema": state.SCHEMA, "version": 1}))
    os.chown(path, 65534, 65534)
    assert "belongs to uid 65534" in Store.open(path)[1][0]


def test_a_folder_others_can_write_is_refused(path):
    os.chmod(path.parent, 0o777)
    store, warnings = Store.open(path)
    assert "writable by other users" in warnings[0]
    with pytest.raises(state.StateError):
        store.save()
    assert not path.exists()


def test_a_fix_is_held_after_its_budget_until_the_window_passes():
    store = Store(Path("unused"))
    for minutes in (0, 10, 20):
        assert store.hold_reason("free_disk", NOW + timedelta(minutes=minutes), 3, 60) is None
        store.record_attempt("free_disk", "failed", NOW + timedelta(minutes=minutes))
    held = store.hold_reason("free_disk", NOW + timedelta(minutes=25), 3, 60)
    assert held == "held: tried 3× in 60 min, last result failed"
    assert store.hold_reason("free_disk", NOW + timedelta(minutes=61), 3, 60) is None
    assert store.hold_reason("other_fix", NOW + timedelta(minutes=25), 3, 60) is None


def test_reset_lifts_every_hold_and_says_which(path):
    store = Store(path)
    for _ in range(3):
        store.record_attempt("free_disk", "refused", NOW)
    assert store.reset_holds() == ["free_disk"]
    assert store.hold_reason("free_disk", NOW, 3, 60) is None
    assert store.remediation_counts() == {"free_disk": {"refused": 3}}  # cumulative, kept


def test_attempts_and_heals_are_pruned_to_the_window():
    store = Store(Path("unused"))
    store.record_attempt("free_disk", "done", NOW - timedelta(minutes=90))
    store.record_attempt("free_disk", "done", NOW - timedelta(minutes=30))
    store.record_run(summary("healed", fix_result="done"), NOW - timedelta(minutes=90), SETTINGS)
    store.record_run(summary("healed", fix_result="done"), NOW, SETTINGS)
    history = store.history()["test_free_space"]
    assert (history["attempts"], history["heals"], history["last_result"]) == (1, 1, "done")
    assert history["time_to_heal_seconds"] == 4.5  # healed within the run: the check's time


def test_the_same_failing_summary_three_times_is_one_unhealthy_event():
    store = Store(Path("unused"))
    kinds = [
        [
            e.kind
            for e in store.record_run(summary("failed"), NOW + timedelta(minutes=5 * i), SETTINGS)
        ]
        for i in range(3)
    ]
    assert kinds == [["unhealthy"], [], []]
    assert store.history()["test_free_space"]["first_failure"] == NOW.isoformat()


def test_held_once_per_hold_then_recovered_with_time_to_heal():
    store = Store(Path("unused"))
    held = summary("held", fix_result="not run: held: tried 3× in 60 min, last result failed")
    events = store.record_run(summary("failed"), NOW, SETTINGS)
    events += store.record_run(held, NOW + timedelta(minutes=5), SETTINGS)
    events += store.record_run(summary("unknown"), NOW + timedelta(minutes=7), SETTINGS)
    events += store.record_run(held, NOW + timedelta(minutes=10), SETTINGS)
    events += store.record_run(summary("passed"), NOW + timedelta(minutes=15), SETTINGS)
    assert [e.kind for e in events] == ["unhealthy", "held", "recovered"]
    assert events[1].text == (
        "test_free_space (disk): held: tried 3× in 60 min, last result failed"
    )
    assert events[2].at == (NOW + timedelta(minutes=15)).isoformat()
    history = store.history()["test_free_space"]
    assert history["time_to_heal_seconds"] == 15 * 60 and history["first_failure"] is None


def test_unknown_and_silenced_runs_do_not_end_or_start_a_spell():
    store = Store(Path("unused"))
    kinds = [
        e.kind
        for i, outcome in enumerate(["failed", "unknown", "failed", "silenced", "failed", "passed"])
        for e in store.record_run(summary(outcome), NOW + timedelta(minutes=i), SETTINGS)
    ]
    assert kinds == ["unhealthy", "recovered"]


def test_flapping_alerts_once_per_window():
    store = Store(Path("unused"))
    kinds = []
    for i in range(8):  # broke and healed within each run, every 5 minutes
        at = NOW + timedelta(minutes=5 * i)
        kinds += [e.kind for e in store.record_run(summary("healed"), at, SETTINGS)]
    assert kinds == ["flapping"]
    later = NOW + timedelta(minutes=5 * 7 + 61)
    assert [e.kind for e in store.record_run(summary("healed"), later, SETTINGS)] == []
    store.record_run(summary("healed"), later + timedelta(minutes=1), SETTINGS)
    events = store.record_run(summary("healed"), later + timedelta(minutes=2), SETTINGS)
    assert [e.kind for e in events] == ["flapping"]
    assert "broke and healed 3× in 60 min" in events[0].text


def test_event_text_is_scrubbed_and_one_line():
    from runner_health import redact

    redact.register("hooks-secret-abcdef123456")
    check = summary("failed")
    check["checks"][0]["failure"] = "bad\nthing hooks-secret-abcdef123456"
    (event,) = Store(Path("unused")).record_run(check, NOW, SETTINGS)
    assert "\n" not in event.text and "hooks-secret" not in event.text


def test_reset_and_show_on_the_command_line(tmp_path, path, capsys):
    config = tmp_path / "runner-health.toml"
    config.write_text(
        f'state_file = "{path}"\nlock_file = "{tmp_path}/lock"\n'
        '[github]\nrepository = "acme/ci"\n[runner]\nname = "vm1"\n'
    )
    saved_store(path)  # its attempt is at NOW, a fixed time: the hold must not depend on it
    for _ in range(3):
        store, _ = Store.open(path)
        store.record_attempt("free_disk", "failed", datetime.now(timezone.utc))
        store.save()
    assert state.main(["--show", "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    assert "test_free_space" in shown and "failed" in shown and "attempts" in shown
    running = lock.take(tmp_path / "lock", stale_after=60)  # a run in progress
    assert state.main(["--reset", "--config", str(config)]) == 6
    assert "another runner-health run is in progress" in capsys.readouterr().err
    running.close()
    assert Store.open(path)[0].hold_reason("free_disk", datetime.now(timezone.utc), 3, 60)
    assert state.main(["--reset", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "cleared the attempts of: free_disk\n"
    assert Store.open(path)[0].hold_reason("free_disk", datetime.now(timezone.utc), 3, 60) is None
    assert state.main(["--reset", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "nothing was held\n"
