#!/usr/bin/env bash
# setup_local_multipass.sh: create (or start) the runner VM on a Mac with Multipass, provisioned
# by provision/cloud-init.yaml, and put runner-health in it. Safe to run again: an existing VM
# is started if stopped, never re-created. Written for bash 3.2 too: macOS ships it.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: REPO_URL=https://github.com/OWNER/REPO provision/setup_local_multipass.sh [--help]
       provision/setup_local_multipass.sh --upgrade

Creates the Multipass VM (Ubuntu, provisioned by provision/cloud-init.yaml: eBPF toolchain,
Docker, Rust, BPF LSM on the kernel command line, actions/runner unpacked), or starts it when
it exists but is stopped; then sends this checkout into it and runs provision/setup.sh
--no-admin-token there: runner-health in /opt/runner-health, its config (use_token = false:
no admin token in the VM, where any job might read it), its 5-minute timer for the local
fixes (service, disk, clock) and the hourly free_disk cleanup. It prints the two next steps:
register the runner (a one-hour registration token), and run runner-health on this Mac
(target multipass://VM_NAME, with the admin token) for the GitHub side.

  --upgrade   send this checkout into the existing VM and run provision/setup.sh --upgrade
              there: runner-health updated, its .venv rebuilt, old -> new version printed;
              no token needed, the registration and the config untouched

Environment:
  REPO_URL    https://github.com/OWNER/REPO (or https://github.com/ORG): required, but not
              with --upgrade
  RUNNER_NAME the runner's name at GitHub (default: VM_NAME)
  RUNNER_DOCKER=1  add the runner user to the VM's docker group (root-equivalent for every
              job; the admin token is on this Mac, not in the VM)
  VM_NAME     default assay-bpf-runner
  VM_DISK     default 30G (give it 40G if jobs still hit "No space left on device")
  VM_CPUS     default 4
  VM_MEMORY   default 8G
  VM_IMAGE    default 24.04
  CLOUD_INIT  default provision/cloud-init.yaml
  LAUNCH_TIMEOUT  seconds multipass launch may take (default 1800: packages, Rust, a reboot)
  PIP_*       pip's settings (PIP_INDEX_URL for a mirror, ...) are passed to the .venv build
              in the VM

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
REPO_URL=${REPO_URL:-}
RUNNER_NAME=${RUNNER_NAME:-$VM_NAME}
RUNNER_DOCKER=${RUNNER_DOCKER:-0}
GUEST_DIR=/opt/runner-health
# This checkout, unpacked root-only in the VM for setup.sh to install from (then removed).
GUEST_CHECKOUT=/var/tmp/runner-health-checkout
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
	if [ "$1" != --upgrade ]; then
		echo "$REPO_URL" | grep -Eq '^https?://[^/]+/[^/]+(/[^/]+)?/?$' ||
			die_usage "REPO_URL must be https://github.com/OWNER/REPO (or .../ORG): the VM's config names it, got '$REPO_URL'"
		echo "$RUNNER_NAME" | grep -Eq '^[A-Za-z0-9._-]+$' || die_usage "RUNNER_NAME: letters, digits, '.', '_' or '-', got '$RUNNER_NAME'"
	fi
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

# Send this checkout into the VM and run provision/setup.sh $1 from it, as root.
setup_in_vm() {
	local items="" item env script
	for item in $ITEMS; do
		[ -e "$ROOT/$item" ] && items="$items $item"
	done
	env="RUNNER_HEALTH_DIR=$GUEST_DIR RUNNER_NAME=$(printf %q "$RUNNER_NAME")"
	env="$env REPO_URL=$(printf %q "$REPO_URL") RUNNER_DOCKER=$(printf %q "$RUNNER_DOCKER")"
	# pip's own settings (a mirror, a proxy, local wheels) reach the .venv build in the VM.
	for item in $(env | sed -n 's/^\(PIP_[A-Z0-9_]*\)=.*/\1/p'); do
		env="$env $item=$(printf %q "$(printenv "$item")")"
	done
	script="rm -rf $GUEST_CHECKOUT && mkdir -m 700 $GUEST_CHECKOUT"
	script="$script && tar -xzf - -C $GUEST_CHECKOUT --no-same-owner --warning=no-unknown-keyword"
	script="$script && { env $env bash $GUEST_CHECKOUT/provision/setup.sh $1 </dev/null; rc=\$?; rm -rf $GUEST_CHECKOUT; exit \$rc; }"
	say "sending this checkout to $VM_NAME; provision/setup.sh $1 there:"
	# shellcheck disable=SC2086 # $items: a list of plain names
	(cd "$ROOT" && COPYFILE_DISABLE=1 tar -czf - --exclude __pycache__ --exclude '*.pyc' $items) |
		in_vm sudo bash -c "$script" || die "provision/setup.sh $1 failed in $VM_NAME (its output is above)"
}

next_steps() {
	local labels scope api path=${REPO_URL#*://*/}
	path=${path%/}
	path=${path%.git}
	case $path in
	*/*) scope="repository = \"$path\"" api=repos/$path ;;
	*) scope="organization = \"$path\"" api=orgs/$path ;;
	esac
	# The labels setup.sh derived in the VM (its architecture and kernel).
	labels=$(in_vm sed -n 's/^labels = //p' /etc/runner-health/config.toml 2>/dev/null || true)
	cat <<EOF

Next, 1. register the runner in the VM (a registration token is valid for one hour; the admin
token that asks for it stays on this Mac):

  gh api -X POST $api/actions/runners/registration-token --jq .token |
    multipass exec $VM_NAME -- sudo REPO_URL=$REPO_URL RUNNER_NAME=$RUNNER_NAME \\
      $GUEST_DIR/provision/register_local.sh

2. Watch the GitHub side (online, labels, queue) from this Mac, with the admin token (token_file,
   GITHUB_TOKEN or gh auth token); the VM's own timer already fixes its service, disk and clock:

  cat > runner-health.toml <<'TOML'
target = "multipass://$VM_NAME"
[github]
$scope
[runner]
name = "$RUNNER_NAME"
labels = ${labels:-["self-hosted", "bpf-lsm"]}
TOML
  ./health_check.sh --status
  ./health_check.sh --install-cron                   # check and heal every 5 minutes

Later, to upgrade runner-health in the VM from a newer checkout: $0 --upgrade
EOF
}

main() {
	case ${1:-} in
	-h | --help)
		usage
		exit 0
		;;
	"" | --upgrade) ;;
	*) die_usage "unknown argument '$1' (settings come from the environment)" ;;
	esac
	check_settings "${1:-}"
	if [ "${1:-}" = --upgrade ]; then
		[ "$(vm_state)" != absent ] || die "no VM $VM_NAME to upgrade: run $0 without --upgrade first"
		ensure_vm
		setup_in_vm --upgrade
		exit 0
	fi
	ensure_vm
	setup_in_vm --no-admin-token
	next_steps
}

main "$@"
