"""The GitHub issue channel from the VM side (``[alerts] github_issue``) against the fake
GitHub: one issue per runner, a comment per new occurrence, closed when a recovery leaves
nothing failed or held; the workflow's logic (``alert.post``), with the token's user as the
trusted author."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from runner_health import alert, notify
from runner_health import config as config_module
from runner_health.github import GitHub
from runner_health.state import Event
from tests.testbed.fake_github import FakeGitHub

RUNNER = "assay-bpf-runner"
AT = "2026-11-29T01:00:00+00:00"
DISK = "test_disk_has_space[/]"
UNHEALTHY = Event("unhealthy", DISK, "disk", f"{DISK} (disk): unhealthy: 12 MiB free on /", AT)
HELD = Event("held", DISK, "disk", f"{DISK} (disk): held: tried 3 times in 60 min", AT)
RECOVERED = Event("recovered", DISK, "disk", f"{DISK} (disk): recovered (passed)", AT)
CLOCK = Event("unhealthy", "test_clock_in_sync", "clock", "clock: unhealthy: 42 s off", AT)


def summary(*failing: str) -> dict:
    """A run's summary.json: the checks named ``failing`` failed, the disk check passed."""
    checks = [{"name": name, "outcome": "failed"} for name in failing]
    status = "unhealthy" if failing else "healthy"
    return {
        "runner": RUNNER,
        "status": status,
        "finished_at": AT,
        "checks": [*checks, {"name": DISK, "outcome": "passed"}],
    }


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


def settings_for(tmp_path: Path, fake: FakeGitHub, extra: str = "", token: str | None = None):
    path = tmp_path / "runner-health.toml"
    path.write_text(
        f'[github]\nrepository = "{fake.owner}/{fake.repo}"\napi_url = "{fake.url}"\n'
        f'[runner]\nname = "{RUNNER}"\n[alerts]\ngithub_issue = true\n{extra}'
    )
    return replace(config_module.load(path), token=token or fake.admin_token)


def send(settings, events: list[Event], run: dict | None = None) -> list[str]:
    github = GitHub(settings.github, settings.token)
    return notify.send(events, run or summary(DISK), settings, github)


def comments(fake: FakeGitHub, number: int) -> list[dict]:
    reply = requests.get(
        f"{fake.url}/repos/{fake.owner}/{fake.repo}/issues/{number}/comments",
        headers={"Authorization": f"Bearer {fake.admin_token}"},
        timeout=5,
    )
    return reply.json()


def test_open_comment_repeat_nothing_recover_close(tmp_path, fake):
    """unhealthy opens; held comments; held again says nothing; a recovery that leaves
    another check failing is noted; the one that leaves nothing failing closes."""
    settings = settings_for(tmp_path, fake)  # the author: GET /user's login
    assert send(settings, [UNHEALTHY]) == [
        f"alert: GitHub issue: open issue #1: runner-health on {RUNNER}: disk unhealthy"
    ]
    (issue,) = fake.issues()
    assert issue["user"]["login"] == "runner-health-bot"
    assert [label["name"] for label in issue["labels"]] == ["runner-health"]
    assert "12 MiB free on /" in issue["body"] and "--reset" in issue["body"]
    assert alert.marker(RUNNER, "unhealthy-disk") in issue["body"]

    assert send(settings, [HELD]) == [
        "alert: GitHub issue: comment on #1: New occurrence: "
        f"**runner-health on {RUNNER}: unhealthy** ({AT})."
    ]
    assert send(settings, [HELD]) == [
        "alert: GitHub issue: nothing to post: #1 already reports this outage"
    ]
    assert len(comments(fake, 1)) == 1

    still = summary("test_clock_in_sync")
    (noted,) = send(settings, [RECOVERED], still)
    assert "comment on #1: Recovered" in noted and "still failing or held: test_clock" in noted
    assert fake.issues()[0]["state"] == "open"

    (closed,) = send(settings, [RECOVERED], summary())
    assert closed.endswith("; close #1"), closed
    assert fake.issues()[0]["state"] == "closed"
    assert "healthy again" in comments(fake, 1)[-1]["body"]
    # The next alert is a new issue.
    send(settings, [UNHEALTHY])
    assert [i["state"] for i in sorted(fake.issues(), key=lambda i: i["number"])] == [
        "closed",
        "open",
    ]


def test_a_recovery_without_an_open_issue_posts_nothing(tmp_path, fake):
    assert send(settings_for(tmp_path, fake), [RECOVERED], summary()) == [
        "alert: GitHub issue: nothing to post"
    ]
    assert fake.issues() == []


def test_the_events_of_one_run_are_one_post(tmp_path, fake):
    settings = settings_for(tmp_path, fake)
    (line,) = send(settings, [HELD, CLOCK], summary("test_clock_in_sync"))
    assert "disk held (and 1 more)" in line
    (issue,) = fake.issues()
    assert alert.marker(RUNNER, "held-disk,unhealthy-clock") in issue["body"]
    assert "clock: unhealthy: 42 s off" in issue["body"]


def test_a_marker_in_someone_elses_comment_is_ignored(tmp_path, fake):
    """A collaborator pastes the marker of the next event: that event is still posted."""
    settings = settings_for(tmp_path, fake, 'issue_author = "runner-health-bot"\n')
    send(settings, [UNHEALTHY])
    someone = fake.add_user("someone", association="MEMBER")
    forged = requests.post(
        f"{fake.url}/repos/{fake.owner}/{fake.repo}/issues/1/comments",
        headers={"Authorization": f"Bearer {someone}"},
        json={"body": alert.marker(RUNNER, "held-disk")},
        timeout=5,
    )
    assert forged.status_code == 201
    (line,) = send(settings, [HELD])
    assert "comment on #1: New occurrence" in line


def test_the_workflows_issue_is_not_the_vms(tmp_path, fake):
    """github-actions[bot]'s issue for the same runner and label belongs to the workflow."""
    workflow = GitHub(settings_for(tmp_path, fake).github, fake.actions_token)
    down = alert.Post(alert.DOWN, alert.OPEN, "offline with queued jobs", "offline")
    alert.post(workflow, down, runner=RUNNER, label="runner-health", author="github-actions[bot]")
    send(settings_for(tmp_path, fake), [UNHEALTHY])
    send(settings_for(tmp_path, fake), [RECOVERED], summary())
    by_number = {i["number"]: i for i in fake.issues()}
    assert by_number[1]["state"] == "open" and by_number[1]["comments"] == 0
    assert by_number[2]["state"] == "closed"


def test_without_a_login_the_channel_is_skipped(tmp_path, fake):
    """An app's token cannot read GET /user: without alerts.issue_author, whose issues are
    ours is unknown, and nothing is posted."""
    settings = settings_for(tmp_path, fake, token=fake.actions_token)
    (line,) = send(settings, [UNHEALTHY])
    assert line.startswith("alert: GitHub issue skipped: cannot tell whose issues"), line
    assert line.endswith("set alerts.issue_author")
    assert fake.actions_token not in line
    assert fake.issues() == []


def test_a_wrong_issue_author_is_named(tmp_path, fake):
    settings = settings_for(tmp_path, fake, 'issue_author = "someone-else"\n')
    (line,) = send(settings, [UNHEALTHY])
    assert line.endswith("set alerts.issue_author = 'runner-health-bot'"), line


def test_github_down_is_a_line_not_a_crash(tmp_path, fake):
    settings = settings_for(tmp_path, fake, 'issue_author = "runner-health-bot"\n')
    fake.fail_with("5xx")
    (line,) = send(settings, [UNHEALTHY])
    assert line.startswith("alert: GitHub issue failed: GitHub API unreachable"), line
    assert fake.admin_token not in line


def test_no_token_skips_the_channel(tmp_path, fake):
    settings = settings_for(tmp_path, fake)
    assert notify.send([UNHEALTHY], summary(), settings, None) == [
        "alert: GitHub issue skipped: no GitHub token on this machine"
    ]
