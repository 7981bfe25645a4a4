"""Build and cache the test-bed VM image (a Debian 12 guest standing in for the runner VM).

The image is a raw ext4 root filesystem made with ``mmdebstrap`` and ``mkfs.ext4 -d`` (no loop
devices, no mounts), plus the kernel and the small initrd copied out of it for ``-kernel`` /
``-initrd`` boots, plus an ssh key pair generated per build. It lives in
``tests/testbed/.cache/image-<hash>/`` where ``<hash>`` is a SHA-256 over every recipe file in
this folder and every file under ``tests/testbed/runner/`` (the actions/runner stand-in that is
installed at /opt/actions-runner): change either and the next ``ensure_image()`` rebuilds.

Run ``python -m tests.testbed.image.build`` to build (or reuse) it by hand.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_DIR = Path(__file__).resolve().parent
TESTBED_DIR = IMAGE_DIR.parent
RUNNER_DIR = TESTBED_DIR / "runner"
CACHE_DIR = TESTBED_DIR / ".cache"

SUITE = "bookworm"
MIRROR = os.environ.get("RUNNER_HEALTH_TESTBED_MIRROR", "http://deb.debian.org/debian")
ROOT_SIZE = "2G"
# What the image leaves out (docs, man pages, translations): a smaller image, a faster mkfs.
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
KEEP_IMAGES = 3
SKIPPED_NAMES = {"__pycache__", ".pytest_cache", ".ruff_cache"}


@dataclass(frozen=True)
class Image:
    """One built image: everything qemu and ssh need from the cache."""

    directory: Path
    digest: str

    @property
    def root(self) -> Path:
        return self.directory / "root.img"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def ssh_key(self) -> Path:
        return self.directory / "id_ed25519"

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.root, self.kernel, self.initrd, self.ssh_key))


def _files(top: Path) -> Iterator[Path]:
    """Every regular file under ``top``, sorted, skipping caches that tools write there."""
    if not top.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_NAMES)
        for name in sorted(filenames):
            if not name.endswith(".pyc"):
                yield Path(dirpath) / name


def recipe_digest() -> str:
    """SHA-256 over the recipe (this folder) and the runner stand-in: names, modes, bytes."""
    digest = hashlib.sha256()
    for label, top in (("image", IMAGE_DIR), ("runner", RUNNER_DIR)):
        for path in _files(top):
            executable = os.access(path, os.X_OK)
            digest.update(f"{label}/{path.relative_to(top)}\0{int(executable)}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def ensure_image(cache_dir: Path = CACHE_DIR, log: Callable[[str], None] | None = None) -> Image:
    """Return the cached image for the current recipe, building it first if needed.

    A lock file serialises concurrent builders; the build happens in a scratch folder that is
    renamed into place only when complete, so a killed build never leaves a half image behind.
    """
    say = log or (lambda msg: print(f"testbed: {msg}", file=sys.stderr, flush=True))
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = recipe_digest()
    image = Image(cache_dir / f"image-{digest[:16]}", digest)
    if image.complete():
        return image
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image.complete():
            return image
        if os.geteuid() != 0:
            raise RuntimeError("building the test-bed image needs root (mmdebstrap --mode=root)")
        started = time.monotonic()
        scratch = cache_dir / f"building-{digest[:16]}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        try:
            _build(scratch, cache_dir / "debs", say)
            shutil.rmtree(image.directory, ignore_errors=True)
            scratch.rename(image.directory)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        _prune(cache_dir, keep=KEEP_IMAGES)
        say(f"image {digest[:16]} built in {time.monotonic() - started:.0f} s")
    return image


def _prune(cache_dir: Path, keep: int) -> None:
    """Drop all but the newest ``keep`` images: a session still running on an older one (another
    checkout's runner/ edit) keeps its backing file until it is well out of date."""
    images = sorted(cache_dir.glob("image-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in images[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _run(argv: list[str], log_file: Path, env: dict[str, str] | None = None) -> None:
    with open(log_file, "a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        tail = log_file.read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}):\n" + "\n".join(tail))


def _build(out: Path, debs: Path, say: Callable[[str], None]) -> None:
    """mmdebstrap a rootfs, then make root.img from it and copy the boot files out."""
    log_file = out / "build.log"
    rootfs = out / "rootfs"
    debs.mkdir(parents=True, exist_ok=True)
    _run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "testbed",
            "-f",
            str(out / "id_ed25519"),
        ],
        log_file,
    )
    packages = [
        line.strip()
        for line in (IMAGE_DIR / "packages.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    env = dict(
        os.environ,
        TESTBED_IMAGE_FILES=str(IMAGE_DIR / "files"),
        TESTBED_PUBKEY=str(out / "id_ed25519.pub"),
        TESTBED_RUNNER_DIR=str(RUNNER_DIR),
        TESTBED_DEBS=str(debs),
    )
    argv = [
        "mmdebstrap",
        "--mode=root",
        "--variant=apt",
        "--format=directory",
        f"--include={','.join(packages)}",
        *(f"--dpkgopt={opt}" for opt in DPKG_EXCLUDES),
        # Keep downloaded .debs in the cache so a rebuild (new runner/ files) downloads nothing.
        "--skip=download/empty",
        "--skip=essential/unlink",
        '--setup-hook=mkdir -p "$1/var/cache/apt/archives"',
        f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
        f'--setup-hook={IMAGE_DIR / "setup-hook.sh"} "$1"',
        f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
        f'--customize-hook={IMAGE_DIR / "customize-hook.sh"} "$1"',
        SUITE,
        str(rootfs),
        MIRROR,
    ]
    say(f"mmdebstrap {SUITE} -> {rootfs} (log: {log_file})")
    _run(argv, log_file, env)
    boot = rootfs / "boot"
    shutil.copyfile(next(boot.glob("vmlinuz-*")), out / "vmlinuz")
    shutil.copyfile(next(boot.glob("initrd.img-*")), out / "initrd.img")
    say("mkfs.ext4 -d rootfs root.img")
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "root",
            "-d",
            str(rootfs),
            str(out / "root.img"),
            ROOT_SIZE,
        ],
        log_file,
    )
    shutil.rmtree(rootfs)


if __name__ == "__main__":
    built = ensure_image()
    print(built.directory)
