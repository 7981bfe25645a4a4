"""A healthy cron pass is cheap: the VM's facts in one round trip (plus Multipass's state),
and, after a first pass, at most one request GitHub counts against the rate limit (the
ETags live in the state file between runs)."""

from __future__ import annotations

from pathlib import Path

from tests.bench import counted_pass
from tests.testbed.fake_github import FakeGitHub
from tests.testbed.harness import Suite
from tests.testbed.vm import TestbedVM


def test_a_second_healthy_pass_costs_one_round_trip_and_at_most_one_counted_request(
    healthy: TestbedVM, fake_github: FakeGitHub, tmp_path: Path
):
    suite = Suite(healthy, fake_github, tmp_path)  # its own state file: a first run
    first = counted_pass(suite, tmp_path / "first.count")
    second = counted_pass(suite, tmp_path / "second.count")
    for run in (first, second):
        assert run.outcome.returncode == 0, run.outcome.output
    assert second.counted <= 1, second
    online = second.outcome.record("test_runner_online_at_github")["measurements"]
    assert online == {"runner_online": 1, "runner_busy": 0}  # for the metrics
    assert second.requests <= first.requests
    # multipass info (the vm check) and one multipass exec: the prefetch
    assert second.commands <= 2, second
