#!/usr/bin/env bash
# setup_local_multipass.sh: create (or start) the runner VM on a Mac with Multipass, provisioned
# by provision/cloud-init.yaml, and put runner-health in it. Safe to run again: an existing VM
# is started if stopped, never re-created. Written for bash 3.2 too: macOS ships it.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: provision/setup_local_multipass.sh [--help]

Creates the Multipass VM (Ubuntu, provisioned by provision/cloud-init.yaml: eBPF toolchain,
Docker, Rust, BPF LSM on the kernel command line, actions/runner unpacked), or starts it when
it exists but is stopped; then copies runner-health into it (/opt/runner-health) with the
hourly free_disk cleanup, and prints how to register the runner.

Environment:
  VM_NAME     default assay-bpf-runner
  VM_DISK     default 30G (give it 40G if jobs still hit "No space left on device")
  VM_CPUS     default 4
  VM_MEMORY   default 8G
  VM_IMAGE    default 24.04
  CLOUD_INIT  default provision/cloud-init.yaml
  REPO_URL    https://github.com/OWNER/REPO: only fills in the printed next step
  LAUNCH_TIMEOUT  seconds multipass launch may take (default 1800: packages, Rust, a reboot)

Exit status: 0 done, 1 a step failed, 2 bad settings.
EOF
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
VM_NAME=${VM_NAME:-assay-bpf-runner}
VM_DISK=${VM_DISK:-30G}
VM_CPUS=${VM_CPUS:-4}
VM_MEMORY=${VM_MEMORY:-8G}
VM_IMAGE=${VM_IMAGE:-24.04}
CLOUD_INIT=${CLOUD_INIT:-$HERE/cloud-init.yaml}
LAUNCH_TIMEOUT=${LAUNCH_TIMEOUT:-1800}
REPO_URL=${REPO_URL:-https://github.com/OWNER/REPO}
GUEST_DIR=/opt/runner-health
# What goes into the VM: the suite and its scripts, not the venv or reports.
ITEMS="checks remediations runner_health provision conftest.py pyproject.toml requirements.lock Makefile health_check.sh runner-health.example.toml README.md"

say() { echo "setup_local_multipass.sh: $*"; }
die() {
	echo "setup_local_multipass.sh: $*" >&2
	exit 1
}
die_usage() {
	echo "setup_local_multipass.sh: $*" >&2
	echo "Try 'setup_local_multipass.sh --help'." >&2
	exit 2
}

check_settings() {
	local var value
	for var in VM_DISK VM_MEMORY; do
		eval "value=\$$var"
		echo "$value" | grep -Eq '^[0-9]+[KMG]?$' || die_usage "$var must be a size like 30G, got '$value'"
	done
	echo "$VM_CPUS" | grep -Eq '^[1-9][0-9]*$' || die_usage "VM_CPUS must be a number, got '$VM_CPUS'"
	echo "$VM_NAME" | grep -Eq '^[A-Za-z][A-Za-z0-9-]*$' || die_usage "VM_NAME: letters, digits and '-', got '$VM_NAME'"
	[ -f "$CLOUD_INIT" ] || die_usage "no cloud-init file at $CLOUD_INIT"
	command -v multipass >/dev/null ||
		die "multipass is not installed: brew install --cask multipass (https://multipass.run)"
}

# The VM's state as Multipass names it (Running, Stopped, ...), or "absent".
vm_state() {
	local out err rc=0
	err=$(mktemp)
	out=$(multipass info "$VM_NAME" --format json 2>"$err") || rc=$?
	if [ "$rc" -ne 0 ]; then
		if grep -q "does not exist" "$err"; then
			rm -f "$err"
			echo absent
			return
		fi
		cat "$err" >&2
		rm -f "$err"
		die "multipass info $VM_NAME failed (exit $rc)"
	fi
	rm -f "$err"
	printf '%s\n' "$out" | sed -n 's/.*"state"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1
}

in_vm() { multipass exec "$VM_NAME" -- "$@"; }

# cloud-init reboots the VM once (BPF LSM on the kernel command line): wait until it is back.
wait_ready() {
	local i out
	for i in $(seq 1 120); do
		out=$(in_vm cloud-init status 2>&1 || true)
		case $out in
		*"status: done"*) return 0 ;;
		*"status: error"* | *"status: degraded"*)
			say "WARNING: cloud-init reports problems: multipass exec $VM_NAME -- cloud-init status --long"
			return 0
			;;
		*"status: disabled"*) return 0 ;; # no datasource: cloud-init does nothing this boot
		*"status: running"* | *"not started"*) ;;
		*)
			# No cloud-init in the image (or the VM is rebooting): ready once commands run.
			if in_vm true >/dev/null 2>&1 && ! in_vm sh -c 'command -v cloud-init' >/dev/null 2>&1; then
				return 0
			fi
			;;
		esac
		[ "$i" -eq 1 ] && say "waiting for cloud-init to finish in $VM_NAME (it reboots once)"
		sleep "${WAIT_STEP:-5}"
	done
	die "$VM_NAME did not finish cloud-init in time: multipass exec $VM_NAME -- cloud-init status --long"
}

ensure_vm() {
	local state
	state=$(vm_state)
	case $state in
	absent)
		say "launching $VM_NAME (Ubuntu $VM_IMAGE, $VM_CPUS CPUs, $VM_MEMORY memory, $VM_DISK disk)"
		multipass launch "$VM_IMAGE" --name "$VM_NAME" --cpus "$VM_CPUS" --memory "$VM_MEMORY" \
			--disk "$VM_DISK" --cloud-init "$CLOUD_INIT" --timeout "$LAUNCH_TIMEOUT"
		wait_ready
		say "launched $VM_NAME"
		;;
	Running)
		say "$VM_NAME already exists and is running: not launched again (VM_DISK etc. apply to new VMs only)"
		;;
	Stopped | Suspended | Starting | Restarting | "Delayed Shutdown")
		say "$VM_NAME already exists ($state): starting it"
		multipass start "$VM_NAME"
		say "started $VM_NAME"
		;;
	Deleted)
		die "$VM_NAME is deleted: multipass recover $VM_NAME (or multipass purge, then run this again)"
		;;
	*)
		die "$VM_NAME is in state '$state': try multipass restart $VM_NAME"
		;;
	esac
}

sha256() {
	if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi | cut -d' ' -f1
}

# A fingerprint of the files that go into the VM, so an unchanged copy is not sent again.
stamp() {
	local item
	(
		cd "$ROOT"
		for item in $ITEMS; do
			[ -e "$item" ] || continue
			find "$item" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort
		done | while IFS= read -r f; do
			printf '%s %s\n' "$(sha256 <"$f")" "$f"
		done
	) | sha256
}

sync_runner_health() {
	local want have items="" item
	want=$(stamp)
	have=$(in_vm cat "$GUEST_DIR/.stamp" 2>/dev/null || true)
	if [ "$want" = "$have" ]; then
		say "runner-health in $VM_NAME:$GUEST_DIR is up to date"
	else
		for item in $ITEMS; do
			[ -e "$ROOT/$item" ] && items="$items $item"
		done
		say "copying runner-health to $VM_NAME:$GUEST_DIR"
		# shellcheck disable=SC2086 # $items: a list of plain names
		(cd "$ROOT" && COPYFILE_DISABLE=1 tar -czf - --exclude __pycache__ --exclude '*.pyc' $items) |
			in_vm sudo bash -c "mkdir -p $GUEST_DIR && tar -xzf - -C $GUEST_DIR --no-same-owner --warning=no-unknown-keyword && echo $want > $GUEST_DIR/.stamp"
	fi
	# Idempotent, and each says whether it changed anything.
	in_vm sudo bash "$GUEST_DIR/provision/setup.sh" --free-disk-cron
}

next_steps() {
	cat <<EOF

Next: register the runner (a registration token is valid for one hour):

  gh api -X POST repos/${REPO_URL#https://github.com/}/actions/runners/registration-token --jq .token |
    multipass exec $VM_NAME -- sudo REPO_URL=$REPO_URL RUNNER_NAME=$VM_NAME \\
      $GUEST_DIR/provision/register_local.sh

Then watch it from this Mac:

  cp runner-health.example.toml runner-health.toml   # target = "multipass://$VM_NAME", repository, labels
  ./health_check.sh --status
  ./health_check.sh --install-cron                   # check and heal every 5 minutes
EOF
}

main() {
	case ${1:-} in
	-h | --help)
		usage
		exit 0
		;;
	"") ;;
	*) die_usage "unknown argument '$1' (settings come from the environment)" ;;
	esac
	check_settings
	ensure_vm
	sync_runner_health
	next_steps
}

main "$@"
