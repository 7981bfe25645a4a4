#!/bin/sh
# mmdebstrap customize hook for the test-bed VM image (stands in for a Multipass/cloud runner
# VM). Runs on the host after all packages are installed; $1 is the new root. Every path it
# writes is under "$root"; guest commands run only through `chroot "$root"`.
#
# Environment (set by build.py):
#   TESTBED_IMAGE_FILES  this folder's files/
#   TESTBED_PUBKEY       the per-build ssh public key that root, ubuntu and github-runner accept
#   TESTBED_RUNNER_DIR   tests/testbed/runner (the actions/runner stand-in), may be missing
set -eu
root="$1"
files="$TESTBED_IMAGE_FILES"

# Identity, time, network, mounts.
install -m 0644 "$files/hostname" "$root/etc/hostname"
install -m 0644 "$files/hosts" "$root/etc/hosts"
install -m 0644 "$files/fstab" "$root/etc/fstab"
install -m 0644 "$files/chrony.conf" "$root/etc/chrony/chrony.conf"
install -D -m 0644 "$files/10-user-net.network" "$root/etc/systemd/network/10-user-net.network"
install -D -m 0644 "$files/sshd-testbed.conf" "$root/etc/ssh/sshd_config.d/testbed.conf"
install -D -m 0440 "$files/sudoers-ubuntu" "$root/etc/sudoers.d/90-ubuntu"
install -D -m 0644 "$files/cloud-init-testbed.cfg" "$root/etc/cloud/cloud.cfg.d/90-testbed.cfg"

# Users: fixed ids so the host can make the work disk github-runner's (1001).
chroot "$root" useradd --create-home --uid 1000 --user-group --shell /bin/bash ubuntu
chroot "$root" useradd --create-home --uid 1001 --user-group --shell /bin/bash github-runner
# "*" (no password, not locked) so sshd accepts key logins whatever its PAM settings.
chroot "$root" usermod --password '*' ubuntu
chroot "$root" usermod --password '*' github-runner
for home in /root /home/ubuntu /home/github-runner; do
    install -d -m 0700 "$root$home/.ssh"
    install -m 0600 "$TESTBED_PUBKEY" "$root$home/.ssh/authorized_keys"
done
chroot "$root" chown -R ubuntu:ubuntu /home/ubuntu/.ssh
chroot "$root" chown -R github-runner:github-runner /home/github-runner/.ssh

# The runner stand-in at /opt/actions-runner, github-runner's, executable bits kept.
install -d -m 0755 "$root/opt/actions-runner"
if [ -d "$TESTBED_RUNNER_DIR" ]; then
    cp -R --preserve=mode,timestamps "$TESTBED_RUNNER_DIR/." "$root/opt/actions-runner/"
    find "$root/opt/actions-runner" \( -name __pycache__ -o -name '*.pyc' \) -prune \
        -exec rm -rf {} +
fi
install -d -m 0755 "$root/opt/actions-runner/_work"
chroot "$root" chown -R github-runner:github-runner /opt/actions-runner

# Services: networkd for DHCP; nothing that loads the slow TCG guest in the background.
chroot "$root" systemctl enable systemd-networkd.service
chroot "$root" systemctl mask systemd-networkd-wait-online.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service

# Fewer bytes in the image: no apt lists or cached packages (build.py keeps its own cache).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
