"""The disposable test-bed VM: a Debian 12 QEMU guest standing in for the runner VM.

The real runner VM is a Multipass instance (or a cloud VM); tests can't have one, so they boot
this one: TCG-emulated, BPF LSM on the kernel command line, a copy-on-write overlay over the
cached image per session, a fresh 256 MiB work disk, and a host chronyd as its time server.

Everything a second process needs (``bin/multipass`` runs as one) is in ``<state_dir>/vm.json``:
``TestbedVM(state_dir)`` picks it up, so both sides drive the same VM.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import fcntl
import functools
import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.testbed.image.build import CACHE_DIR, Image, ensure_image

VM_NAME = "assay-bpf-runner"
SSH_HOST = "testbed"
DEFAULT_LSM = "lockdown,capability,landlock,yama,apparmor,bpf"
TIME_SERVER_PORT = 11123
WORK_DISK_SIZE = "256M"
GITHUB_RUNNER_UID = 1001
MEMORY = "2048M"
CPUS = 2
BOOT_TIMEOUT = 300.0
STOP_TIMEOUT = 90.0
SSH_USERS = ("root", "ubuntu", "github-runner")
MULTIPASS_BIN = Path(__file__).resolve().parent / "bin"


def _log(msg: str) -> None:
    print(f"testbed: {msg}", file=sys.stderr, flush=True)


# --- processes ------------------------------------------------------------------------------


def _become_subreaper() -> None:
    """Adopt daemonised qemu/chronyd (ours or bin/multipass's) so we can reap them: a container's
    PID 1 may not reap, and an unreaped qemu would look alive to ``pgrep``."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _reap_orphans() -> None:
    """Reap our exited qemu/chronyd children, and only those (never another test's Popen).

    ``-daemonize`` leaves an intermediate process that, with us as subreaper, becomes ours."""
    me = str(os.getpid())
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            stat = stat_file.read_text()
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] == "Z" and fields[1] == me and comm.startswith(("qemu-system", "chronyd")):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(int(stat_file.parent.name), os.WNOHANG)


def _alive(pid: int | None, marker: str) -> bool:
    """True if ``pid`` runs (not a zombie) and its command line contains ``marker``."""
    _reap_orphans()
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and marker in cmdline


def _terminate(pid: int | None, marker: str, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, exactly this pid (if it still is the process we started)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _alive(pid, marker):
            return
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid, marker):
            time.sleep(0.1)


def _wait_gone(pid: int | None, marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid, marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _free_port(preferred: int | None = None) -> int:
    for port in (preferred or 0, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def _udp_port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


# --- the host time server -------------------------------------------------------------------

CHRONYD_CONF = """\
# Test-bed time server for the guest (10.0.2.2:{port} from inside the VM). Runs with -x: it
# never touches the host clock, and it is not the system chrony (own pid/drift files, no cmdport).
port {port}
bindaddress 127.0.0.1
local stratum 8
allow 127.0.0.1
cmdport 0
pidfile {state}/chronyd.pid
driftfile {state}/chronyd.drift
user root
"""


def start_time_server(state_dir: Path, port: int = TIME_SERVER_PORT) -> int | None:
    """Start the host chronyd (``chronyd -x``) that serves the guest; return its pid.

    Returns None when another test-bed's chronyd already serves the port (two sessions on one
    host): that server tells the same host time, so the guest syncs all the same.
    """
    state_dir = state_dir.resolve()
    pidfile = state_dir / "chronyd.pid"
    pid = _read_pid(pidfile)
    if _alive(pid, str(state_dir)):
        return pid
    if _udp_port_busy(port):
        _log(f"127.0.0.1:{port} is already served (another test bed?); using that time server")
        return None
    conf = state_dir / "chronyd.conf"
    conf.write_text(CHRONYD_CONF.format(port=port, state=state_dir))
    pidfile.unlink(missing_ok=True)
    subprocess.run(
        ["chronyd", "-x", "-f", str(conf), "-l", str(state_dir / "chronyd.log")],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    deadline = time.monotonic() + 10
    while (pid := _read_pid(pidfile)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid is None:
        raise RuntimeError(f"chronyd wrote no pidfile; see {state_dir / 'chronyd.log'}")
    return pid


def stop_time_server(state_dir: Path) -> None:
    """Stop the host chronyd that ``start_time_server(state_dir)`` started (if any)."""
    state_dir = state_dir.resolve()
    _terminate(_read_pid(state_dir / "chronyd.pid"), str(state_dir))


def time_server_running(state_dir: Path) -> bool:
    state_dir = state_dir.resolve()
    return _alive(_read_pid(state_dir / "chronyd.pid"), str(state_dir))


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# --- the VM ---------------------------------------------------------------------------------


class TestbedVM:
    """One test-bed VM and its state folder; see tests/testbed/README.md for the contract."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.state_file = self.state_dir / "vm.json"
        self.image: Image | None = None

    # state file ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, **changes: Any) -> dict[str, Any]:
        data = self.state() | changes
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_file)
        return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One start/stop at a time per VM, across processes (pytest and bin/multipass)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # public API ----------------------------------------------------------------------------

    @property
    def ssh_config(self) -> Path:
        """ssh_config with Host ``testbed`` (multiplexed, no host-key checks): for testinfra's
        ``--ssh-config`` and plain ``ssh -F``."""
        return self.state_dir / "ssh_config"

    def ssh_target(self, user: str = "root") -> str:
        """testinfra host spec; pair it with ``ssh_config=str(vm.ssh_config)``."""
        return f"ssh://{user}@{SSH_HOST}"

    @property
    def ssh_key(self) -> Path:
        return Path(self.state()["ssh_key"])

    def ensure_image(self) -> Path:
        """Build or reuse the cached image (keyed by its recipe's SHA-256); return root.img."""
        self.image = ensure_image(CACHE_DIR)
        return self.image.root

    def boot(self, lsm: str = DEFAULT_LSM, *, seed: Path | None = None) -> None:
        """First boot of a session: fresh overlay and work disk, time server, wait for ssh.

        ``lsm`` becomes the kernel's ``lsm=`` list for this and every later ``start()``.
        ``seed`` is a NoCloud seed disk (``nocloud_seed()``) attached read-only to this and
        every later launch, as Multipass keeps its cloud-init ISO attached: with it, cloud-init
        in the guest provisions the VM from its user-data on this first boot. Without it
        cloud-init finds no datasource and stays disabled. ssh comes up while cloud-init may
        still be running: wait with ``cloud-init status --wait``.
        """
        _become_subreaper()
        self.ensure_image()
        assert self.image is not None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.is_running():
            self.stop()
        overlay = self.state_dir / "overlay.qcow2"
        work_disk = self.state_dir / "work.img"
        overlay.unlink(missing_ok=True)
        work_disk.unlink(missing_ok=True)
        subprocess.run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                str(self.image.root),
                "-F",
                "raw",
                str(overlay),
            ],
            check=True,
        )
        subprocess.run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                "work",
                "-E",
                f"root_owner={GITHUB_RUNNER_UID}:{GITHUB_RUNNER_UID}",
                str(work_disk),
                WORK_DISK_SIZE,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self._save(
            name=VM_NAME,
            owner_pid=os.getpid(),
            image_dir=str(self.image.directory),
            image_hash=self.image.digest,
            kernel=str(self.image.kernel),
            initrd=str(self.image.initrd),
            ssh_key=str(self.image.ssh_key),
            overlay=str(overlay),
            work_disk=str(work_disk),
            lsm=lsm,
            seed=str(Path(seed).resolve()) if seed else None,
            ssh_config=str(self.ssh_config),
            qemu_pid=None,
            chronyd_pid=None,
            phase="stopped",
        )
        _register_cleanup(self.state_dir)
        self.start()

    def start(self, lsm: str | None = None, timeout: float = BOOT_TIMEOUT) -> None:
        """Launch qemu on the existing overlay (``multipass start``) and wait for ssh.

        ``lsm`` overrides the boot-time list for this launch only; a later plain ``start()``
        (or ``multipass start``) goes back to it.
        """
        state = self.state()
        if not state:
            raise RuntimeError(f"{self.state_file} missing: boot() the VM first")
        with self._locked():
            if self.is_running():
                return
            chronyd_pid = start_time_server(self.state_dir)
            started = time.monotonic()
            port = _free_port(state.get("ssh_port"))
            self._write_ssh_config(port)
            current_lsm = lsm or state["lsm"]
            argv = self._qemu_argv(state, port, current_lsm)
            pidfile = self.state_dir / "qemu.pid"
            pidfile.unlink(missing_ok=True)
            launch = subprocess.run(
                argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
            )
            if launch.returncode != 0:
                raise RuntimeError(f"qemu failed to start: {launch.stderr.strip()}")
            qemu_pid = _read_pid(pidfile)
            self._save(
                ssh_port=port,
                qemu_pid=qemu_pid,
                qemu_argv=argv,
                current_lsm=current_lsm,
                chronyd_pid=chronyd_pid,
                phase="starting",
            )
            _log(
                f"qemu pid {qemu_pid} (accel={_accel(state['kernel'])}, lsm={current_lsm}), waiting for ssh on :{port}"
            )
            try:
                self._wait_for_ssh(timeout)
            except BaseException:
                _terminate(qemu_pid, state["overlay"])
                self._save(qemu_pid=None, phase="stopped")
                raise
            self._save(phase="running")
            _log(f"ssh up {time.monotonic() - started:.1f} s after launch")

    def stop(self, timeout: float = STOP_TIMEOUT, *, force: bool = False) -> None:
        """Power the guest off cleanly (``multipass stop``); the overlay keeps its contents.
        ``force`` kills qemu at once, as ``multipass stop --force`` does (Poweroff: the VM
        process is killed, qemu_virtual_machine.cpp): that works on a paused guest too."""
        state = self.state()
        if not state:
            return
        with self._locked():
            pid = state.get("qemu_pid")
            if _alive(pid, state["overlay"]) and force:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, state["overlay"], timeout)
            elif _alive(pid, state["overlay"]):
                self._save(phase="stopping")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.ssh("systemctl --no-block poweroff", check=False, timeout=20)
                if not _wait_gone(pid, state["overlay"], timeout):
                    _log(f"guest did not power off in {timeout:.0f} s; terminating qemu {pid}")
                    _terminate(pid, state["overlay"])
            self._close_ssh_masters()
            self._save(qemu_pid=None, phase="stopped")

    def shutdown(self) -> None:
        """End of session: power off, wait for qemu to exit, stop the host chronyd."""
        try:
            self.stop(timeout=30)
        finally:
            kill_testbed(self.state_dir)

    def is_running(self) -> bool:
        state = self.state()
        return _alive(state.get("qemu_pid"), state.get("overlay", str(self.state_dir)))

    def ssh(
        self,
        cmd: str,
        *,
        input: bytes | None = None,
        user: str = "root",
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` (a shell command line) in the guest as ``user``; text output."""
        argv = ["ssh", "-F", str(self.ssh_config), "-l", user, SSH_HOST, "--", cmd]
        done = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        result = subprocess.CompletedProcess(
            argv,
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, argv, result.stdout, result.stderr
            )
        return result

    # helpers for fault-injection tests ---------------------------------------------------

    def pause(self) -> None:
        """Freeze the guest (SIGSTOP to qemu), as a Mac's sleep leaves it: the process runs
        on for Multipass, nothing in the VM answers. ``resume()`` or a forced stop ends it."""
        self._signal_qemu(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_qemu(signal.SIGCONT)

    def lose_track(self) -> None:
        """Multipass's state for a running VM becomes Unknown (its SSH wait timed out,
        base_virtual_machine.cpp ``timeout_ssh``): bin/multipass then behaves as for Unknown."""
        self._save(phase="unknown")

    def set_daemon(self, fault: str | None) -> None:
        """multipassd for bin/multipass: None (answers), "down" (no socket) or "hung"."""
        self._save(daemon=fault)

    def _signal_qemu(self, sig: signal.Signals) -> None:
        state = self.state()
        if not _alive(state.get("qemu_pid"), state.get("overlay", str(self.state_dir))):
            raise RuntimeError("the VM is not running")
        os.kill(state["qemu_pid"], sig)

    def clock_offset(self) -> float:
        """Guest clock minus host clock, in seconds (ssh round trip halved)."""
        before = time.time()
        guest = float(self.ssh("date +%s.%N").stdout)
        after = time.time()
        return guest - (before + after) / 2

    def start_time_server(self) -> None:
        self._save(chronyd_pid=start_time_server(self.state_dir))

    def stop_time_server(self) -> None:
        stop_time_server(self.state_dir)
        self._save(chronyd_pid=None)

    @property
    def serial_log(self) -> Path:
        return self.state_dir / "serial.log"

    # internals ------------------------------------------------------------------------------

    def _control_dir(self) -> Path:
        """Where ssh keeps its multiplexing sockets; short enough for a unix socket path.

        A socket path holds at most 107 bytes, and ssh binds ``<dir>/<%C: 40 hex>.<16 random>``
        before renaming it: the folder gets 107 - 58 = 49 of them."""
        wanted = self.state_dir / "cm"
        if len(str(wanted)) > 49:
            digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
            wanted = Path(tempfile.gettempdir()) / f"testbed-cm-{os.getuid()}-{digest}"
        wanted.mkdir(mode=0o700, parents=True, exist_ok=True)
        return wanted

    def _write_ssh_config(self, port: int) -> None:
        key = self.state()["ssh_key"]
        self.ssh_config.write_text(
            "# Test-bed VM (a stand-in for the runner VM): every boot shares the image's host keys.\n"
            f"Host {SSH_HOST}\n"
            "  HostName 127.0.0.1\n"
            f"  Port {port}\n"
            "  User root\n"
            f"  IdentityFile {key}\n"
            "  IdentitiesOnly yes\n"
            "  BatchMode yes\n"
            "  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n"
            "  LogLevel ERROR\n"
            "  ConnectTimeout 10\n"
            "  ServerAliveInterval 5\n"
            "  ServerAliveCountMax 6\n"
            "  ControlMaster auto\n"
            f"  ControlPath {self._control_dir()}/%C\n"
            "  ControlPersist 60\n"
        )

    def _qemu_argv(self, state: dict[str, Any], port: int, lsm: str) -> list[str]:
        append = f"root=/dev/vda rw console=ttyS0 quiet lsm={lsm}"
        # The NoCloud seed (if any) is the third disk, /dev/vdc: after the root and work disks,
        # so their names don't change.
        seed = state.get("seed")
        seed_drive = ["-drive", f"file={seed},if=virtio,format=raw,readonly=on"] if seed else []
        return [
            "qemu-system-x86_64",
            "-name", VM_NAME,
            "-nodefaults", "-no-user-config",
            "-accel", _accel(state["kernel"]),
            "-cpu", "max",
            "-smp", str(CPUS),
            "-m", MEMORY,
            "-kernel", state["kernel"],
            "-initrd", state["initrd"],
            "-append", append,
            "-drive", f"file={state['overlay']},if=virtio,format=qcow2,discard=unmap",
            "-drive", f"file={state['work_disk']},if=virtio,format=raw",
            *seed_drive,
            "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", "virtio-net-pci,netdev=net0",
            "-device", "virtio-rng-pci",
            "-chardev", f"file,id=serial0,path={self.serial_log},append=on",
            "-serial", "chardev:serial0",
            "-display", "none",
            "-daemonize",
            "-pidfile", str(self.state_dir / "qemu.pid"),
        ]  # fmt: skip

    def _wait_for_ssh(self, timeout: float) -> None:
        state = self.state()
        deadline = time.monotonic() + timeout
        while True:
            if not _alive(state["qemu_pid"], state["overlay"]):
                raise RuntimeError(f"qemu exited during boot; serial log:\n{self._serial_tail()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.ssh("true", check=False, timeout=20).returncode == 0:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no ssh after {timeout:.0f} s; serial log:\n{self._serial_tail()}"
                )
            time.sleep(1)

    def _serial_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.serial_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no serial log)"

    def _close_ssh_masters(self) -> None:
        if not self.ssh_config.exists():
            return
        for user in SSH_USERS:
            subprocess.run(
                ["ssh", "-F", str(self.ssh_config), "-l", user, "-O", "exit", SSH_HOST],
                capture_output=True,
                check=False,
                timeout=10,
            )


def nocloud_seed(
    dest: Path,
    user_data: str | bytes,
    meta_data: str,
    *,
    vendor_data: str | bytes | None = None,
    network_config: str | None = None,
) -> Path:
    """Write a NoCloud seed disk for ``boot(seed=...)``: an ISO 9660 image labelled ``cidata``
    holding ``user-data``, ``meta-data`` (and ``vendor-data`` / ``network-config`` if given),
    what ``cloud-localds`` and Multipass make. Built with ``genisoimage``: no loop mounts."""
    dest = Path(dest).resolve()
    files = {"user-data": user_data, "meta-data": meta_data}
    if vendor_data is not None:
        files["vendor-data"] = vendor_data
    if network_config is not None:
        files["network-config"] = network_config
    with tempfile.TemporaryDirectory(prefix="nocloud-") as tmp:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            (Path(tmp) / name).write_bytes(data)
        subprocess.run(
            ["genisoimage", "-quiet", "-output", str(dest), "-volid", "cidata", "-joliet",
             "-rock", *sorted(files)],
            cwd=tmp,
            check=True,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    return dest


TCG = "tcg,thread=multi"


@functools.cache
def _accel(kernel: str) -> str:
    """KVM only where a quick probe boots this kernel under it (to its no-root panic); else TCG.

    This host's /dev/kvm is paravirtual and crashes or hangs a stock kernel, so the probe is
    bounded; RUNNER_HEALTH_TESTBED_ACCEL skips it.
    """
    if os.environ.get("RUNNER_HEALTH_TESTBED_ACCEL"):
        return os.environ["RUNNER_HEALTH_TESTBED_ACCEL"]
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return TCG
    probe = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "max", "-m", "256M", "-nodefaults",
             "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
             "-kernel", kernel, "-append", "console=ttyS0 panic=-1"]  # fmt: skip
    try:
        done = subprocess.run(probe, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
        booted = b"Kernel panic" in done.stdout or b"VFS: Unable to mount root" in done.stdout
    except (OSError, subprocess.TimeoutExpired):
        booted = False
    _log(f"KVM probe: {'the kernel boots under KVM' if booted else 'KVM unusable here, using TCG'}")
    return "kvm" if booted else TCG


# --- leave nothing running -----------------------------------------------------------------

_CLEANUPS: set[Path] = set()


def _register_cleanup(state_dir: Path) -> None:
    """atexit safety net for the process that booted the VM (finalizers are the first line)."""
    if not _CLEANUPS:
        atexit.register(_cleanup_all)
    _CLEANUPS.add(state_dir)


def _cleanup_all() -> None:
    for state_dir in list(_CLEANUPS):
        kill_testbed(state_dir)


def kill_testbed(state_dir: Path) -> None:
    """Hard stop: terminate exactly the qemu and chronyd recorded for this state dir."""
    vm = TestbedVM(state_dir)
    state = vm.state()
    _terminate(state.get("qemu_pid"), state.get("overlay", str(vm.state_dir)))
    _terminate(_read_pid(vm.state_dir / "qemu.pid"), state.get("overlay", str(vm.state_dir)))
    stop_time_server(vm.state_dir)
    with contextlib.suppress(Exception):
        vm._close_ssh_masters()


def kill_stale_testbeds(base: Path | None = None) -> None:
    """Stop qemu/chronyd left by earlier pytest sessions that died (SIGKILL, OOM)."""
    base = base or Path(tempfile.gettempdir())
    for state_file in base.glob("pytest-of-*/pytest-*/testbed*/vm.json"):
        try:
            owner = int(json.loads(state_file.read_text()).get("owner_pid") or 0)
        except (OSError, ValueError):
            continue
        if owner and owner != os.getpid() and not Path(f"/proc/{owner}").exists():
            kill_testbed(state_file.parent)


def shell_quote(args: list[str]) -> str:
    """Quote argv for a remote shell, one argument at a time (as ``multipass exec`` does)."""
    return " ".join(shlex.quote(a) for a in args)


def multipass_env(vm: TestbedVM, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment in which ``multipass`` is the stand-in driving ``vm``."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = f"{MULTIPASS_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RUNNER_HEALTH_TESTBED"] = str(vm.state_dir)
    return env
