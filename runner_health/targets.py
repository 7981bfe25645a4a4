"""The one place that runs commands on the runner VM (and on the host, for Multipass).

>>> vm = target("multipass://assay-bpf-runner", timeout=60)
>>> vm.service("ssh").is_running
True
>>> run(vm, "bash -s", stdin=script_text, timeout=600).rc
0

testinfra's backends run commands with no timeout and no way to feed stdin. The
subclasses here add both (every command has a timeout; secrets and scripts travel on stdin,
never in argv), and add a ``multipass://VM`` backend that runs ``multipass exec VM --``.

Each command is a round trip (an ``ssh`` or a ``multipass exec``: most of a healthy pass's
time). ``prefetch`` runs many read-only commands in one, as root; ``run`` then answers those
exact commands from it, until any other command runs anywhere (a fix's step, or a read no
prefetch covered): from then on what it holds may be out of date, so commands run again.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import testinfra
import testinfra.backend
from testinfra.backend import base, local, ssh
from testinfra.host import Host

from runner_health.lock import RunLock

_stdin: contextvars.ContextVar[bytes | None] = contextvars.ContextVar("stdin", default=None)
_timeout: contextvars.ContextVar[float] = contextvars.ContextVar("timeout", default=120.0)
_children: RunLock | None = None  # where each command's process group is recorded while it runs
_commands = 0  # commands run so far in this process: a prefetch is current while it is unchanged
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def record_children_in(lock: RunLock | None) -> None:
    """Record every command's process group in the run's lock while it runs: the next run ends
    what this one leaves behind if it is killed (a command's own children outlive it)."""
    global _children
    _children = lock


def _dies_with(parent: int) -> Callable[[], None] | None:
    """A preexec_fn: the command gets SIGKILL when ``parent`` (its caller's thread) dies, even by
    kill -9. Linux only; its own children are not covered (see record_children_in)."""
    if _prctl is None:
        return None

    def arm() -> None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(137)

    return arm


class CommandTimeout(RuntimeError):
    """A command on the target ran past its timeout and was killed."""


class _TimedStdinMixin(base.BaseBackend):
    """run_local with a timeout (killing the whole process group) and optional stdin; the
    command dies with us, and its group is recorded while it runs (record_children_in)."""

    def run_local(self, command: str, *args: str) -> base.CommandResult:
        global _commands
        _commands += 1
        command = self.quote(command, *args)
        cmd = self.encode(command)
        timeout = _timeout.get()
        children = _children
        with subprocess.Popen(
            cmd,
            shell=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_dies_with(os.getpid()),
        ) as process:
            if children:
                children.add_group(process.pid, timeout)
            try:
                stdout, stderr = process.communicate(input=_stdin.get(), timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                raise CommandTimeout(
                    f"command timed out after {timeout:.0f}s: {command[:200]}"
                ) from None
            except BaseException:  # Ctrl-C, pytest.exit: the command's whole group goes with us
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                raise
            finally:
                if children:
                    children.discard_group(process.pid)
        return self.result(process.returncode, cmd, stdout, stderr)


class LocalBackend(_TimedStdinMixin, local.LocalBackend):
    """The runner VM itself (cron/timer on the VM)."""


class TargetUnreachable(RuntimeError):
    """The command never ran: ssh itself failed (no route, refused, bad key)."""


class SshBackend(_TimedStdinMixin, ssh.SshBackend):
    """The VM over SSH; pass --ssh-config with a ControlPath so one connection serves all."""

    def run_ssh(self, command: str) -> base.CommandResult:
        # testinfra raises a bare RuntimeError(CommandResult) when ssh exits 255.
        try:
            return super().run_ssh(command)
        except CommandTimeout:
            raise
        except RuntimeError as exc:
            result = exc.args[0] if exc.args else None
            stderr = getattr(result, "stderr", "").strip()[-300:]
            raise TargetUnreachable(
                f"ssh to {self.host.name} failed (exit 255): {stderr}"
            ) from None


class MultipassBackend(_TimedStdinMixin, base.BaseBackend):
    """``multipass://VM``: every command through ``multipass exec VM -- /bin/sh -c ...``.

    Multipass 1.16 re-runs a command whose exit status is 4 forever (canonical/multipass
    issue 3771), so a remote 4 is mapped to 104 inside the VM and back here.
    """

    NAME = "multipass"

    def __init__(self, hostname: str, *args: Any, **kwargs: Any) -> None:
        self.name = hostname
        super().__init__(hostname, *args, **kwargs)

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        guarded = f'/bin/sh -c {shlex.quote(cmd)}; s=$?; [ "$s" -eq 4 ] && s=104; exit "$s"'
        out = self.run_local("multipass exec %s -- /bin/sh -c %s", self.name, guarded)
        if out.rc == 104:
            out = self.result(4, out.command, out.stdout_bytes, out.stderr_bytes)
        out.command = self.encode(cmd)
        return out


testinfra.backend.BACKENDS.update(
    {
        "local": f"{__name__}.LocalBackend",
        "ssh": f"{__name__}.SshBackend",
        "multipass": f"{__name__}.MultipassBackend",
    }
)


def target(spec: str, *, ssh_config: str | None = None) -> Host:
    """The testinfra host for ``spec`` (local://, ssh://user@host, multipass://NAME)."""
    kwargs: dict[str, Any] = {}
    if ssh_config and spec.startswith("ssh://"):
        kwargs["ssh_config"] = ssh_config
    return testinfra.get_host(spec, **kwargs)


def run(
    host: Host, command: str, *, stdin: str | bytes | None = None, timeout: float = 120
) -> base.CommandResult:
    """``host.run`` with a timeout and, optionally, data on stdin (never on argv); a current
    prefetch's answer when it ran this very command."""
    if stdin is None and (found := prefetched(host, command)) is not None:
        return found
    data = stdin.encode() if isinstance(stdin, str) else stdin
    stdin_token = _stdin.set(data)
    timeout_token = _timeout.set(timeout)
    try:
        return host.run(command)
    finally:
        _stdin.reset(stdin_token)
        _timeout.reset(timeout_token)


# -- many reads in one round trip ------------------------------------------------------------


class GarbledPrefetch(RuntimeError):
    """The prefetch's output is not the sections it asked for: nothing in it is used."""


@dataclass(frozen=True)
class Prefetch:
    """The answers of one prefetch: command -> result, and when it ran (local clock)."""

    host: Host
    results: dict[str, base.CommandResult]
    started: float
    finished: float
    commands: int  # _commands when it was taken


_prefetches: dict[int, Prefetch] = {}  # id(host) ->
# Each section: "<index> <exit status> <stdout bytes> <stderr bytes>\n", then exactly those bytes.
# Nothing is searched for in what a command printed (a job can write .runner or the _diag
# log), so no file content can pass for a section: a length is only ever read from our header.
# Each command runs in a subshell: its own ``exit`` or ``exec`` ends only itself.
_HEADER = re.compile(rb"(\d{1,4}) (\d{1,3}) (\d{1,10}) (\d{1,10})\n")
_SECTION = (
    '( {command}\n) </dev/null >"$o" 2>"$e"; s=$?; '
    'printf \'%s %s %s %s\\n\' {index} "$s" $(($(wc -c <"$o"))) $(($(wc -c <"$e"))); '
    'cat "$o" "$e"\n'
)


def prefetch(
    host: Host, commands: Sequence[str], *, root: Sequence[str] = (), timeout: float = 60
) -> Prefetch:
    """Run ``commands`` (read-only, as given) and ``root`` (each as ``as_root`` would) in one
    round trip, all as root; ``run`` then answers them while no other command has run.

    ``id -u`` is answered too, from the connection's own user, so ``is_root`` costs no
    round trip. GarbledPrefetch when the output is not exactly the sections asked for.
    """
    script = ['o=$(mktemp) && e=$(mktemp) || exit 1; trap \'rm -f "$o" "$e"\' EXIT\n']
    asked = ["id -u", *commands, *root]
    script += [_SECTION.format(index=0, command='echo "$1"')]
    script += [_SECTION.format(index=i, command=c) for i, c in enumerate(asked[1:], 1)]
    elevate = 'u=$(id -u); [ "$u" = 0 ] && exec /bin/sh -s "$u"; exec sudo -n /bin/sh -s "$u"'
    started = time.time()
    result = run(host, elevate, stdin="".join(script), timeout=timeout)
    finished = time.time()
    try:
        outputs = parse_prefetch(result.stdout_bytes, len(asked))
    except GarbledPrefetch as exc:
        raise GarbledPrefetch(f"{exc}; exit {result.rc}: {result.stderr.strip()[-300:]}") from None
    answers = [
        base.CommandResult(host.backend, rc, c.encode(), out, err)
        for c, (rc, out, err) in zip(asked, outputs, strict=True)
    ]
    taken = Prefetch(host, {"id -u": answers[0]}, started, finished, _commands)
    _prefetches[id(host)] = taken  # is_root below is answered from it
    for command, answer in zip(asked[1:], answers[1:], strict=True):
        key = as_root(host, command) if command in root else command
        taken.results[key] = answer
    return taken


def parse_prefetch(output: bytes, count: int) -> list[tuple[int, bytes, bytes]]:
    """(exit status, stdout, stderr) of sections 0..count-1, in order, and nothing after."""
    found, at = [], 0
    for index in range(count):
        header = _HEADER.match(output, at)
        if header is None or int(header[1]) != index:
            raise GarbledPrefetch(
                f"section {index} of {count} missing or malformed at byte {at} "
                f"({output[at : at + 40]!r})"
            )
        out_len, err_len = int(header[3]), int(header[4])
        at = header.end()
        if at + out_len + err_len > len(output):
            raise GarbledPrefetch(f"section {index} of {count} cut short (truncated output)")
        found.append(
            (
                int(header[2]),
                output[at : at + out_len],
                output[at + out_len : at + out_len + err_len],
            )
        )
        at += out_len + err_len
    if at != len(output):
        raise GarbledPrefetch(f"{len(output) - at} bytes after the last section")
    return found


def current_prefetch(host: Host) -> Prefetch | None:
    """The host's prefetch while no command has run since it was taken, else None."""
    taken = _prefetches.get(id(host))
    if taken is None or taken.host is not host or taken.commands != _commands:
        return None
    return taken


def prefetched(host: Host, command: str) -> base.CommandResult | None:
    """The current prefetch's answer to ``command``, if it ran it."""
    taken = current_prefetch(host)
    return None if taken is None else taken.results.get(command)


@functools.cache
def is_root(host: Host) -> bool:
    """Whether commands on ``host`` already run as root (asked once per host)."""
    return run(host, "id -u", timeout=30).stdout.strip() == "0"


def as_root(host: Host, command: str) -> str:
    """``command`` wrapped in ``sudo -n`` unless the connection already is root."""
    if is_root(host):
        return command
    return f"sudo -n /bin/sh -c {shlex.quote(command)}"


def as_user(user: str, command: str) -> str:
    """``command`` for root to run as ``user`` with that user's login environment."""
    return f"sudo -n -H -u {shlex.quote(user)} /bin/sh -c {shlex.quote(command)}"
