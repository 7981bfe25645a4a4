"""Grow the Multipass VM's disk when freeing space is not enough (opt-in, never automatic).

    python -m runner_health.grow_disk 40G [--name NAME] [--config PATH] [--force] [--dry-run]

Multipass grows the image only while the instance is stopped, and only up (canonical/multipass
src/daemon/instance_settings_handler.cpp: "Instance must be stopped for modification", "Disk
can only be expanded"); the guest's partition and filesystem stay as they were, so they are
grown from inside: growpart (cloud-guest-utils) when / is on a partition, then resize2fs
(ext2/3/4) or xfs_growfs (xfs), both online. Ubuntu's cloud-init may already have done it at
boot (cc_growpart, cc_resizefs): the steps are then no-ops. / must be larger at the end.

A stop kills a running job, so a VM running one is refused unless --force. Any step that fails
after the stop leaves the VM started again. Exit status: 0 grown, 1 a step failed, 4 refused
(nothing changed).
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from dataclasses import dataclass

from testinfra.host import Host

from runner_health import config, multipass
from runner_health.exitcodes import ExitCode
from runner_health.steps import RemediationFailed, RemediationRefused, Steps
from runner_health.targets import run, target

# What this accepts of Multipass's size syntax (src/utils/memory_size.cpp): whole K/M/G, with
# an optional iB/B (40G, 40GiB, 512M). Bare bytes and decimals are refused: 40 would be bytes.
SIZE = re.compile(r"(\d{1,9})([KMG])(?:i?B)?", re.IGNORECASE)
UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3}
# `multipass get local.NAME.disk`: MemorySize::human_readable(), e.g. "40.0GiB".
SHOWN = re.compile(r"(\d{1,9}(?:\.\d{1,3})?)(GiB|MiB|KiB|B)")
SHOWN_UNITS = {"GiB": 1024**3, "MiB": 1024**2, "KiB": 1024, "B": 1}
# Multipass instance names (src/client/cli/cmd/launch.cpp: a letter, then letters, digits, -).
NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,62}")
DEVICE = re.compile(r"/dev/[A-Za-z0-9/_-]{1,64}")
RESIZERS = {"ext2": "resize2fs", "ext3": "resize2fs", "ext4": "resize2fs", "xfs": "xfs_growfs"}
MULTIPASS_TIMEOUT = 60.0
START_TIMEOUT = 900.0  # a boot, where Multipass's own start waits up to 5 min per attempt
ROOT_SIZE = "df -B1 --output=size / | tail -n 1"


class GrowRefused(RemediationRefused):
    """Not grown, nothing changed: a bad SIZE, a disk already that large, a job running."""


def parse_size(text: str) -> int:
    """SIZE in bytes (40G -> 42949672960); GrowRefused for anything else."""
    match = SIZE.fullmatch(text.strip())
    if not match:
        raise GrowRefused(f"SIZE {text!r} is not a size: give digits and K, M or G (e.g. 40G)")
    return int(match[1]) * UNITS[match[2].upper()]


def parse_shown(text: str) -> int:
    """Bytes from what `multipass get local.NAME.disk` prints ("40.0GiB": 0.1 GiB precision)."""
    match = SHOWN.fullmatch(text.strip())
    if not match:
        raise RemediationFailed(f"multipass get printed no disk size: {text.strip()[:100]!r}")
    return int(float(match[1]) * SHOWN_UNITS[match[2]])


def gib(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB"


@dataclass(frozen=True)
class RootFs:
    """Where / lives in the guest: its device, filesystem type, and the partition, if any."""

    device: str
    fstype: str
    disk: str | None  # the whole disk holding the partition; None when / is on a whole disk
    partition: str | None

    def commands(self) -> list[str]:
        """The commands that grow / to fill its (grown) disk."""
        grow = []
        if self.disk and self.partition:
            # growpart(1): 0 grown, 1 NOCHANGE (nothing to grow: cloud-init did it), 2 error.
            grow.append(f'growpart {shlex.quote(self.disk)} {self.partition}; [ "$?" -le 1 ]')
        resizer = RESIZERS[self.fstype]
        grow.append(f"{resizer} {shlex.quote(self.device if resizer == 'resize2fs' else '/')}")
        return grow


def root_fs(vm: Host) -> RootFs:
    """Read / 's device, type and partition from the guest (validated: it is untrusted)."""
    out = run(
        vm,
        'findmnt -n -o SOURCE,FSTYPE / && lsblk -n -d -o PKNAME "$(findmnt -n -o SOURCE /)"',
        timeout=60,
    )
    fields = out.stdout.split()
    if out.rc != 0 or len(fields) not in (2, 3):
        raise RemediationFailed(f"cannot tell what / is on: {out.stdout.strip()[:200]!r}")
    device, fstype, parent = fields[0], fields[1], (fields[2] if len(fields) == 3 else None)
    if not DEVICE.fullmatch(device):
        raise RemediationFailed(f"/ is on {device[:80]!r}, not a block device this can grow")
    if fstype not in RESIZERS:
        raise RemediationFailed(f"/ is {fstype[:20]!r}: only ext2/3/4 and xfs are grown here")
    if parent is None:
        return RootFs(device, fstype, None, None)
    number = run(vm, f"cat /sys/class/block/{shlex.quote(device.rsplit('/', 1)[1])}/partition")
    if not re.fullmatch(r"\d{1,3}", number.stdout.strip()) or not re.fullmatch(
        r"[a-z0-9]{1,32}", parent
    ):
        raise RemediationFailed(f"cannot tell which partition of {parent[:40]!r} holds /")
    return RootFs(device, fstype, f"/dev/{parent}", number.stdout.strip())


def root_size(vm: Host) -> int:
    out = run(vm, ROOT_SIZE, timeout=60)
    if out.rc != 0 or not out.stdout.strip().isdigit():
        raise RemediationFailed(f"df of / failed: {(out.stdout + out.stderr).strip()[:200]!r}")
    return int(out.stdout.strip())


def disk_size(workstation: Host, name: str) -> int:
    out = run(workstation, f"multipass get local.{name}.disk", timeout=MULTIPASS_TIMEOUT)
    if out.rc != 0:
        raise RemediationFailed(f"multipass get local.{name}.disk: {out.stderr.strip()[:300]}")
    return parse_shown(out.stdout)


def grow(
    workstation: Host, vm: Host, name: str, size_text: str, *, force: bool, steps: Steps
) -> None:
    """Stop, grow the image to SIZE, start, grow / inside, and check that / grew."""
    size = parse_size(size_text)
    state = multipass.state(workstation, name, timeout=MULTIPASS_TIMEOUT)
    if state != "Running":
        raise GrowRefused(f"{name} is {state}: start it first (multipass start {name})")
    current = disk_size(workstation, name)
    if size <= current:
        raise GrowRefused(
            f"{name}'s disk is {gib(current)} already: {gib(size)} is not larger, and "
            'Multipass only grows a disk ("Disk can only be expanded")'
        )
    worker = run(vm, "pgrep -x Runner.Worker", timeout=60).rc  # 0 found, 1 none, else error
    if worker not in (0, 1):
        raise RemediationFailed(f"cannot tell whether a job runs (pgrep exited {worker})")
    if worker == 0:
        if not force:
            raise GrowRefused(
                "a job is running (Runner.Worker): stopping the VM would kill it; run again when "
                "it is over, or with --force to stop it all the same"
            )
        steps.note("a job is running (Runner.Worker): --force, so it will be killed by the stop")
    fs, before = root_fs(vm), root_size(vm)
    steps.note(
        f"{name}: disk {gib(current)} -> {gib(size)}; / is {fs.fstype} on {fs.device}, {gib(before)}"
    )
    quoted = shlex.quote(name)
    steps.run(
        f"multipass stop {quoted}",
        why="Multipass resizes a stopped instance only",
        host=workstation,
        root=False,
        timeout=START_TIMEOUT,
    )
    try:
        steps.run(
            f"multipass set local.{name}.disk={size_text.strip()}",
            why="grow the image",
            host=workstation,
            root=False,
        )
    finally:
        steps.run(
            f"multipass start {quoted}",
            why="the runner's VM runs again",
            host=workstation,
            root=False,
            timeout=START_TIMEOUT,
        )
    for command in fs.commands():
        steps.run(command, why="grow / into the larger disk", host=vm)
    if steps.dry_run:
        return
    after = root_size(vm)
    if after <= before:
        raise RemediationFailed(f"/ is still {gib(after)} after the steps above")
    steps.note(f"ok: / grew from {gib(before)} to {gib(after)}")


def settings_name(option: str | None) -> str:
    """The instance from the config's multipass://NAME target."""
    settings = config.load(config.find_config(option))
    if not settings.multipass_name:
        raise GrowRefused(
            f"{settings.path}'s target is {settings.target}, not multipass://NAME: pass --name"
        )
    return settings.multipass_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runner_health.grow_disk",
        description="Grow the Multipass VM's disk to SIZE: stop, multipass set "
        "local.NAME.disk=SIZE, start, grow the partition and filesystem inside, check / grew.",
    )
    parser.add_argument(
        "size", metavar="SIZE", help="the new disk size, larger than now (e.g. 40G)"
    )
    parser.add_argument("--name", help="the instance (default: the config's multipass://NAME)")
    parser.add_argument("--config", help="the config, found as for a run when not given")
    parser.add_argument("--force", action="store_true", help="stop the VM even while a job runs")
    parser.add_argument("--dry-run", action="store_true", help="print the steps, change nothing")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(f"grow_disk: {text}", flush=True)

    try:
        name = args.name or settings_name(args.config)
        if not NAME.fullmatch(name):
            raise GrowRefused(f"{name[:70]!r} is not a Multipass instance name")
        steps = Steps(target("local://"), dry_run=args.dry_run, echo=say)
        grow(
            target("local://"),
            target(f"multipass://{name}"),
            name,
            args.size,
            force=args.force,
            steps=steps,
        )
    except (GrowRefused, config.ConfigError) as exc:
        say(f"refused, nothing changed: {exc}")
        return ExitCode.USAGE_ERROR
    except (RemediationFailed, multipass.MultipassError) as exc:
        say(f"FAILED: {exc}")
        return ExitCode.UNHEALTHY
    return ExitCode.HEALTHY


if __name__ == "__main__":
    sys.exit(main())
