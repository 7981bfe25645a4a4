"""Every command has a timeout; data travels on stdin; the multipass backend keeps exit codes."""

import os
import stat
import time

import pytest

from runner_health.targets import CommandTimeout, run, target


def test_timeout_kills_the_command_and_says_so():
    local = target("local://")
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match="timed out after 1s"):
        run(local, "sleep 30", timeout=1)
    assert time.monotonic() - started < 10


def test_stdin_reaches_the_command_not_its_argv():
    local = target("local://")
    result = run(
        local, "read -r secret; echo got:${#secret}; ps -o args= -p $$", stdin="hush-hush\n"
    )
    assert result.stdout.startswith("got:9")
    assert "hush-hush" not in result.stdout


def test_multipass_backend_runs_through_multipass_exec(tmp_path, monkeypatch):
    fake = tmp_path / "multipass"
    fake.write_text('#!/bin/sh\n[ "$1 $2 $3" = "exec vm1 --" ] || exit 99\nshift 3\nexec "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    vm = target("multipass://vm1")
    assert run(vm, "echo hello from $((40+2))").stdout == "hello from 42\n"
    assert run(vm, "exit 3").rc == 3
    # Multipass 1.16 loops forever on a remote 4; the backend maps it away and back.
    assert run(vm, "exit 4").rc == 4
