"""The one place that runs commands on the runner VM (and on the host, for Multipass).

>>> vm = target("multipass://assay-bpf-runner", timeout=60)
>>> vm.service("ssh").is_running
True
>>> run(vm, "bash -s", stdin=script_text, timeout=600).rc
0

testinfra's backends run commands with no timeout and no way to feed stdin. The
subclasses here add both (every command has a timeout; secrets and scripts travel on stdin,
never in argv), and add a ``multipass://VM`` backend that runs ``multipass exec VM --``.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import testinfra
import testinfra.backend
from testinfra.backend import base, local, ssh
from testinfra.host import Host

from runner_health.lock import RunLock

_stdin: contextvars.ContextVar[bytes | None] = contextvars.ContextVar("stdin", default=None)
_timeout: contextvars.ContextVar[float] = contextvars.ContextVar("timeout", default=120.0)
_children: RunLock | None = None  # where each command's process group is recorded while it runs
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
    """``host.run`` with a timeout and, optionally, data on stdin (never on argv)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    stdin_token = _stdin.set(data)
    timeout_token = _timeout.set(timeout)
    try:
        return host.run(command)
    finally:
        _stdin.reset(stdin_token)
        _timeout.reset(timeout_token)


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
