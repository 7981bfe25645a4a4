#!/usr/bin/env bash
# free_disk.sh: free disk on the self-hosted runner VM ("No space left on device").
#
# Standalone on purpose: it is sent on stdin, with nothing installed first:
#   multipass exec assay-bpf-runner -- sudo bash -s < remediations/free_disk.sh
#   ssh vm sudo bash -s -- --runner-dir /opt/actions-runner --dry-run < free_disk.sh
# runner-health's free_disk remediation sends it the same way, the hourly cron runs it from
# /opt/runner-health, and the kernel-matrix workflow runs it before each matrix job.
#
# Written for a 100% full disk: it creates no files (no mktemp, no here-documents), only
# reads, measures and deletes. Everything lives in functions and runs from the last line,
# so a command that reads stdin cannot swallow the rest of a script that arrives on stdin.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: free_disk.sh [--runner-dir DIR] [--dry-run] [--help]
       multipass exec assay-bpf-runner -- sudo bash -s [-- OPTIONS] < free_disk.sh

Frees disk on the runner VM and prints what it freed (df of / and the runner's work dir
before and after each step):
  1. Docker: stopped containers, dangling images, build cache (if docker is installed)
  2. APT package cache
  3. systemd journal, vacuumed to $JOURNAL_MAX (default 200M)
  4. runner caches: _diag logs beyond the newest $DIAG_KEEP (default 5) of each kind,
     a stale _update; and, only while no job runs, _work/_temp, _work/_tool, _work/_actions
  5. finished job workspaces (_work/<repo>): only while no job runs

While a Runner.Worker process runs (a job is in progress), no job workspace, _temp, _tool or
_actions is touched, and Docker containers stopped within the last hour are kept.

Options:
  --runner-dir DIR  the actions/runner directory (default: $RUNNER_DIR or /opt/actions-runner)
  --dry-run         print what would be removed and how big it is; change nothing
  -h, --help        this text

Exit status: 0 done (a step that failed is reported as a warning), 2 bad arguments.
EOF
}

RUNNER_DIR=${RUNNER_DIR:-/opt/actions-runner}
JOURNAL_MAX=${JOURNAL_MAX:-200M}
DIAG_KEEP=${DIAG_KEEP:-5}
DRY_RUN=0
WORK_DIR=""
JOB_RUNNING=0
WARNINGS=0

die_usage() {
	echo "free_disk.sh: $*" >&2
	echo "Try 'free_disk.sh --help'." >&2
	exit 2
}

parse_args() {
	while (($#)); do
		case $1 in
		--runner-dir)
			if (($# < 2)) || [[ -z $2 ]]; then die_usage "--runner-dir needs a directory"; fi
			RUNNER_DIR=$2
			shift 2
			;;
		--runner-dir=*)
			RUNNER_DIR=${1#*=}
			[[ -n $RUNNER_DIR ]] || die_usage "--runner-dir needs a directory"
			shift
			;;
		--dry-run)
			DRY_RUN=1
			shift
			;;
		-h | --help)
			usage
			exit 0
			;;
		*) die_usage "unknown argument '$1'" ;;
		esac
	done
	[[ $RUNNER_DIR == /* ]] || die_usage "--runner-dir must be an absolute path, got '$RUNNER_DIR'"
	RUNNER_DIR=${RUNNER_DIR%/}
	[[ -n $RUNNER_DIR ]] || die_usage "refusing to treat / as the runner directory"
	[[ $DIAG_KEEP =~ ^[0-9]+$ ]] || die_usage "DIAG_KEEP must be a number, got '$DIAG_KEEP'"
}

warn() {
	echo "WARNING: $*" >&2
	WARNINGS=$((WARNINGS + 1))
}

# The work folder config.sh was given (.runner "workFolder"), else _work.
find_work_dir() {
	local folder=_work line
	if [[ -r $RUNNER_DIR/.runner ]]; then
		line=$(grep -o '"workFolder"[^,}]*' "$RUNNER_DIR/.runner" </dev/null || true)
		line=${line#*:}
		line=${line//\"/}
		line=${line// /}
		[[ -n $line ]] && folder=$line
	fi
	[[ $folder == /* ]] && WORK_DIR=$folder || WORK_DIR=$RUNNER_DIR/$folder
}

# A Runner.Worker process exists exactly while the runner executes a job. Match the program
# (or an interpreter running it), not any command line that merely mentions the name (grep).
WORKER_RE='^([^ ]*/)?((python[0-9.]*|bash|sh|dotnet) +([^ ]*/)?)?Runner[.]Worker( |$)'

# "PID COMMAND LINE" of every Runner.Worker process.
worker_processes() {
	local f line
	if command -v pgrep >/dev/null; then
		pgrep -af "$WORKER_RE" || true
		return
	fi
	for f in /proc/[0-9]*/cmdline; do
		line=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
		if [[ $line =~ $WORKER_RE ]]; then
			f=${f#/proc/}
			echo "${f%/cmdline} $line"
		fi
	done
}

# A worker started by path belongs to the runner installed there: another runner's job on the
# same VM doesn't use our workspaces. One started without a path could be ours: count it.
detect_job() {
	local pid cmdline program real pids=""
	real=$(realpath -m "$RUNNER_DIR" 2>/dev/null || echo "$RUNNER_DIR")
	while read -r pid cmdline; do
		[[ -n $pid ]] || continue
		program=${cmdline%%Runner.Worker*}Runner.Worker
		program=${program##* }
		if [[ $program == */* && $program != "$RUNNER_DIR"/* && $program != "$real"/* ]]; then
			continue
		fi
		pids+="${pids:+, }$pid"
	done < <(worker_processes)
	if [[ -n $pids ]]; then
		JOB_RUNNING=1
		echo "A job is running (Runner.Worker pid $pids): job workspaces, _temp, _tool and" \
			"_actions are left alone."
	fi
}

human() { numfmt --to=iec-i --suffix=B "${1:-0}" 2>/dev/null || echo "${1:-0} bytes"; }

# Free bytes on the filesystem holding $1 (nearest existing parent).
existing() {
	local path=$1
	while [[ ! -e $path && $path != / ]]; do path=$(dirname "$path"); done
	echo "$path"
}

free_bytes() {
	df -P -B1 "$(existing "$1")" </dev/null 2>/dev/null | awk 'NR == 2 { print $4; found = 1 }
		END { if (!found) print 0 }'
}

# Free bytes on / plus on the work dir's filesystem when that is another one (a data disk).
free_total() {
	local total
	total=$(free_bytes /)
	if [[ $(stat -c %d / 2>/dev/null) != $(stat -c %d "$(existing "$WORK_DIR")" 2>/dev/null) ]]; then
		total=$((total + $(free_bytes "$WORK_DIR")))
	fi
	echo "$total"
}

df_line() {
	local root work
	root=$(free_bytes /)
	work=$(free_bytes "$WORK_DIR")
	echo "  free: / $(human "$root"), $WORK_DIR $(human "$work")"
}

size_of() { du -sbx "$@" 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }

# Remove paths (files or trees), never crossing into another mounted filesystem.
remove() {
	local path bytes
	for path in "$@"; do
		[[ -e $path || -L $path ]] || continue
		bytes=$(size_of "$path")
		if ((DRY_RUN)); then
			echo "  would remove $path ($(human "$bytes"))"
		elif rm -rf --one-file-system -- "$path"; then
			echo "  removed $path ($(human "$bytes"))"
		else
			warn "could not remove $path"
		fi
	done
}

# Run a cleanup command, or only name it in a dry run; a failure is a warning, not the end.
cmd() {
	if ((DRY_RUN)); then
		echo "  would run: $*"
		return 0
	fi
	echo "  \$ $*"
	local out
	if out=$("$@" </dev/null 2>&1); then
		[[ -z $out ]] || printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /'
	else
		warn "'$*' failed: $(printf '%s' "$out" | tail -n 1)"
	fi
}

step() {
	local title=$1 before after
	shift
	echo
	echo "== $title"
	before=$(free_total)
	"$@"
	after=$(free_total)
	df_line
	if ((!DRY_RUN && after > before)); then
		echo "  freed $(human $((after - before)))"
	fi
}

clean_docker() {
	if ! command -v docker >/dev/null; then
		echo "  docker is not installed: nothing to do"
		return
	fi
	if ! docker info >/dev/null 2>&1 </dev/null; then
		warn "docker is installed but its daemon does not answer: skipped"
		return
	fi
	if ((JOB_RUNNING)); then
		# The job may still docker cp / commit a container it just stopped.
		cmd docker container prune --force --filter until=1h
	else
		cmd docker container prune --force
	fi
	cmd docker image prune --force
	cmd docker builder prune --force
}

clean_apt() {
	if ! command -v apt-get >/dev/null; then
		echo "  apt-get is not installed: nothing to do"
		return
	fi
	echo "  APT cache: $(human "$(size_of /var/cache/apt/archives)")"
	cmd apt-get clean
}

clean_journal() {
	if ! command -v journalctl >/dev/null; then
		echo "  journalctl is not installed: nothing to do"
		return
	fi
	cmd journalctl --vacuum-size="$JOURNAL_MAX"
}

# Old _diag logs: keep the newest $DIAG_KEEP of each kind (a running job writes the newest).
old_diag_logs() {
	local kind
	for kind in Runner Worker; do
		find "$RUNNER_DIR/_diag" -maxdepth 1 -type f -name "${kind}_*.log" -printf '%T@ %p\n' \
			</dev/null 2>/dev/null | sort -rn | tail -n +"$((DIAG_KEEP + 1))" | cut -d' ' -f2-
	done
	# Step logs of finished jobs (pages/): older than a day.
	find "$RUNNER_DIR/_diag/pages" -maxdepth 1 -type f -mtime +0 </dev/null 2>/dev/null || true
}

clean_runner_caches() {
	if [[ ! -d $RUNNER_DIR ]]; then
		echo "  $RUNNER_DIR does not exist: no runner caches"
		return
	fi
	local -a paths=()
	local path
	while IFS= read -r path; do
		[[ -n $path ]] && paths+=("$path")
	done < <(old_diag_logs)
	# _update holds a self-update in progress for a while: only a stale one goes.
	if [[ -d $RUNNER_DIR/_update ]] &&
		[[ -z $(find "$RUNNER_DIR/_update" -type f -mmin -60 -print -quit </dev/null 2>/dev/null) ]]; then
		paths+=("$RUNNER_DIR/_update")
	fi
	if ((JOB_RUNNING)); then
		echo "  a job is running: _temp, _tool and _actions kept"
	else
		for path in _temp _tool _actions; do
			[[ -d $WORK_DIR/$path ]] || continue
			while IFS= read -r path; do
				paths+=("$path")
			done < <(find "$WORK_DIR/$path" -mindepth 1 -maxdepth 1 </dev/null 2>/dev/null)
		done
	fi
	if ((${#paths[@]} == 0)); then
		echo "  no runner caches to remove"
		return
	fi
	remove "${paths[@]}"
}

# Job workspaces are _work/<repo>; _-prefixed folders are the runner's own.
clean_workspaces() {
	if [[ ! -d $WORK_DIR ]]; then
		echo "  $WORK_DIR does not exist: no job workspaces"
		return
	fi
	if ((JOB_RUNNING)); then
		echo "  a job is running (Runner.Worker): every job workspace in $WORK_DIR is kept"
		return
	fi
	local -a paths=()
	local path
	while IFS= read -r path; do
		paths+=("$path")
	done < <(find "$WORK_DIR" -mindepth 1 -maxdepth 1 -type d ! -name '_*' ! -name lost+found \
		</dev/null 2>/dev/null | sort)
	if ((${#paths[@]} == 0)); then
		echo "  no finished job workspaces"
		return
	fi
	remove "${paths[@]}"
}

main() {
	parse_args "$@"
	find_work_dir
	local start_root start_work
	start_root=$(free_bytes /)
	start_work=$(free_bytes "$WORK_DIR")
	echo "free_disk.sh: runner dir $RUNNER_DIR, work dir $WORK_DIR$( ((DRY_RUN)) && echo ' (dry run: nothing is changed)')"
	df_line
	detect_job
	step "Docker (stopped containers, dangling images, build cache)" clean_docker
	step "APT cache" clean_apt
	step "systemd journal (vacuum to $JOURNAL_MAX)" clean_journal
	step "runner caches (_diag, _update, _work/_temp, _tool, _actions)" clean_runner_caches
	step "finished job workspaces ($WORK_DIR/<repo>)" clean_workspaces
	echo
	echo "== done$( ((DRY_RUN)) && echo ' (dry run)')"
	echo "  before: / $(human "$start_root") free, $WORK_DIR $(human "$start_work") free"
	df_line
	if ((WARNINGS)); then
		echo "  $WARNINGS warning(s): see above"
	fi
	return 0
}

main "$@"
