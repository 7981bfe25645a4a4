"""`multipass get/set local.<instance>.<property>` for the test-bed VM (used by bin/multipass).

Follows canonical/multipass (main, 9b0af2ec; same in v1.16):
  src/daemon/instance_settings_handler.cpp  key regex, "Cannot obtain/update instance settings",
      "No such instance", "Instance must be stopped for modification", "Disk can only be expanded"
  include/multipass/exceptions/settings_exceptions.h  "Invalid setting '{key}={val}': {why}",
      "Unrecognized settings key: '{key}'"
  include/multipass/exceptions/invalid_memory_size_exception.h, src/utils/memory_size.cpp
      size syntax, the invalid-size message, and human_readable() ("40.0GiB") for `get`
  src/daemon/daemon.cpp (Daemon::get/set: errors become gRPC statuses),
  src/client/cli/client.cpp + src/client/common/client_common.cpp
      (standard_failure_handler_for: "<command> failed: <message>", exit 2 = CommandFail for
      every status but UNAVAILABLE), include/multipass/cli/return_codes.h
  src/utils/qemu_img_utils.cpp (resize_instance_image: `qemu-img resize -f <fmt> <image> <bytes>`)
The disk is the VM's root overlay (state['overlay']); its size is qemu-img's virtual size.
Known differences: only `disk` can be set (cpus/memory are fixed by tests/testbed/vm.py and
read-only here, `bridged` is not modelled); other `local.*` keys (local.driver, ...) are unknown.
"""

from __future__ import annotations

import json
import re
import subprocess

from tests.testbed.vm import CPUS, MEMORY, VM_NAME, TestbedVM

COMMAND_LINE_ERROR, COMMAND_FAIL = 1, 2  # return_codes.h

KEY = re.compile(r"local\.(?P<instance>.+)\.(?P<property>cpus|memory|disk|bridged)")
SIZE = re.compile(r"\s*(\d+)(?:\.(\d+)(?=[KMG]))?(?:([KMG])(?:i?B)?|B)?\s*", re.IGNORECASE)
UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


class SettingsError(Exception):
    """What the CLI prints on stderr (``message``, one line) and its exit status (``code``)."""

    def __init__(self, message: str, code: int = COMMAND_FAIL) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def in_bytes(value: str) -> int:
    """mp::in_bytes: digits, optional decimals before a unit, K/M/G with optional (i)B, or B."""
    match = SIZE.fullmatch(value)
    if not match:
        raise ValueError(
            f"{value} is not a valid memory size - need a non-negative integer (in base 10) "
            "or a decimal followed by K, M, or G (e.g. 1234B, 42MiB, 0.5G)"
        )
    whole, decimals, unit = match.groups()
    factor = UNITS[unit.lower()] if unit else 1
    return int(whole) * factor + (int(decimals) * factor // 10 ** len(decimals) if decimals else 0)


def human_readable(size: int) -> str:
    """mp::MemorySize::human_readable(): one decimal, largest unit with quotient >= 1."""
    for suffix, unit in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size / unit >= 1:
            return f"{size / unit:.1f}{suffix}"
    return f"{size}B"


def _parse_key(command: str, key: str) -> tuple[str, str]:
    match = KEY.fullmatch(key)
    if not key.startswith("local."):  # the client's own handlers know no such key
        raise SettingsError(f"Unrecognized settings key: '{key}'", COMMAND_LINE_ERROR)
    if not match:  # the daemon's handlers know no such key: INVALID_ARGUMENT
        raise SettingsError(f"{command} failed: Unrecognized settings key: '{key}'")
    operation = "Cannot obtain" if command == "get" else "Cannot update"
    if match["instance"] != VM_NAME:
        raise SettingsError(
            f"{command} failed: {operation} instance settings; "
            f"instance: {match['instance']}; reason: No such instance"
        )
    return match["instance"], match["property"]


def disk_size(vm: TestbedVM) -> int:
    """The root disk's size in bytes: the overlay's virtual size."""
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", vm.state()["overlay"]],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return int(json.loads(out)["virtual-size"])


def get(vm: TestbedVM, key: str) -> str:
    """`multipass get KEY`: the value as the CLI prints it."""
    _, prop = _parse_key("get", key)
    if prop == "bridged":
        return "false"
    if prop == "cpus":
        return str(CPUS)
    if prop == "memory":
        return human_readable(in_bytes(MEMORY))
    return human_readable(disk_size(vm))


def set(vm: TestbedVM, key: str, value: str) -> None:
    """`multipass set KEY=VALUE`: grow the stopped VM's disk (the only settable key here)."""
    _, prop = _parse_key("set", key)
    if vm.is_running():
        raise SettingsError(
            f"set failed: Cannot update instance settings; instance: {VM_NAME}; "
            "reason: Instance must be stopped for modification"
        )
    if prop != "disk":
        raise SettingsError(f"set failed: the test bed cannot change {prop} (not modelled)")
    invalid = f"set failed: Invalid setting '{key}={value}'"
    try:
        size = in_bytes(value)
    except ValueError as exc:
        raise SettingsError(f"{invalid}: {exc}") from None
    if size == 0:
        raise SettingsError(f"{invalid}: Need a positive size.")
    current = disk_size(vm)
    if size < current:
        raise SettingsError(f"{invalid}: Disk can only be expanded")
    if size > current:
        subprocess.run(
            ["qemu-img", "resize", "-q", "-f", "qcow2", vm.state()["overlay"], str(size)],
            check=True,
            timeout=120,
        )
