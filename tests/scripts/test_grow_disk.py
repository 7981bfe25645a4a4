"""runner_health.grow_disk (health_check.sh --grow-disk) against fakes on PATH.

``multipass`` is a fake keeping the instance's state and disk size in files; its ``exec`` runs
the command here, where ``findmnt``, ``lsblk``, ``df``, ``pgrep``, ``growpart`` and
``resize2fs`` are fakes too: resize2fs makes / as large as the disk, as the real one does. The
real thing, on the test-bed VM: tests/vm/test_grow_disk.py. The stand-in's `get`/`set`:
tests/testbed/multipass_settings.py, tested at the end.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runner_health.grow_disk import GrowRefused, parse_shown, parse_size
from tests.scripts.conftest import ROOT, run_script, write_fake
from tests.testbed import multipass_settings
from tests.testbed.vm import TestbedVM

NAME = "runner-vm"
GIB = 1024**3

# State in $VM: state (Running/Stopped), disk (bytes), root (bytes of /), job (present: a job
# runs), fail-set (present: `set` fails as Multipass does on a bad value).
FAKE_MULTIPASS = r"""
v() { cat "$VM/$1"; }
case $1 in
  info) printf '{"errors": [], "info": {"%s": {"state": "%s"}}}\n' "$2" "$(v state)" ;;
  get) python3 -c 'import sys; print(f"{int(sys.argv[1]) / 2**30:.1f}GiB")' "$(v disk)" ;;
  set)
    [ "$(v state)" = Stopped ] || { echo "set failed: Cannot update instance settings; instance: $NAME; reason: Instance must be stopped for modification" >&2; exit 2; }
    [ ! -e "$VM/fail-set" ] || { echo "set failed: Invalid setting '${2%%=*}=${2#*=}': Disk can only be expanded" >&2; exit 2; }
    size=${2#*=}; echo $(( ${size%G} * 1073741824 )) > "$VM/disk" ;;
  stop) echo Stopped > "$VM/state" ;;
  start) echo Running > "$VM/state" ;;
  exec) shift 3; exec "$@" ;;
  *) echo "fake multipass: unexpected $*" >&2; exit 1 ;;
esac
"""
GUEST = {
    "findmnt": 'case "$*" in *SOURCE,FSTYPE*) echo "$ROOTDEV ext4" ;; *) echo "$ROOTDEV" ;; esac',
    "lsblk": '[ -n "${PARENT:-}" ] && echo "$PARENT" || echo',
    "df": 'echo "   Size"; cat "$VM/root"',
    "pgrep": '[ -e "$VM/job" ]',
    "resize2fs": 'echo "resize2fs 1.47.0"; cp "$VM/disk" "$VM/root"',
    "growpart": 'echo "CHANGED: partition=$2"',
}


@pytest.fixture
def vm(tmp_path: Path, fakes) -> Path:
    state = tmp_path / "vm"
    state.mkdir()
    (state / "state").write_text("Running\n")
    (state / "disk").write_text(f"{10 * GIB}\n")
    (state / "root").write_text(f"{9 * GIB}\n")
    write_fake(fakes[0], "multipass", FAKE_MULTIPASS)
    for name, body in GUEST.items():
        write_fake(fakes[0], name, body)
    return state


def grow(args: list[str], fakes, vm: Path, **env: str):
    return run_script(
        [str(ROOT / ".venv/bin/python"), "-m", "runner_health.grow_disk", "--name", NAME, *args],
        fakes=fakes,
        env={"VM": str(vm), "NAME": NAME, "ROOTDEV": "/dev/vda", **env},
    )


def calls(fakes, command: str) -> list[str]:
    return [line for line in fakes[1].read_text().splitlines() if line.startswith(command + " ")]


def multipass_changes(fakes) -> list[str]:
    return [c for c in calls(fakes, "multipass") if c.split()[1] in ("stop", "set", "start")]


@pytest.mark.parametrize(
    ("text", "size"),
    [("40G", 40 * GIB), ("512M", 512 * 1024**2), ("40GiB", 40 * GIB), ("8g", 8 * GIB)],
)
def test_sizes_in_multipass_syntax(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["40", "40T", "-1G", "4.5G", "40 G x", "", "1234567890G", "40G;rm"]
)
def test_other_sizes_are_refused(text):
    with pytest.raises(GrowRefused, match="is not a size"):
        parse_size(text)


@pytest.mark.parametrize(("shown", "size"), [("40.0GiB", 40 * GIB), ("512.0MiB", 512 * 1024**2)])
def test_the_disk_size_multipass_get_prints(shown, size):
    assert parse_shown(shown) == size


def test_grows_the_disk_and_then_root_in_that_order(fakes, vm):
    result = grow(["20G"], fakes, vm)
    assert result.returncode == 0, result.stdout + result.stderr
    assert multipass_changes(fakes) == [
        f"multipass stop {NAME}",
        f"multipass set local.{NAME}.disk=20G",
        f"multipass start {NAME}",
    ]
    assert calls(fakes, "resize2fs") == ["resize2fs /dev/vda"]
    assert calls(fakes, "growpart") == []  # / is on the whole disk
    assert "ok: / grew from 9.0 GiB to 20.0 GiB" in result.stdout


def test_a_partition_is_grown_before_the_filesystem(fakes, vm):
    part = Path(vm) / "sys-partition"
    part.write_text("1\n")
    write_fake(
        fakes[0],
        "cat",
        f'[ "$1" = /sys/class/block/sda1/partition ] && exec /bin/cat {part} || exec /bin/cat "$@"',
    )
    result = grow(["20G"], fakes, vm, ROOTDEV="/dev/sda1", PARENT="sda")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(fakes, "growpart") == ["growpart /dev/sda 1"]
    assert calls(fakes, "resize2fs") == ["resize2fs /dev/sda1"]


def test_when_root_does_not_grow_it_fails_and_leaves_the_vm_running(fakes, vm):
    write_fake(
        fakes[0],
        "resize2fs",
        "echo 'The filesystem is already 2359296 (4k) blocks long.  Nothing to do!'",
    )
    result = grow(["20G"], fakes, vm)
    assert result.returncode == 1
    assert "FAILED: / is still 9.0 GiB after the steps above" in result.stdout
    assert (vm / "state").read_text().strip() == "Running"


def test_a_failed_set_starts_the_vm_again_and_says_why(fakes, vm):
    (vm / "fail-set").touch()
    result = grow(["20G"], fakes, vm)
    assert result.returncode == 1
    assert "Disk can only be expanded" in result.stdout
    assert multipass_changes(fakes)[-1] == f"multipass start {NAME}"
    assert (vm / "state").read_text().strip() == "Running"
    assert calls(fakes, "resize2fs") == []


@pytest.mark.parametrize(
    ("setup", "size", "said"),
    [
        ("job", "20G", "a job is running (Runner.Worker): stopping the VM would kill it"),
        (None, "10G", f"{NAME}'s disk is 10.0 GiB already: 10.0 GiB is not larger"),
        (None, "8G", f"{NAME}'s disk is 10.0 GiB already: 8.0 GiB is not larger"),
        ("stopped", "20G", f"{NAME} is Stopped: start it first"),
        (None, "20", "SIZE '20' is not a size"),
    ],
)
def test_refusals_change_nothing(setup, size, said, fakes, vm):
    if setup == "job":
        (vm / "job").touch()
    if setup == "stopped":
        (vm / "state").write_text("Stopped\n")
    result = grow([size], fakes, vm)
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"refused, nothing changed: {said}" in result.stdout
    assert multipass_changes(fakes) == []


def test_force_stops_a_vm_running_a_job(fakes, vm):
    (vm / "job").touch()
    result = grow(["20G", "--force"], fakes, vm)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--force, so it will be killed by the stop" in result.stdout


def test_dry_run_prints_the_steps_and_changes_nothing(fakes, vm):
    result = grow(["20G", "--dry-run"], fakes, vm)
    assert result.returncode == 0, result.stdout + result.stderr
    assert multipass_changes(fakes) == [] and calls(fakes, "resize2fs") == []
    for step in (
        f"multipass stop {NAME}",
        f"multipass set local.{NAME}.disk=20G",
        "resize2fs /dev/vda",
    ):
        assert f"would run: {step}" in result.stdout


def test_health_check_sh_passes_size_dry_run_and_the_rest(fakes, vm):
    result = run_script(
        [str(ROOT / "health_check.sh"), "--grow-disk", "20G", "--dry-run", "--", "--name", NAME],
        fakes=fakes,
        env={
            "VM": str(vm),
            "NAME": NAME,
            "ROOTDEV": "/dev/vda",
            "RUNNER_HEALTH_VENV": str(ROOT / ".venv"),
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"would run: multipass set local.{NAME}.disk=20G" in result.stdout
    usage = run_script([str(ROOT / "health_check.sh"), "--grow-disk"], fakes=fakes)
    assert usage.returncode == 4 and "--grow-disk needs a SIZE" in usage.stderr


def test_a_job_check_that_fails_is_no_licence_to_stop(fakes, vm):
    write_fake(fakes[0], "pgrep", "exit 3")
    result = grow(["20G"], fakes, vm)
    assert result.returncode == 1
    assert "FAILED: cannot tell whether a job runs (pgrep exited 3)" in result.stdout
    assert multipass_changes(fakes) == []


# --- the stand-in's `multipass get/set` (tests/testbed/multipass_settings.py) ----------------


@pytest.fixture
def image_vm(tmp_path: Path) -> TestbedVM:
    """A stopped test-bed VM that is only its overlay: what `get`/`set` touch."""
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(overlay), "1G"], check=True)
    (tmp_path / "vm.json").write_text(f'{{"overlay": "{overlay}"}}')
    return TestbedVM(tmp_path)


KEY = "local.assay-bpf-runner.disk"


def test_stand_in_grows_the_overlay_and_gets_it_as_multipass_prints_it(image_vm):
    assert multipass_settings.get(image_vm, KEY) == "1.0GiB"
    multipass_settings.set(image_vm, KEY, "1536M")
    assert multipass_settings.get(image_vm, KEY) == "1.5GiB"


@pytest.mark.parametrize(
    ("key", "value", "message", "code"),
    [
        (KEY, "512M", f"set failed: Invalid setting '{KEY}=512M': Disk can only be expanded", 2),
        (KEY, "0", f"set failed: Invalid setting '{KEY}=0': Need a positive size.", 2),
        (KEY, "x", f"set failed: Invalid setting '{KEY}=x': x is not a valid memory size", 2),
        (
            "local.other.disk",
            "2G",
            "set failed: Cannot update instance settings; instance: other; reason: No such instance",
            2,
        ),
        ("local.assay-bpf-runner.colour", "2G", "set failed: Unrecognized settings key", 2),
        ("client.gui.autostart", "x", "Unrecognized settings key: 'client.gui.autostart'", 1),
    ],
)
def test_stand_in_refuses_as_multipass_does(image_vm, key, value, message, code):
    with pytest.raises(multipass_settings.SettingsError) as refused:
        multipass_settings.set(image_vm, key, value)
    assert refused.value.message.startswith(message)
    assert refused.value.code == code
    assert multipass_settings.get(image_vm, KEY) == "1.0GiB"
