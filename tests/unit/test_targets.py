"""Every command has a timeout; data travels on stdin; the multipass backend keeps exit codes."""

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner_health import targets
from runner_health.lock import take
from runner_health.observe import UNOBSERVABLE
from runner_health.targets import (
    CommandTimeout,
    GarbledPrefetch,
    TargetUnreachable,
    parse_prefetch,
    record_children_in,
    run,
    target,
)


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


# -- a killed run: its commands die with it, and the next run ends what is left ---------------

CALLER = """
import sys
from pathlib import Path
from runner_health import lock, targets
if sys.argv[1]:
    targets.record_children_in(lock.take(Path(sys.argv[1]), stale_after=60))
targets.run(targets.target("local://"), sys.argv[2], timeout=3)
"""


@pytest.fixture
def killed_caller() -> Iterator[Callable[..., int]]:
    """Run a command through targets.run in a process, signal that process (kill -9 unless
    ``how``) once the command has written ``pidfile`` (and ``lock`` records its group), and
    return the pid the command wrote; that pid is killed after the test if still alive."""
    pids: list[int] = []

    def kill(
        command: str, pidfile: Path, lock: Path | str = "", how: signal.Signals = signal.SIGKILL
    ) -> int:
        caller = subprocess.Popen(
            [sys.executable, "-c", CALLER, str(lock), command], stderr=subprocess.DEVNULL
        )

        def started() -> bool:
            if not pidfile.exists() or not pidfile.read_text().strip():
                return False
            return not lock or '"groups": {"' in Path(lock).read_text()

        deadline = time.monotonic() + 30
        while not started():
            assert time.monotonic() < deadline and caller.poll() is None, "it never started"
            time.sleep(0.05)
        caller.send_signal(how)
        caller.wait(timeout=30)
        pids.append(int(pidfile.read_text()))
        return pids[-1]

    yield kill
    for pid in filter(alive, pids):
        os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaps in this container counts as dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(") ")[2][0] != "Z"
    except OSError:
        return False


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


@pytest.mark.parametrize(
    ("command", "how"),
    [
        ("echo $$ > {pidfile}; exec sleep 300", signal.SIGKILL),  # the command itself
        ("sleep 300 & echo $! > {pidfile}; wait", signal.SIGINT),  # its child too, on Ctrl-C
    ],
    ids=["kill -9", "ctrl-c"],
)
def test_a_command_dies_with_the_run_that_started_it(tmp_path, killed_caller, command, how):
    pidfile = tmp_path / "pid"
    pid = killed_caller(command.format(pidfile=pidfile), pidfile, how=how)
    assert gone_within(pid, 5), f"the command outlived the run that started it ({how.name})"


def test_a_command_runs_recorded_in_the_lock(tmp_path):
    path = tmp_path / "lock"
    lock = take(path, stale_after=60)
    record_children_in(lock)
    try:
        # The command's group (its shell's pid) is recorded while it runs, gone once it ended.
        wait = f'until grep -q \'"groups": {{"\' {path}; do sleep 0.05; done'
        shell, record = run(
            target("local://"), f"{wait}; echo $$; cat {path}", timeout=10
        ).stdout.split("\n", 1)
        assert list(json.loads(record)["groups"]) == [shell]
        assert json.loads(path.read_text())["groups"] == {}
    finally:
        record_children_in(None)
        lock.close()


def test_the_next_run_waits_for_what_a_killed_run_left_then_kills_it(tmp_path, killed_caller):
    """The command's own children (here `sleep`) outlive a killed run; the next run to take the
    lock waits for them until the command's timeout (3 s), then kills its process group."""
    pidfile = tmp_path / "pid"
    pid = killed_caller(f"sleep 300 & echo $! > {pidfile}; wait", pidfile, tmp_path / "lock")
    assert alive(pid)
    started = time.monotonic()
    lock = take(tmp_path / "lock", stale_after=60)
    lock.close()
    assert not alive(pid)
    assert time.monotonic() - started < 10
    (note,) = lock.notes
    assert re.search(r"leaving process group \d+ running \(sleep\): waited \d+s", note)
    assert note.endswith("then killed it")


def test_ssh_that_cannot_connect_is_unreachable_not_a_bare_runtime_error(tmp_path, monkeypatch):
    fake = tmp_path / "ssh"
    fake.write_text(
        "#!/bin/sh\necho 'ssh: connect to host vm port 22: Connection refused' >&2\nexit 255\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(TargetUnreachable, match=r"ssh to vm failed.*Connection refused"):
        run(target("ssh://runner@vm"), "true", timeout=10)
    assert issubclass(TargetUnreachable, UNOBSERVABLE)


# -- many reads in one round trip (targets.prefetch) ------------------------------------------


def test_a_prefetch_answers_each_command_in_one_round_trip(tmp_path):
    local = target("local://")
    forged = tmp_path / ".runner"
    # What a job can write into a file root reads: headers of sections that do not exist.
    forged.write_bytes(b'1 0 2 0\nhi2 0 4 0\nfake\n\x00"\xff\n3 0 0 0\n')
    commands = [f"cat {forged}", "echo out; echo err >&2; exit 3", "exec printf x"]
    before = targets._commands
    targets.prefetch(local, commands)
    assert targets._commands == before + 1
    assert run(local, f"cat {forged}").stdout_bytes == forged.read_bytes()
    answer = run(local, "echo out; echo err >&2; exit 3")
    assert (answer.rc, answer.stdout, answer.stderr) == (3, "out\n", "err\n")
    assert run(local, "exec printf x").stdout == "x"  # its exec ended only itself
    assert targets.is_root(local) == (os.getuid() == 0)
    assert targets._commands == before + 1


def test_any_other_command_makes_the_next_read_fresh(tmp_path):
    local = target("local://")
    fact = tmp_path / "fact"
    fact.write_text("before the fix")
    targets.prefetch(local, [f"cat {fact}"])
    assert run(local, f"cat {fact}").stdout == "before the fix"
    run(local, f"echo after the fix > {fact}")  # a fix's step
    assert targets.prefetched(local, f"cat {fact}") is None
    assert run(local, f"cat {fact}").stdout == "after the fix\n"


SECTIONS = b"0 0 2 0\n0\n1 0 5 0\nhello2 1 0 4\nnope"


def test_the_sections_parse_by_their_lengths():
    assert parse_prefetch(SECTIONS, 3) == [(0, b"0\n", b""), (0, b"hello", b""), (1, b"", b"nope")]


@pytest.mark.parametrize(
    "output",
    [
        SECTIONS[:-1],  # truncated in the last section
        SECTIONS[: SECTIONS.index(b"2 1")],  # a whole section missing
        SECTIONS + b"3 0 0 0\n",  # more than was asked for
        SECTIONS.replace(b"1 0 5 0", b"2 0 5 0"),  # out of order
        SECTIONS.replace(b"1 0 5 0", b"1 0 -5 0"),
        b"",
        b"sudo: a password is required\n",
    ],
)
def test_anything_else_is_garbled_and_cannot_be_observed(output):
    with pytest.raises(GarbledPrefetch) as error:
        parse_prefetch(output, 3)
    assert isinstance(error.value, UNOBSERVABLE)
