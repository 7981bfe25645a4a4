"""Issue 9 item 4 against the fake GitHub: ``beat()`` keeps the repository Actions variable the
workflow reads (created on the first run, updated after: one request a run), and a token that
may not write variables costs one clear line, never a crash."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from runner_health import config as config_module
from runner_health.github import GitHub
from runner_health.heartbeat import beat, stale
from tests.testbed.fake_github import FakeGitHub

NAME = "RUNNER_HEALTH_HEARTBEAT"
PATH = f"/repos/acme/kernel-ci/actions/variables/{NAME}"
SUMMARY = {"status": "healed", "exit_code": 7, "checks": []}


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


def client(fake: FakeGitHub, tmp_path: Path, token: str) -> tuple[config_module.Settings, GitHub]:
    path = tmp_path / "runner-health.toml"
    path.write_text(
        f'[github]\nrepository = "acme/kernel-ci"\napi_url = "{fake.url}"\n'
        '[runner]\nname = "vm1"\n'
        f'[alerts]\nheartbeat_variable = "{NAME}"\nheartbeat_interval_minutes = 10\n'
    )
    settings = config_module.load(path)
    return settings, GitHub(settings.github, token)


def test_beat_creates_then_updates_the_variable_the_workflow_reads(fake, tmp_path):
    settings, github = client(fake, tmp_path, fake.admin_token)
    assert beat(SUMMARY, settings, github) == [f"heartbeat: variable {NAME} created"]
    first = fake.variable(NAME)
    assert first is not None
    assert stale(first["value"], datetime.now(timezone.utc)) is None
    assert json.loads(first["value"])["status"] == "healed"
    assert json.loads(first["value"])["interval_minutes"] == 10

    assert beat(SUMMARY, settings, github) == [f"heartbeat: variable {NAME} updated"]
    assert fake.requests == [
        ("PATCH", PATH, 404),
        ("POST", "/repos/acme/kernel-ci/actions/variables", 201),
        ("PATCH", PATH, 204),
    ]
    # Read back later, as the workflow would: stale once three intervals have passed.
    value = fake.variable(NAME)["value"]  # type: ignore[index]
    reason = stale(value, datetime.now(timezone.utc) + timedelta(minutes=31))
    assert reason is not None and reason.startswith("no heartbeat from runner-health on vm1 for")


def test_a_token_that_may_not_write_variables_is_one_clear_line(fake, tmp_path):
    token = fake.add_user("ci", permissions={"administration": "write"})
    settings, github = client(fake, tmp_path, token)
    [line] = beat(SUMMARY, settings, github)
    assert line == (
        f"heartbeat: variable {NAME} not updated: PATCH {PATH}: GitHub refused the token "
        "(403 Resource not accessible by personal access token): it needs the permission "
        "actions_variables=write (as GitHub lists it); the heartbeat needs a token with the "
        "repository permission Variables: write on acme/kernel-ci (classic token: repo)"
    )
    assert token not in line
    assert fake.variable(NAME) is None


def test_github_down_is_one_line_in_bounded_time(fake, tmp_path):
    settings, github = client(fake, tmp_path, fake.admin_token)
    fake.fail_with("5xx")
    [line] = beat(SUMMARY, settings, github)
    assert line.startswith(f"heartbeat: variable {NAME} not updated: GitHub API unreachable: ")
    assert "\n" not in line
