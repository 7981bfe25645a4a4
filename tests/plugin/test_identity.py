"""Identity is never rewritten on a guess (issue 11, item 1): the real registration checks and
their fixes, in a throwaway project, against the fake GitHub and a runner directory in the
project. A fake ``sudo`` (logs, exits 1) stands in for every step as the runner user, so
no config.sh ever runs and nothing outside the project changes."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator

import pytest

from tests.scripts.conftest import ROOT, write_fake
from tests.testbed.fake_github import FakeGitHub
from tests.testbed.fake_github.runner_protocol import register_agent

pytest_plugins = ["pytester"]

CONFIG = """
target = "local://"
lock_file = "{lock}"
[github]
repository = "acme/kernel-ci"
api_url = "{api}"
[runner]
name = "{name}"
directory = "{directory}"
labels = {labels}
[remediation]
reconcile_identity = {reconcile}
online_wait_seconds = 1
[reports]
directory = "{reports}"
"""
REGISTERED = "vm1"  # what .runner and GitHub hold
KERNEL = ".".join(os.uname().release.split(".")[:2])  # this machine's X.Y: the local target's


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as github:
        yield github


@pytest.fixture
def project(
    pytester: pytest.Pytester, fake: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """The real registration and online checks and every fix; a runner registered as REGISTERED
    (custom label bpf-lsm) at the fake GitHub and in a runner directory in the project."""
    pytester.makeini("[pytest]\n")
    pytester.makeconftest((ROOT / "conftest.py").read_text())
    (pytester.path / "checks").mkdir()
    for check in ("test_registration.py", "test_online.py"):
        shutil.copy(ROOT / "checks" / check, pytester.path / "checks")
    agent = register_agent(fake, REGISTERED, ["bpf-lsm"])
    runner = pytester.path / "actions-runner"
    runner.mkdir()
    (runner / ".runner").write_text(json.dumps({"agentId": agent["id"], "agentName": REGISTERED}))
    write_fake(runner, "config.sh", "exit 0")
    bin_dir = pytester.path / "fakebin"
    bin_dir.mkdir()
    write_fake(bin_dir, "sudo", "exit 1")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(pytester.path / "fake.log"))
    monkeypatch.setenv("GITHUB_TOKEN", fake.admin_token)
    monkeypatch.delenv("RUNNER_HEALTH_CONFIG", raising=False)
    return pytester


def run(
    project: pytest.Pytester,
    fake: FakeGitHub,
    *args: str,
    checks: str = "checks/test_registration.py",
    name: str = REGISTERED,
    labels: tuple[str, ...] = ("self-hosted", "bpf-lsm"),
    reconcile: bool = False,
) -> tuple[pytest.RunResult, dict[str, dict]]:
    """`pytest <checks>` with this config; the summary's records by check name."""
    (project.path / "runner-health.toml").write_text(
        CONFIG.format(
            lock=project.path / "lock",
            api=fake.url,
            name=name,
            directory=project.path / "actions-runner",
            labels=json.dumps(list(labels)),
            reconcile=str(reconcile).lower(),
            reports=project.path / "reports",
        )
    )
    result = project.runpytest_subprocess(checks, *args)
    (found,) = (project.path / "reports").glob("*/summary.json")
    checks = json.loads(found.read_text())["checks"]
    return result, {c["nodeid"].split("::")[-1]: c for c in checks}


def registration_touched(project: pytest.Pytester, fake: FakeGitHub) -> list[str]:
    """Every sign of a re-registration: a registration token asked for, a step as the runner
    user (config.sh remove, config.sh --replace), a changed .runner."""
    signs = [path for _, path, _ in fake.requests if path.endswith("/registration-token")]
    log = project.path / "fake.log"
    signs += log.read_text().splitlines() if log.exists() else []
    held = json.loads((project.path / "actions-runner" / ".runner").read_text())
    return signs + ([] if held["agentName"] == REGISTERED else [f".runner now {held}"])


def label_posts(fake: FakeGitHub) -> list[str]:
    return [path for method, path, _ in fake.requests if path.endswith("/labels")]


def test_a_typo_in_the_name_is_reported_not_reregistered(project, fake):
    result, records = run(project, fake, name="vm11")
    assert result.ret == 1, result.stdout.str()
    configured = records["test_runner_is_configured"]
    assert "config says 'vm11', this VM is registered as 'vm1'" in configured["failure"]
    for check in ("test_runner_is_configured", "test_runner_known_to_github"):
        assert records[check]["fix_result"] == "refused", records[check]
        assert any(
            "config says 'vm11', this VM is registered as 'vm1': fix runner.name, or set "
            "remediation.reconcile_identity = true" in step
            for step in records[check]["steps"]
        )
    assert registration_touched(project, fake) == []
    assert [r["name"] for r in fake.runners()] == [REGISTERED]


def test_offline_diagnosis_does_not_reregister_a_typo_either(project, fake):
    # GitHub knows no runner of the config's name: diagnose_offline's "registration gone"
    result, records = run(project, fake, checks="checks/test_online.py", name="vm11")
    assert result.ret == 1, result.stdout.str()
    record = records["test_runner_online_at_github"]
    assert record["remediation"] == "diagnose_offline" and record["fix_result"] == "refused"
    assert any("config says 'vm11', this VM is registered as 'vm1'" in s for s in record["steps"])
    assert registration_touched(project, fake) == []


def test_reconcile_identity_reregisters_under_the_configs_name(project, fake):
    result, records = run(project, fake, "--dry-run", name="vm11", reconcile=True)
    assert result.ret == 1, result.stdout.str()
    record = records["test_runner_is_configured"]
    assert record["fix_result"] == "dry run", record
    steps = "\n".join(record["steps"])
    assert "config.sh remove --local" in steps and "--name vm11" in steps
    assert any(p.endswith("/registration-token") for _, p, _ in fake.requests)


def test_a_missing_custom_label_is_added_through_the_api(project, fake):
    before = fake.runner(REGISTERED)
    labels = ("self-hosted", "linux", "bpf-lsm", "gpu", f"kernel-{KERNEL}")
    result, records = run(project, fake, labels=labels)
    assert result.ret == 7, result.stdout.str()
    record = records["test_runner_has_config_labels"]
    assert record["outcome"] == "healed" and record["remediation"] == "sync_labels", record
    assert any(f"add labels gpu, kernel-{KERNEL} to runner 'vm1'" in s for s in record["steps"])
    after = fake.runner(REGISTERED)
    assert after["id"] == before["id"]
    assert {"gpu", f"kernel-{KERNEL}"} <= {label["name"] for label in after["labels"]}
    assert registration_touched(project, fake) == []
    assert len(label_posts(fake)) == 1


@pytest.mark.parametrize(
    ("label", "why"),
    [
        ("arm64", "config wants arm64, GitHub shows this runner as x64: fix runner.labels"),
        ("kernel-1.0", f"config wants kernel-1.0, this VM runs kernel {os.uname().release}"),
    ],
    ids=["read-only", "kernel"],
)
def test_a_label_github_or_the_vm_contradicts_is_refused(project, fake, label, why):
    before = fake.runner(REGISTERED)["labels"]
    result, records = run(project, fake, labels=("self-hosted", "bpf-lsm", "gpu", label))
    assert result.ret == 1, result.stdout.str()
    record = records["test_runner_has_config_labels"]
    assert record["fix_result"] == "refused", record
    assert any(why in step for step in record["steps"]), record["steps"]
    assert fake.runner(REGISTERED)["labels"] == before  # not even gpu: all or nothing
    assert label_posts(fake) == [] and registration_touched(project, fake) == []


def test_a_dry_run_says_which_labels_it_would_add_and_adds_none(project, fake):
    before = fake.runner(REGISTERED)["labels"]
    result, records = run(project, fake, "--dry-run", labels=("bpf-lsm", "gpu"))
    assert result.ret == 1, result.stdout.str()
    record = records["test_runner_has_config_labels"]
    assert record["fix_result"] == "dry run", record
    assert any("would add labels gpu to runner 'vm1'" in step for step in record["steps"])
    assert fake.runner(REGISTERED)["labels"] == before and label_posts(fake) == []
