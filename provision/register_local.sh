#!/usr/bin/env bash
# register_local.sh: register (or re-register) the actions/runner on this VM with a
# registration token, install its service and start it. Run on the VM, as root.
#
# The token never goes on a command line (where ps and shell history would show it): it is
# read from stdin or RUNNER_TOKEN and reaches config.sh as ACTIONS_RUNNER_INPUT_TOKEN, on the
# stdin of the shell that starts it.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: register_local.sh [--force] [--check] [--help]
  echo "$REGISTRATION_TOKEN" | sudo REPO_URL=https://github.com/OWNER/REPO provision/register_local.sh
  gh api -X POST repos/OWNER/REPO/actions/runners/registration-token --jq .token |
    multipass exec assay-bpf-runner -- sudo REPO_URL=https://github.com/OWNER/REPO \
      /opt/runner-health/provision/register_local.sh

Registers the runner at REPO_URL (a repository or organisation URL) under RUNNER_NAME,
installs its systemd service (svc.sh) and starts it. Already registered with the same name
and URL: says so and leaves the registration alone, unless --force.

The service is also made safe from the OS around it (provision/guards.sh): a drop-in with
OOMScoreAdjust=-500 (a job's processes, which the runner sets to 500, die first under memory
pressure) and OOMPolicy=continue (such a kill doesn't stop the unit), enabled at boot
(checked), and ACTIONS_RUNNER_HOOK_JOB_COMPLETED in the runner's
.env naming RUNNER_HEALTH_DIR/remediations/job_completed.sh (added to the other lines, never
replacing a hook already set). A running service picks changes up at a restart, done only
while no job runs.

Token: a registration token (Settings > Actions > Runners > New, or the REST API; it expires
after one hour) on stdin, or in RUNNER_TOKEN. Never as an argument.

Options:
  --force   re-register even when already registered with this name and URL
  --check   only report: exit 0 if registered with this name and URL, 1 if not
  -h, --help

Environment:
  REPO_URL       required: https://github.com/OWNER/REPO or https://github.com/ORG
                 (GitHub Enterprise: https://HOST/OWNER/REPO)
  RUNNER_NAME    default: this host's name
  RUNNER_LABELS  extra labels, comma-separated (default: bpf-lsm,kernel-X.Y of this kernel);
                 config.sh adds self-hosted, Linux and the architecture itself
  RUNNER_DIR     default /opt/actions-runner
  RUNNER_USER    default github-runner (the service and config.sh run as this user)
  RUNNER_TOKEN   the registration token, when not on stdin
  RUNNER_HEALTH_DIR  where runner-health is installed (default /opt/runner-health)
  API_URL        accepted for symmetry with setup.sh (unused: config.sh derives it)

Exit status: 0 registered (or already was), 1 failed, 2 usage or missing input.
EOF
}

die() {
	echo "register_local.sh: $*" >&2
	exit 1
}

die_usage() {
	echo "register_local.sh: $*" >&2
	echo "Try 'register_local.sh --help'." >&2
	exit 2
}

say() { echo "register_local.sh: $*"; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ ! -f $HERE/guards.sh ]]; then
	echo "register_local.sh: $HERE/guards.sh is missing: run it from a runner-health checkout" \
		"(/opt/runner-health/provision/register_local.sh on the VM)" >&2
	exit 1
fi
# shellcheck source=provision/guards.sh
. "$HERE/guards.sh"

FORCE=0
CHECK=0
RUNNER_DIR=${RUNNER_DIR:-/opt/actions-runner}
RUNNER_USER=${RUNNER_USER:-github-runner}
RUNNER_NAME=${RUNNER_NAME:-$(hostname -s 2>/dev/null || hostname)}
REPO_URL=${REPO_URL:-}
RUNNER_LABELS=${RUNNER_LABELS:-bpf-lsm,kernel-$(uname -r | cut -d. -f1,2)}
RUNNER_HEALTH_DIR=${RUNNER_HEALTH_DIR:-/opt/runner-health}

parse_args() {
	while (($#)); do
		case $1 in
		--force) FORCE=1 ;;
		--check) CHECK=1 ;;
		-h | --help)
			usage
			exit 0
			;;
		--token | --token=*) die_usage "the token is never an argument: pipe it on stdin or set RUNNER_TOKEN" ;;
		*) die_usage "unknown argument '$1'" ;;
		esac
		shift
	done
	[[ -n $REPO_URL ]] || die_usage "REPO_URL is not set (https://github.com/OWNER/REPO)"
	[[ $REPO_URL =~ ^https?://[^/]+/[^/]+(/[^/]+)?/?$ ]] ||
		die_usage "REPO_URL must look like https://github.com/OWNER/REPO or https://github.com/ORG, got '$REPO_URL'"
	REPO_URL=${REPO_URL%/}
	REPO_URL=${REPO_URL%.git}
	[[ $RUNNER_NAME =~ ^[A-Za-z0-9._-]+$ ]] || die_usage "RUNNER_NAME: letters, digits, '.', '_' or '-', got '$RUNNER_NAME'"
}

# A JSON string field of .runner (written by config.sh, sometimes with a BOM).
runner_field() {
	local file=$RUNNER_DIR/.runner
	[[ -r $file ]] || return 0
	sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$file" | head -n 1
}

is_registered_here() {
	[[ -f $RUNNER_DIR/.runner ]] &&
		[[ $(runner_field agentName) == "$RUNNER_NAME" ]] &&
		[[ $(runner_field gitHubUrl) == "$REPO_URL" ]]
}

svc() {
	(cd "$RUNNER_DIR" && ./svc.sh "$@")
}

read_token() {
	TOKEN=""
	if [[ ! -t 0 ]]; then
		IFS= read -r TOKEN || true
	fi
	if [[ -z $TOKEN ]]; then
		TOKEN=${RUNNER_TOKEN:-}
	fi
	unset RUNNER_TOKEN
	TOKEN=${TOKEN//[[:space:]]/}
	[[ -n $TOKEN ]] || die_usage "no registration token: pipe it on stdin or set RUNNER_TOKEN"
}

# Installed (svc.sh), protected, enabled at boot (guards.sh) and running.
ensure_service() {
	if [[ ! -s $RUNNER_DIR/.service ]]; then
		say "installing the runner service (svc.sh install $RUNNER_USER)"
		svc install "$RUNNER_USER"
	fi
	protect_runner_service
	local unit
	unit=$(<"$RUNNER_DIR/.service")
	if systemctl is-active --quiet "$unit" 2>/dev/null; then
		say "service $unit is running"
		return
	fi
	say "starting service $unit"
	svc start
}

main() {
	parse_args "$@"
	[[ -x $RUNNER_DIR/config.sh ]] ||
		die "no runner at $RUNNER_DIR (config.sh missing): unpack actions/runner first (provision/setup.sh does)"
	if ((CHECK)); then
		if is_registered_here; then
			say "registered as $RUNNER_NAME at $REPO_URL"
			exit 0
		fi
		say "not registered as $RUNNER_NAME at $REPO_URL"
		exit 1
	fi
	if is_registered_here && ((!FORCE)); then
		say "already registered as $RUNNER_NAME at $REPO_URL: registration unchanged (--force to redo)"
		ensure_service
		exit 0
	fi
	[[ $(id -u) == 0 ]] || die "run as root (svc.sh installs a systemd unit)"
	read_token
	if [[ -f $RUNNER_DIR/.runner ]]; then
		say "replacing the registration $(runner_field agentName) at $(runner_field gitHubUrl)"
		if [[ -s $RUNNER_DIR/.service ]]; then
			svc stop || true
			svc uninstall # config.sh remove refuses while the service is installed
		fi
		as_runner_user "./config.sh remove --local" </dev/null
	fi
	say "registering $RUNNER_NAME at $REPO_URL (labels: $RUNNER_LABELS)"
	local configure
	configure="IFS= read -r ACTIONS_RUNNER_INPUT_TOKEN && export ACTIONS_RUNNER_INPUT_TOKEN && exec ./config.sh"
	configure+=" --unattended --replace --url $(printf '%q' "$REPO_URL")"
	configure+=" --name $(printf '%q' "$RUNNER_NAME") --labels $(printf '%q' "$RUNNER_LABELS") --work _work"
	if ! printf '%s\n' "$TOKEN" | as_runner_user "$configure"; then
		die "config.sh failed; a registration token expires after one hour: get a fresh one"
	fi
	unset TOKEN
	ensure_service
	say "done: the runner should show online at $REPO_URL/settings/actions/runners within a minute"
}

main "$@"
