"""The workflow's issue logic against the fake GitHub: open once, comment on a new occurrence,
close when the runner is back. One end-to-end run starts from a real `pytest checks` summary."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from runner_health import alert, heartbeat
from runner_health import config as config_module
from runner_health.plugin import CheckRecord
from tests.scripts.conftest import ROOT, run_script
from tests.testbed.fake_github import FakeGitHub
from tests.testbed.fake_github.runner_protocol import register_agent

RUNNER = "assay-bpf-runner"
ONLINE = "checks/test_online.py::test_runner_online_at_github"
KNOWN = "checks/test_registration.py::test_runner_known_to_github"
QUEUE = "checks/test_queue.py::test_no_job_queued_too_long"
LABELS = "checks/test_registration.py::test_runner_has_config_labels"


@pytest.fixture
def fake():
    with FakeGitHub() as server:
        yield server


@pytest.fixture
def config(tmp_path: Path, fake: FakeGitHub) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""lock_file = "{tmp_path}/lock"
state_file = "{tmp_path}/state.json"
[github]
repository = "{fake.owner}/{fake.repo}"
api_url = "{fake.url}"
[runner]
name = "{RUNNER}"
[reports]
directory = "{tmp_path}/reports"
"""
    )
    return path


def summary(tmp_path: Path, *records: CheckRecord, name: str = "summary.json") -> Path:
    """A summary.json in the plugin's shape (its CheckRecord, as pytest_sessionfinish writes)."""
    path = tmp_path / name
    path.write_text(
        json.dumps(
            {
                "finished_at": "2026-01-01T00:00:00+00:00",
                "status": "unhealthy",
                "exit_code": 1,
                "target": "local://",
                "runner": RUNNER,
                "mode": "report-only",
                "checks": [vars(r) for r in records],
            }
        )
    )
    return path


def down(tmp_path: Path, name: str = "down.json") -> Path:
    return summary(
        tmp_path,
        CheckRecord(KNOWN, "registration"),
        CheckRecord(ONLINE, "online", "failed", failure=f"GitHub shows runner '{RUNNER}' offline"),
        CheckRecord(QUEUE, "queue", "failed", failure=f"2 job(s) wait for runner '{RUNNER}':"),
        name=name,
    )


def offline_idle(tmp_path: Path) -> Path:
    return summary(
        tmp_path,
        CheckRecord(KNOWN, "registration"),
        CheckRecord(ONLINE, "online", "failed", failure=f"GitHub shows runner '{RUNNER}' offline"),
        CheckRecord(QUEUE, "queue"),
        name="offline.json",
    )


def back(tmp_path: Path) -> Path:
    return summary(
        tmp_path,
        CheckRecord(KNOWN, "registration"),
        CheckRecord(ONLINE, "online"),
        CheckRecord(QUEUE, "queue"),
        name="back.json",
    )


def run_alert(fake: FakeGitHub, config: Path, *args: str | Path, token: str | None = None):
    """The alert as the workflow runs it: with the workflow's GITHUB_TOKEN (github-actions[bot])."""
    return run_script(
        [sys.executable, "-m", "runner_health.alert", "--config", str(config), *map(str, args)],
        env={"GITHUB_TOKEN": token or fake.actions_token},
    )


def api(fake: FakeGitHub, method: str, path: str, token: str, **kwargs) -> requests.Response:
    """A call to the fake's repository API as the holder of ``token``."""
    return requests.request(
        method,
        f"{fake.url}/repos/{fake.owner}/{fake.repo}{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
        **kwargs,
    )


def comments(fake: FakeGitHub, number: int) -> list[str]:
    """Comment bodies, read through the API as a user would."""
    return [
        c["body"] for c in api(fake, "GET", f"/issues/{number}/comments", fake.admin_token).json()
    ]


def test_open_once_then_no_duplicate(fake, config, tmp_path):
    first = run_alert(fake, config, "--summary", down(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "open issue #1" in first.stdout
    (issue,) = fake.issues()
    assert issue["state"] == "open"
    assert [label["name"] for label in issue["labels"]] == ["runner-health"]
    assert RUNNER in issue["title"]
    assert "offline" in issue["body"] and "2 job(s) wait" in issue["body"]

    # 15 minutes later, same outage: nothing new is posted.
    second = run_alert(fake, config, "--summary", down(tmp_path))
    assert second.returncode == 0, second.stderr
    assert "already reports this outage" in second.stdout
    assert len(fake.issues()) == 1
    assert comments(fake, 1) == []


def test_new_occurrence_gets_one_comment(fake, config, tmp_path):
    assert run_alert(fake, config, "--summary", down(tmp_path)).returncode == 0
    # The queue drains while the runner stays offline: said once, the issue stays open.
    idle = run_alert(fake, config, "--summary", offline_idle(tmp_path))
    assert idle.returncode == 0, idle.stderr
    assert len(comments(fake, 1)) == 1
    assert run_alert(fake, config, "--summary", offline_idle(tmp_path)).returncode == 0
    assert len(comments(fake, 1)) == 1
    # Jobs queue again: a new occurrence, one comment, still one issue.
    again = run_alert(fake, config, "--summary", down(tmp_path))
    assert "comment on #1: New occurrence" in again.stdout
    assert run_alert(fake, config, "--summary", down(tmp_path)).returncode == 0
    bodies = comments(fake, 1)
    assert len(bodies) == 2
    assert bodies[1].startswith("New occurrence")
    assert len(fake.issues()) == 1
    assert fake.issues()[0]["state"] == "open"


def test_close_when_back_and_reopen_as_a_new_issue(fake, config, tmp_path):
    assert run_alert(fake, config, "--summary", down(tmp_path)).returncode == 0
    result = run_alert(fake, config, "--summary", back(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "close #1" in result.stdout
    (issue,) = fake.issues()
    assert issue["state"] == "closed"
    assert "back online" in comments(fake, 1)[-1]
    # Healthy again and again: nothing to post, nothing reopened.
    quiet = run_alert(fake, config, "--summary", back(tmp_path))
    assert "nothing to post" in quiet.stdout
    assert len(comments(fake, 1)) == 1
    # The next outage is a new issue.
    assert run_alert(fake, config, "--summary", down(tmp_path)).returncode == 0
    assert [i["state"] for i in sorted(fake.issues(), key=lambda i: i["number"])] == [
        "closed",
        "open",
    ]


@pytest.mark.parametrize("chatter", [0, 120])
def test_a_marker_in_someone_elses_comment_silences_nothing(chatter, fake, config, tmp_path):
    """A collaborator's comment carrying the alert's own marker (state=down) after the queue
    drained: the next outage is still a new occurrence. Only github-actions[bot]'s words count;
    a MEMBER's author_association makes no difference. With 120 comments before the alert's
    own, its state is on the second page."""
    assert run_alert(fake, config, "--summary", down(tmp_path)).returncode == 0
    someone = fake.add_user("someone", association="MEMBER")
    for _ in range(chatter):
        api(fake, "POST", "/issues/1/comments", someone, json={"body": "+1"})
    assert run_alert(fake, config, "--summary", offline_idle(tmp_path)).returncode == 0
    forged = api(
        fake, "POST", "/issues/1/comments", someone, json={"body": alert.marker(RUNNER, "down")}
    )
    assert forged.json()["user"] == {**forged.json()["user"], "login": "someone", "type": "User"}
    again = run_alert(fake, config, "--summary", down(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "comment on #1: New occurrence" in again.stdout


def test_an_issue_someone_else_opened_is_not_the_alerts(fake, config, tmp_path):
    someone = fake.add_user("someone", association="COLLABORATOR")
    body = f"not an outage\n\n{alert.marker(RUNNER, 'down')}"
    created = api(
        fake,
        "POST",
        "/issues",
        someone,
        json={"title": "x", "body": body, "labels": ["runner-health"]},
    )
    assert created.status_code == 201
    result = run_alert(fake, config, "--summary", down(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "open issue #2" in result.stdout
    (ours,) = [i for i in fake.issues() if i["number"] == 2]
    assert ours["user"]["login"] == "github-actions[bot]" and ours["user"]["type"] == "Bot"


def test_the_trusted_author_is_who_the_token_writes_as(fake, config, tmp_path):
    """With another token (a PAT of runner-health-bot) the alert's own issue would never be
    found again, and every run would open another: the first one says so and fails."""
    mismatch = run_alert(fake, config, "--summary", down(tmp_path), token=fake.admin_token)
    assert mismatch.returncode == 1
    assert "--trusted-author runner-health-bot" in mismatch.stderr
    # Told so, it finds the issue it opened.
    args = ("--summary", down(tmp_path), "--trusted-author", "runner-health-bot")
    fixed = run_alert(fake, config, *args, token=fake.admin_token)
    assert fixed.returncode == 0, fixed.stderr
    assert "#1 already reports this outage" in fixed.stdout
    assert len(fake.issues()) == 1


def test_dry_run_posts_nothing(fake, config, tmp_path):
    result = run_alert(fake, config, "--summary", down(tmp_path), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would open issue" in result.stdout
    assert fake.issues() == []


def test_unknown_state_posts_nothing(fake, config, tmp_path):
    # GitHub was unreachable during the checks: the online check could not observe.
    path = summary(
        tmp_path,
        CheckRecord(ONLINE, "online", "unknown", failure="GitHub API unreachable: GET ..."),
    )
    result = run_alert(fake, config, "--summary", path)
    assert result.returncode == 0, result.stderr
    assert "unknown" in result.stdout
    assert fake.issues() == []


def test_issues_of_another_runner_are_left_alone(fake, config, tmp_path):
    other = summary(
        tmp_path,
        CheckRecord(ONLINE, "online", "failed", failure="GitHub shows runner 'other' offline"),
        CheckRecord(QUEUE, "queue", "failed", failure="1 job(s) wait"),
        name="other.json",
    )
    data = json.loads(other.read_text())
    data["runner"] = "other-runner"
    other.write_text(json.dumps(data))
    assert run_alert(fake, config, "--summary", other).returncode == 0
    assert run_alert(fake, config, "--summary", back(tmp_path)).returncode == 0
    assert [i["state"] for i in fake.issues()] == ["open"]


def test_errors_exit_non_zero_without_leaking_the_token(fake, config, tmp_path):
    missing = run_alert(fake, config, "--summary", tmp_path / "nope.json")
    assert missing.returncode == 1
    assert "cannot read the checks' summary" in missing.stderr
    denied = run_alert(fake, config, "--summary", down(tmp_path), token="ghp_" + "x" * 36)
    assert denied.returncode == 1
    assert "ghp_" not in denied.stdout + denied.stderr
    no_token = run_script(
        [sys.executable, "-m", "runner_health.alert", "--config", str(config), "--help"]
    )
    assert no_token.returncode == 0
    assert "--dry-run" in no_token.stdout


@pytest.mark.parametrize("which", [ONLINE, QUEUE])
def test_a_silenced_online_or_queue_check_never_opens_an_issue(fake, config, tmp_path, which):
    data = json.loads(down(tmp_path).read_text())
    for record in data["checks"]:
        if record["nodeid"] == which:
            record["outcome"] = "silenced"
            record["silence"] = {"reason": "VM moves to a new host", "until": "2026-12-01"}
    path = tmp_path / "silenced.json"
    path.write_text(json.dumps(data))
    result = run_alert(fake, config, "--summary", path)
    assert result.returncode == 0, result.stderr
    assert "silenced: silenced in the config" in result.stdout
    assert "VM moves to a new host" in result.stdout
    assert fake.issues() == []


def beat(config: Path, minutes_ago: float) -> str:
    """The heartbeat variable's value as runner-health on the VM leaves it (every 5 minutes)."""
    when = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    return heartbeat.value({"status": "healthy"}, config_module.load(config), when)


def test_a_stale_heartbeat_opens_the_issue_and_a_fresh_one_closes_it(fake, config, tmp_path):
    """GitHub shows the runner online, but runner-health on it has not reported for 20 minutes
    (3 intervals are 15): the VM, its timer or runner-health is dead. Once it reports again
    and the runner is online, the issue closes."""
    stale = run_alert(fake, config, "--summary", back(tmp_path), "--heartbeat", beat(config, 20))
    assert stale.returncode == 0, stale.stderr
    assert f"runner {RUNNER}: stale: no heartbeat from runner-health on {RUNNER}" in stale.stdout
    assert f"open issue #1: runner-health on {RUNNER} has stopped reporting" in stale.stdout
    (issue,) = fake.issues()
    assert "the VM, its timer or runner-health itself is down" in issue["body"]
    assert "GitHub: GitHub shows the runner online" in issue["body"]
    again = run_alert(fake, config, "--summary", back(tmp_path), "--heartbeat", beat(config, 25))
    assert "#1 already reports this outage" in again.stdout
    fresh = run_alert(fake, config, "--summary", back(tmp_path), "--heartbeat", beat(config, 1))
    assert fresh.returncode == 0, fresh.stderr
    assert "close #1" in fresh.stdout
    assert fake.issues()[0]["state"] == "closed"


def test_down_wins_over_a_stale_heartbeat_and_mentions_it(fake, config, tmp_path):
    result = run_alert(fake, config, "--summary", down(tmp_path), "--heartbeat", beat(config, 60))
    assert result.returncode == 0, result.stderr
    assert "down: the runner is offline at GitHub and jobs are queued" in result.stdout
    (issue,) = fake.issues()
    assert "is offline with queued jobs" in issue["title"]
    assert "- heartbeat: no heartbeat from runner-health" in issue["body"]


def test_a_heartbeat_that_is_not_runner_healths_is_stale(fake, config, tmp_path):
    """Anyone with write access can set the variable: what stale() cannot read alerts too."""
    result = run_alert(fake, config, "--summary", offline_idle(tmp_path), "--heartbeat", "hi")
    assert result.returncode == 0, result.stderr
    assert f"runner {RUNNER}: stale: heartbeat unreadable (not JSON)" in result.stdout
    assert len(fake.issues()) == 1


def test_no_heartbeat_configured_changes_nothing(fake, config, tmp_path):
    result = run_alert(fake, config, "--summary", back(tmp_path), "--heartbeat", "")
    assert result.returncode == 0, result.stderr
    assert "runner assay-bpf-runner: online" in result.stdout
    assert fake.issues() == []


def github_only_run(fake: FakeGitHub, config: Path, reports: Path) -> subprocess.CompletedProcess:
    """pytest checks -m github --no-remediate, as the workflow runs it."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "checks", "-m", "github", "--no-remediate", "-q"),
            *("--config", str(config), "--reports-dir", str(reports), "-p", "no:cacheprovider"),
        ],
        cwd=ROOT,
        env={"GITHUB_TOKEN": fake.admin_token, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_from_a_real_checks_run(fake, config, tmp_path):
    """The runner was never registered and a self-hosted job waits 30 minutes → one issue."""
    fake.queue_job(["self-hosted", "linux", "bpf-lsm"], created_at=time.time() - 1800)
    reports = tmp_path / "reports" / "health"
    checks = github_only_run(fake, config, reports)
    assert checks.returncode == 1, checks.stdout + checks.stderr
    result = run_alert(fake, config, "--reports-dir", reports.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "down: the runner is not registered at GitHub and jobs are queued" in result.stdout
    (issue,) = fake.issues()
    assert "has no runner named" in issue["body"]


def test_assess_needs_both_facts():
    records = [vars(CheckRecord(ONLINE, "online", "failed", failure="offline"))]
    assert alert.assess({"checks": records}).state == alert.UNKNOWN  # queue not read
    records.append(vars(CheckRecord(QUEUE, "queue", "failed", failure="1 job(s) wait")))
    assert alert.assess({"checks": records}).state == alert.DOWN
    assert alert.assess({"checks": []}).state == alert.UNKNOWN


def test_offline_is_seen_whatever_else_is_unhealthy(fake, config, tmp_path):
    """Issue 11 item 2: the runner's labels drift from the config (the registration check
    fails) and it went offline while a job for it has waited 40 minutes: the GitHub-only run
    still reads online/offline and the queue, and the alert opens the issue."""
    register_agent(fake, RUNNER, ["bpf-lsm"])  # registered, no listener: offline
    fake.set_runner_labels(RUNNER, ["bpf-lsm", "kernel-6.6"])  # the config wants kernel-6.8
    fake.queue_job(["self-hosted", "bpf-lsm"], created_at=time.time() - 40 * 60)
    wanted = f'name = "{RUNNER}"\nlabels = ["self-hosted", "bpf-lsm", "kernel-6.8"]\n'
    config.write_text(config.read_text().replace(f'name = "{RUNNER}"\n', wanted))
    reports = tmp_path / "reports" / "health"
    checks = github_only_run(fake, config, reports)
    assert checks.returncode == 1, checks.stdout + checks.stderr
    records = {r["nodeid"]: r for r in json.loads((reports / "summary.json").read_text())["checks"]}
    assert records[LABELS]["outcome"] == "failed" and "kernel-6.8" in records[LABELS]["failure"]
    assert records[ONLINE]["outcome"] == "failed", records[ONLINE]
    assert records[QUEUE]["outcome"] == "failed", records[QUEUE]
    assert records[QUEUE]["measurements"]["oldest_queued_minutes"] >= 40
    result = run_alert(fake, config, "--reports-dir", reports.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "down: the runner is offline at GitHub and jobs are queued" in result.stdout
    (issue,) = fake.issues()
    assert "is offline" in issue["title"] and issue["state"] == "open"


def org_config(tmp_path: Path, fake: FakeGitHub) -> Path:
    path = tmp_path / "org.toml"
    path.write_text(
        f"""lock_file = "{tmp_path}/lock"
state_file = "{tmp_path}/state.json"
[github]
organization = "{fake.owner}"
repositories = ["{fake.owner}/{fake.repo}"]
api_url = "{fake.url}"
[runner]
name = "{RUNNER}"
[reports]
directory = "{tmp_path}/reports"
"""
    )
    return path


def test_an_organisation_runner_offline_with_a_queued_job_opens_the_issue(fake, tmp_path):
    """The organisation's runner is offline; a job in a listed repository has waited 40
    minutes: the queue is read there, and the issue opens in the workflow's repository."""
    register_agent(fake, RUNNER, ["bpf-lsm"], url=f"{fake.url}/{fake.owner}")
    fake.queue_job(["self-hosted", "bpf-lsm"], created_at=time.time() - 40 * 60)
    config = org_config(tmp_path, fake)
    reports = tmp_path / "reports" / "health"
    checks = github_only_run(fake, config, reports)
    assert checks.returncode == 1, checks.stdout + checks.stderr
    records = {r["nodeid"]: r for r in json.loads((reports / "summary.json").read_text())["checks"]}
    assert f"({fake.owner}/{fake.repo} run" in records[QUEUE]["failure_text"]
    result = run_alert(
        fake, config, "--reports-dir", reports.parent, "--repository", f"{fake.owner}/{fake.repo}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "down: the runner is offline at GitHub and jobs are queued" in result.stdout
    (issue,) = fake.issues()
    assert issue["state"] == "open"


def test_an_organisation_runners_alert_needs_the_repository_for_its_issue(fake, tmp_path):
    result = run_alert(fake, org_config(tmp_path, fake), "--summary", down(tmp_path))
    assert result.returncode == 2
    assert "organisation runner: pass --repository OWNER/REPO" in result.stderr
    assert fake.issues() == []


@pytest.mark.parametrize("repository", ["../../orgs/acme", "acme", "acme/ci?x=1", "acme/.."])
def test_a_repository_that_is_not_owner_repo_is_refused(repository, fake, tmp_path):
    result = run_alert(
        fake, org_config(tmp_path, fake), "--summary", down(tmp_path), "--repository", repository
    )
    assert result.returncode == 2
    assert f"--repository: expected OWNER/REPO, got {repository!r}" in result.stderr
    assert fake.issues() == []


WORKFLOW = ROOT / ".github/workflows/runner-health.yml"


def workflow_config(tmp_path: Path, **variables: str) -> Path:
    """The workflow's config step (its Python heredoc) run with these repository variables."""
    text = WORKFLOW.read_text()
    script = text.split(".venv/bin/python - <<'EOF'\n")[1].split("\n          EOF\n")[0]
    env = {
        "REPOSITORY": "acme/kernel-ci",
        "ORGANIZATION": "",
        "REPOSITORIES": "acme/kernel-ci",
        "RUNNER_NAME": RUNNER,
        "RUNNER_LABELS": "self-hosted",
        "API_URL": "https://api.github.com",
        "SERVER_URL": "https://github.com",
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=tmp_path,
        env={**env, **variables},
        check=True,
    )
    return tmp_path / "runner-health.toml"


def test_the_workflow_configures_an_organisation_runner(tmp_path):
    org = config_module.load(
        workflow_config(tmp_path, ORGANIZATION="acme", REPOSITORIES="acme/a, acme/b")
    )
    assert (org.github.organization, org.github.repository) == ("acme", None)
    assert org.github.repositories == ("acme/a", "acme/b")
    repo = config_module.load(workflow_config(tmp_path))
    assert (repo.github.repository, repo.github.repositories) == ("acme/kernel-ci", ())
    text = WORKFLOW.read_text()
    assert "pytest checks -m github --no-remediate" in text  # what github_only_run runs
    assert '--repository "$GITHUB_REPOSITORY"' in text  # the issue goes to this repository
