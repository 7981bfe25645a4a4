#!/bin/sh
# mmdebstrap setup hook for the test-bed VM image. Runs on the host before any package is
# installed; $1 is the new root. It asks initramfs-tools for a small MODULES=list initrd (the
# kernel package builds it during installation: half the build time of the default initrd).
set -eu
root="$1"
files="$TESTBED_IMAGE_FILES"

install -D -m 0644 "$files/initramfs-modules" \
    "$root/usr/share/initramfs-tools/modules.d/testbed-vm"
mkdir -p "$root/etc/initramfs-tools/conf.d"
printf 'MODULES=list\n' > "$root/etc/initramfs-tools/conf.d/testbed-vm"
