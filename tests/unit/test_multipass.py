"""`multipass info`: a state it names, or MultipassError (could not observe), never a guess."""

from __future__ import annotations

import json

import pytest

from runner_health.multipass import MultipassError, state
from runner_health.observe import CannotObserve
from runner_health.targets import target
from tests.scripts.conftest import write_fake


def info(tmp_path, monkeypatch, stdout: str, rc: int = 0) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "out").write_text(stdout)
    write_fake(bin_dir, "multipass", f"cat {tmp_path / 'out'}; exit {rc}")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return state(target("local://"), "vm1")


def test_reads_the_state(tmp_path, monkeypatch):
    answer = {"errors": [], "info": {"vm1": {"state": "Stopped"}}}
    assert info(tmp_path, monkeypatch, json.dumps(answer)) == "Stopped"


@pytest.mark.parametrize(
    "stdout",
    [
        "Starting vm1 \\ {",  # not JSON
        "[]",  # the wrong shape
        '{"info": {"other": {"state": "Stopped"}}}',
        '{"info": {"vm1": {"state": ["Stopped"]}}}',
        '{"info": {"vm1": {"state": "Sleeping"}}}',  # no state Multipass has
    ],
)
def test_garbage_is_cannot_observe(tmp_path, monkeypatch, stdout):
    with pytest.raises(MultipassError):
        info(tmp_path, monkeypatch, stdout)
    assert issubclass(MultipassError, CannotObserve)


def test_a_failing_cli_is_cannot_observe(tmp_path, monkeypatch):
    with pytest.raises(MultipassError, match="exited 2"):
        info(tmp_path, monkeypatch, "", rc=2)
