#!/usr/bin/env bash
# job_completed.sh: clean one job's leftovers the moment it ends (the runner's job-completed hook).
#
# Installed by provision/setup.sh (and cloud-init) as a line in the runner's .env:
#   ACTIONS_RUNNER_HOOK_JOB_COMPLETED=/opt/runner-health/remediations/job_completed.sh
# The runner runs it as the job's last step ("Complete runner"), as the runner user, with the
# job's environment: actions/runner src/Runner.Worker/JobExtension.cs reads that variable and
# registers the hook as a post-job step before any container step registers its own; post-job
# steps are a stack (ExecutionContext.cs, PostJobSteps), so the runner's own "Stop containers"
# has already run when this starts. A hook that fails fails the job: this always exits 0, and
# every command in it is bounded in time.
#
# What it removes, as the runner user (it can remove only what that user may):
#   1. Docker containers carrying this runner's label (left running when "Stop containers"
#      failed or was cut short), and the label's networks. The label is what the runner gives
#      every job and service container it starts: the first 6 hex digits of the SHA-256 of its
#      .runner file, lowercased (src/Runner.Worker/Container/DockerCommandManager.cs,
#      DockerInstanceLabel; src/Runner.Sdk/Util/IOUtil.cs, GetSha256Hash). Containers a step
#      started with `docker run` carry no label: nothing says whose they are, so they stay
#      (free_disk.sh prunes them once stopped).
#   2. Entries in /tmp this user made during this job (changed since its Runner.Worker started):
#      files, links and folders (a folder whole, on /tmp's filesystem only); never a socket or a
#      FIFO (a service's), never systemd-private-*; only when no other job runs on the machine
#      (another job's files would look the same).
#
# Usage: job_completed.sh [--dry-run]      (RUNNER_DIR: the runner, when not found from the job)
set -uo pipefail

DRY_RUN=0
STEP_TIMEOUT=${STEP_TIMEOUT:-20} # seconds, for each docker or find command
TMP_DIR=${TMP_DIR:-/tmp}

say() { printf 'job_completed.sh: %s\n' "$*"; }

# Control characters of untrusted text (names a job chose) as '?', at most 200 characters.
clean() {
	local text=${1//[[:cntrl:]]/?}
	printf '%s' "${text:0:200}"
}

# PIDs of this user's Runner.Worker processes (matched as free_disk.sh matches them: the
# program, or an interpreter running it). Another user's jobs make no files of ours.
WORKER_RE='^([^ ]*/)?((python[0-9.]*|bash|sh|dotnet) +([^ ]*/)?)?Runner[.]Worker( |$)'
workers() {
	local f line me
	me=$(id -u)
	for f in /proc/[0-9]*/cmdline; do
		line=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
		if [[ $line =~ $WORKER_RE && $(stat -c %u "${f%/cmdline}" 2>/dev/null) == "$me" ]]; then
			f=${f#/proc/}
			echo "${f%/cmdline}"
		fi
	done
}

# This job's Runner.Worker: the nearest ancestor that is one. Sets WORKER_PID and WORKER_PROG.
find_worker() {
	local pid=$$ line
	WORKER_PID="" WORKER_PROG=""
	while ((pid > 1)); do
		line=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
		if [[ $line =~ $WORKER_RE ]]; then
			WORKER_PID=$pid
			WORKER_PROG=${line%%Runner.Worker*}Runner.Worker
			WORKER_PROG=${WORKER_PROG##* }
			return 0
		fi
		# stat is "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
		line=$(<"/proc/$pid/stat") 2>/dev/null || return 1
		line=${line##*) }
		line=${line#* }
		pid=${line%% *}
		[[ $pid =~ ^[0-9]+$ ]] || return 1
	done
	return 1
}

# The runner's directory: RUNNER_DIR, else the one its Worker was started from (<dir>/bin/).
runner_dir() {
	if [[ -n ${RUNNER_DIR:-} ]]; then
		printf '%s' "$RUNNER_DIR"
	elif [[ $WORKER_PROG == /*/bin/Runner.Worker ]]; then
		printf '%s' "${WORKER_PROG%/bin/Runner.Worker}"
	fi
}

# DockerInstanceLabel: .runner as File.ReadAllText reads it (a UTF-8 BOM dropped), lowercased
# (ASCII: a name with other letters gives another hash, and so no match), SHA-256, 6 digits.
runner_label() {
	local file=$1/.runner label
	[[ -f $file && ! -L $file ]] || return 1
	label=$(timeout 5 head -c 1048576 -- "$file" </dev/null | sed '1s/^\xEF\xBB\xBF//' |
		LC_ALL=C tr '[:upper:]' '[:lower:]' | sha256sum | cut -c1-6) || return 1
	[[ $label =~ ^[0-9a-f]{6}$ ]] && printf '%s' "$label"
}

act() {
	if ((DRY_RUN)); then
		say "would run: $*"
	elif ! timeout "$STEP_TIMEOUT" "$@" </dev/null >/dev/null 2>&1; then
		say "'$*' failed (left as it is)"
	fi
}

clean_containers() {
	local dir label id name state
	dir=$(runner_dir)
	if ! command -v docker >/dev/null; then
		return 0
	fi
	if [[ -z $dir ]] || ! label=$(runner_label "$dir"); then
		say "no runner label (no readable .runner under '$(clean "$dir")'): containers left alone"
		return 0
	fi
	while IFS=$'\t' read -r id name state; do
		[[ $id =~ ^[0-9a-f]{64}$ ]] || continue
		say "removing container $(clean "$name") ($(clean "$state")): it carries the runner's label $label"
		act docker rm --force "$id"
	done < <(timeout "$STEP_TIMEOUT" docker ps --all --no-trunc --filter "label=$label" \
		--format '{{.ID}}	{{.Names}}	{{.State}}' </dev/null 2>/dev/null)
	act docker network prune --force --filter "label=$label"
}

clean_tmp() {
	local started others entry
	others=$(workers | grep -cvx "$WORKER_PID")
	if ((others > 0)); then
		say "another job runs on this machine: $TMP_DIR left alone"
		return 0
	fi
	# The job's start, a second early (etimes is whole seconds, rounded down).
	started=$(($(date +%s) - $(ps -o etimes= -p "$WORKER_PID" 2>/dev/null || echo 0) - 1))
	# -newerct: changed (created, written, renamed) since the job began; a tar that sets old
	# mtimes can't hide an entry from it.
	while IFS= read -r -d '' entry; do
		say "removing $(clean "$entry")"
		act rm -rf --one-file-system -- "$entry"
	done < <(timeout "$STEP_TIMEOUT" find "$TMP_DIR" -xdev -mindepth 1 -maxdepth 1 \
		-user "$(id -u)" \( -type f -o -type d -o -type l \) ! -name 'systemd-private-*' \
		-newerct "@$started" -print0 </dev/null 2>/dev/null)
}

main() {
	[[ ${1:-} != --dry-run ]] || DRY_RUN=1
	[[ $STEP_TIMEOUT =~ ^[0-9]{1,4}$ ]] || STEP_TIMEOUT=20
	cd / || return 0
	if ! find_worker; then
		say "not run by a job (no Runner.Worker above it): nothing to do"
		return 0
	fi
	clean_containers
	clean_tmp
}

main "$@" || true
exit 0
