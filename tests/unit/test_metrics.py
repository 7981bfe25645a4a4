"""The Prometheus textfile: valid for promtool (Prometheus' own parser and linter), the right
values for prometheus_client's parser, nothing secret, and replaced whole."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runner_health import metrics, redact
from tests.tools import required

SUMMARY = {
    "finished_at": "2026-11-29T01:46:24+00:00",
    "duration_seconds": 12.5,
    "status": "unhealthy",
    "exit_code": 1,
    "checks": [
        {"name": "test_vm_running", "condition": "vm", "outcome": "passed", "measurements": {}},
        {
            "name": "test_disk_headroom[/]",
            "condition": "disk",
            "outcome": "healed",
            "measurements": {"free_bytes:/": 123456789, "free_inodes:/": 5000, "free_percent:/": 9},
        },
        {
            "name": "test_disk_headroom[/var/lib/docker]",
            "condition": "disk",
            "outcome": "passed",
            "measurements": {"free_bytes:/var/lib/docker": 2e10, "free_inodes:/var/lib/docker": 7},
        },
        {
            "name": "test_clock_matches_github",
            "condition": "clock",
            "outcome": "failed",
            "measurements": {"clock_offset_seconds": -400.5},
        },
        {"name": "test_service", "condition": "service", "outcome": "held"},
        {"name": "test_version", "condition": "version", "outcome": "unknown"},
        {"name": "test_bpf_lsm", "condition": "bpf_lsm", "outcome": "skipped"},
        {
            "name": "test_no_job_queued_too_long",
            "condition": "queue",
            "outcome": "silenced",
            "measurements": {"oldest_queued_minutes": 2.5},
        },
        {
            "name": "test_runner_online",
            "condition": "online",
            "outcome": "passed",
            "measurements": {"runner_online": 1, "runner_busy": 0},
        },
    ],
}
HISTORY = {
    "test_disk_headroom[/]": {"condition": "disk", "time_to_heal_seconds": 300.0},
    "test_service": {"condition": "service", "time_to_heal_seconds": None},
}
COUNTS = {"free_disk": {"done": 3, "failed": 1}, "restart_service": {"refused": 2}}
OUTCOMES = ("passed", "healed", "held", "failed", "unknown", "skipped", "silenced")


def promtool() -> str:
    """promtool's path (see tests/tools.py: skipped or failed without it)."""
    return required(
        "promtool",
        "apt-get install --no-install-recommends prometheus",
        "RUNNER_HEALTH_REQUIRE_PROMTOOL",
    )


def check_with_promtool(path: Path) -> None:
    """promtool parses the file as Prometheus would and lints its names, types and help."""
    done = subprocess.run(
        [promtool(), "check", "metrics"],
        stdin=path.open("rb"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, ""), path.read_text()


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, as prometheus_client's parser reads the file."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def types(path: Path) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(path.read_text())}


@pytest.fixture
def written(tmp_path: Path) -> Path:
    path = tmp_path / "runner_health.prom"
    metrics.write(path, SUMMARY, HISTORY, COUNTS)
    return path


def test_promtool_accepts_the_file(written):
    check_with_promtool(written)


def test_the_run_and_each_measurement_have_their_values(written):
    found = samples(written)
    assert found[("runner_health_last_run_timestamp_seconds", ())] == 1795916784.0
    assert found[("runner_health_last_run_duration_seconds", ())] == 12.5
    assert found[("runner_health_last_run_exit_code", ())] == 1
    assert found[("runner_health_clock_offset_seconds", ())] == -400.5
    assert found[("runner_health_oldest_queued_job_age_seconds", ())] == 150.0
    assert found[("runner_health_runner_online", ())] == 1
    assert found[("runner_health_runner_busy", ())] == 0
    for name, path, value in (
        ("runner_health_disk_free_bytes", "/", 123456789),
        ("runner_health_disk_free_bytes", "/var/lib/docker", 2e10),
        ("runner_health_disk_free_inodes", "/", 5000),
        ("runner_health_disk_free_inodes", "/var/lib/docker", 7),
    ):
        assert found[(name, (("path", path),))] == value
    assert not any("percent" in name for name, _ in found)  # a ratio of the bytes: not needed


def test_each_check_is_up_or_down_and_says_its_outcome(written):
    found = samples(written)
    up = {
        dict(labels)["check"]: value
        for (name, labels), value in found.items()
        if name == "runner_health_check_up"
    }
    assert up == {
        "test_vm_running": 1,
        "test_disk_headroom[/]": 1,  # healed
        "test_disk_headroom[/var/lib/docker]": 1,
        "test_clock_matches_github": 0,
        "test_service": 0,  # held
        "test_version": 0,  # unknown: not known to be healthy
        "test_runner_online": 1,
    }  # skipped and silenced checks have no verdict to alert on
    for check in SUMMARY["checks"]:
        said = {
            dict(labels)["outcome"]: value
            for (name, labels), value in found.items()
            if name == "runner_health_check_outcome" and dict(labels)["check"] == check["name"]
        }
        assert said == {o: int(o == check["outcome"]) for o in OUTCOMES}, check["name"]
    key = (("check", "test_service"), ("condition", "service"), ("outcome", "held"))
    assert found[("runner_health_check_outcome", key)] == 1


def test_remediations_are_a_counter_and_time_to_heal_a_gauge(written):
    found = samples(written)
    counted = {
        labels: value
        for (name, labels), value in found.items()
        if name == "runner_health_remediations_total"
    }
    assert counted == {
        (("remediation", "free_disk"), ("result", "done")): 3,
        (("remediation", "free_disk"), ("result", "failed")): 1,
        (("remediation", "restart_service"), ("result", "refused")): 2,
    }
    assert types(written)["runner_health_remediations"] == "counter"
    healed = {k: v for k, v in found.items() if k[0] == "runner_health_time_to_heal_seconds"}
    assert healed == {
        (
            "runner_health_time_to_heal_seconds",
            (("check", "test_disk_headroom[/]"), ("condition", "disk")),
        ): 300.0
    }


def test_the_file_is_readable_by_node_exporter_and_replaced_whole(written):
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    before = written.stat().st_ino
    metrics.write(written, {}, {}, {})
    assert written.stat().st_ino != before  # a new file renamed into place, not rewritten
    assert [p.name for p in written.parent.iterdir()] == ["runner_health.prom"]
    check_with_promtool(written)  # an empty run is still a valid file


def test_what_a_killed_write_left_is_removed_by_the_next(tmp_path):
    path = tmp_path / "runner_health.prom"
    (tmp_path / ".runner_health.prom.k1ll3d.tmp").write_text("half a fi")
    (tmp_path / "other.prom").write_text("someone else's\n")
    metrics.write(path, SUMMARY, HISTORY, COUNTS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.prom", "runner_health.prom"]


def test_a_link_in_place_of_the_file_is_replaced_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    path = tmp_path / "runner_health.prom"
    path.symlink_to(target)
    metrics.write(path, SUMMARY, HISTORY, COUNTS)
    assert target.read_text() == "precious\n"
    assert not path.is_symlink()


def test_a_missing_folder_is_an_error_for_the_caller_to_report(tmp_path):
    with pytest.raises(FileNotFoundError):
        metrics.write(tmp_path / "missing" / "runner_health.prom", SUMMARY, HISTORY, COUNTS)


def test_untrusted_values_never_break_the_file_or_leak_a_secret(tmp_path):
    redact.register("hook-secret-98765")
    long = "p" * 10_000
    summary = {
        "finished_at": "yesterday",
        "duration_seconds": "12",
        "exit_code": float("nan"),
        "checks": [
            "not a check",
            {"name": 'test_"quoted"\\\n\ud800', "condition": None, "outcome": {"a": 1}},
            {"name": "test_x[https://example.com/hook-secret-98765?t=1]", "outcome": "passed"},
            {"name": "test_x[https://example.com/hook-secret-98765?t=1]", "outcome": "failed"},
            {
                "name": "test_disk",
                "outcome": "passed",
                "measurements": {
                    f"free_bytes:{long}": 1,
                    "free_bytes:/a": "12 GB",
                    "free_inodes:/a": float("inf"),
                    "clock_offset_seconds": None,
                    "runner_online": True,
                    "runner_busy": [1],
                },
            },
        ],
    }
    history = {"x": "garbage", "y": {"time_to_heal_seconds": "5"}, "z": None}
    counts = {"fix": {"done": -1, "failed": "3", "refused": 2}, "other": ["done"]}
    path = tmp_path / "runner_health.prom"

    metrics.write(path, summary, history, counts)

    check_with_promtool(path)
    text = path.read_text()
    assert "hook-secret" not in text
    assert "example.com" not in text
    found = samples(path)
    names = {name for name, _ in found}
    assert "runner_health_last_run_timestamp_seconds" not in names
    assert "runner_health_last_run_duration_seconds" not in names
    assert "runner_health_last_run_exit_code" not in names
    assert "runner_health_clock_offset_seconds" not in names
    assert "runner_health_runner_busy" not in names
    assert "runner_health_time_to_heal_seconds" not in names
    assert found[("runner_health_runner_online", ())] == 1
    assert {dict(k)["result"] for n, k in found if n == "runner_health_remediations_total"} == {
        "refused"
    }
    paths = [dict(k)["path"] for n, k in found if n == "runner_health_disk_free_bytes"]
    assert [len(p) for p in paths] == [metrics.MAX_LABEL]
    checks = [dict(k)["check"] for n, k in found if n == "runner_health_check_up"]
    assert checks == ['test_"quoted"\\\n?', "test_x[***]", "test_disk"]  # each name once
    up = {dict(k)["check"]: v for (n, k), v in found.items() if n == "runner_health_check_up"}
    assert up['test_"quoted"\\\n?'] == 0  # an outcome not runner-health's is unknown
    assert up["test_x[***]"] == 1  # the first of two checks by one name
