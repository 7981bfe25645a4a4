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
Usage: free_disk.sh [--runner-dir DIR] [--work-dir DIR] [--if-free-below-percent P]
                    [--if-free-below-gib G] [--dry-run] [--help]
       multipass exec assay-bpf-runner -- sudo bash -s [-- OPTIONS] < free_disk.sh

Frees disk on the runner VM and prints what it freed (df of / and the runner's work dir
before and after each step):
  1. Docker: stopped containers, dangling images, build cache (if docker is installed)
  2. APT package cache
  3. systemd journal, vacuumed to $JOURNAL_MAX (default 200M)
  4. runner caches: _diag logs beyond the newest $DIAG_KEEP (default 5) of each kind,
     a stale _update; and, only while no job runs, what _work/_temp, _tool, _actions hold
  5. finished job workspaces (_work/<repo>): only while no job runs

While a Runner.Worker process runs (a job is in progress), no job workspace, _temp, _tool or
_actions is touched, and Docker containers stopped within the last hour are kept. The check is
made again before each removal in the work folder, and an entry with anything in it changed in
the last $RECENT_MINUTES minutes (default 5; 0: no such rule) is kept: a job may just have begun.

The work folder is --work-dir if given. Otherwise it is the runner's "workFolder" (.runner),
which counts only if it resolves inside the runner directory (not in bin*, externals*, _diag):
the runner user, and so every job, can write that file. Else it is <runner>/_work, resolved the
same way; if that lies elsewhere, no work folder is cleaned. Links in it are never followed.

Options:
  --runner-dir DIR  the actions/runner directory (default: $RUNNER_DIR or /opt/actions-runner)
  --work-dir DIR    the runner's work folder, for one kept outside the runner directory:
                    taken as given (.runner is then not read); a path without links that
                    does not hold the runner directory
  --if-free-below-percent P, --if-free-below-gib G
                    only clean when / or the work folder's filesystem has less than P% (of its
                    size) or G GiB free (whole numbers); otherwise say so and touch nothing
                    (the hourly cron passes them: tool caches and workspaces stay while the
                    disk has room)
  --dry-run         print what would be removed and how big it is; change nothing
  -h, --help        this text

Exit status: 0 done (a step that failed is reported as a warning), 2 bad arguments.
EOF
}

RUNNER_DIR=${RUNNER_DIR:-/opt/actions-runner}
JOURNAL_MAX=${JOURNAL_MAX:-200M}
DIAG_KEEP=${DIAG_KEEP:-5}
RECENT_MINUTES=${RECENT_MINUTES:-5}
DRY_RUN=0
RUNNER_REAL=""  # $RUNNER_DIR resolved: what removals are checked against
WORK_OPT=""     # --work-dir, resolved
WORK_DIR=""     # the work folder to clean, resolved; empty: none we may trust
BELOW_PERCENT="" # --if-free-below-percent: clean only below this much free (empty: always)
BELOW_GIB=""     # --if-free-below-gib
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
		--work-dir)
			if (($# < 2)) || [[ -z $2 ]]; then die_usage "--work-dir needs a directory"; fi
			WORK_OPT=$2
			shift 2
			;;
		--work-dir=*)
			WORK_OPT=${1#*=}
			[[ -n $WORK_OPT ]] || die_usage "--work-dir needs a directory"
			shift
			;;
		--if-free-below-percent | --if-free-below-gib)
			(($# >= 2)) || die_usage "$1 needs a number"
			threshold "$1" "$2"
			shift 2
			;;
		--if-free-below-percent=* | --if-free-below-gib=*)
			threshold "${1%%=*}" "${1#*=}"
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
	RUNNER_REAL=$(realpath -m -- "${RUNNER_DIR:-/}") || die_usage "cannot resolve '$RUNNER_DIR'"
	[[ $RUNNER_REAL != / ]] || die_usage "refusing to treat / as the runner directory"
	[[ -z $WORK_OPT ]] || check_work_opt
	[[ $DIAG_KEEP =~ ^[0-9]{1,6}$ ]] || die_usage "DIAG_KEEP must be a number, got '$DIAG_KEEP'"
	[[ $RECENT_MINUTES =~ ^[0-9]{1,6}$ ]] ||
		die_usage "RECENT_MINUTES must be a number of minutes, got '$RECENT_MINUTES'"
	DIAG_KEEP=$((10#$DIAG_KEEP)) RECENT_MINUTES=$((10#$RECENT_MINUTES)) # 08 is not octal
}

# Threshold option $1 with value $2: a whole number (a percentage at most 100).
threshold() {
	[[ $2 =~ ^[0-9]{1,6}$ ]] || die_usage "$1 needs a whole number, got '$2'"
	if [[ $1 == --if-free-below-percent ]]; then
		BELOW_PERCENT=$((10#$2))
		((BELOW_PERCENT <= 100)) || die_usage "$1 is a percentage (0 to 100), got '$2'"
	else
		BELOW_GIB=$((10#$2))
	fi
}

# --work-dir is root's word, but only as written: a link on the way could be the runner
# user's (a job can replace <runner>/_work with a link to /etc), so the path must have none.
check_work_opt() {
	[[ $WORK_OPT == /* ]] || die_usage "--work-dir must be an absolute path, got '$WORK_OPT'"
	local real
	real=$(realpath -m -- "$WORK_OPT") || die_usage "cannot resolve '$WORK_OPT'"
	[[ $real != / ]] || die_usage "refusing to treat / as the work directory"
	if [[ $real != "$(realpath -ms -- "$WORK_OPT")" ]]; then
		die_usage "--work-dir must be a path without links: '$WORK_OPT' leads to '$real'"
	fi
	if [[ $RUNNER_REAL == "$real" ]] || inside "$real" "$RUNNER_REAL"; then
		die_usage "--work-dir must not hold the runner directory, got '$WORK_OPT'"
	fi
	WORK_OPT=$real
}

# Whether path $2 lies below folder $1 (both resolved).
inside() { [[ $2 == "$1"/* ]]; }

in_work() { [[ -n $WORK_DIR ]] && inside "$WORK_DIR" "$1"; }

warn() {
	echo "WARNING: $*" >&2
	WARNINGS=$((WARNINGS + 1))
}

# The "workFolder" config.sh was given, from .runner: only a regular file, only its start, and
# never waiting on it (a job can make it a FIFO or a link to anything).
work_folder_setting() {
	local file=$RUNNER_REAL/.runner value
	[[ -f $file && ! -L $file ]] || return 0
	value=$(timeout 5 head -c 65536 -- "$file" </dev/null |
		grep -ao '"workFolder"[[:space:]]*:[[:space:]]*"[^"]*"' | head -n 1) || true
	value=${value#*:}
	value=${value#*\"}
	printf '%s' "${value%\"}"
}

# A folder the runner's own work folder may be: inside the runner directory, not its programs.
runner_work_folder() {
	inside "$RUNNER_REAL" "$1" || return 1
	local top=${1#"$RUNNER_REAL"/}
	case ${top%%/*} in
	bin | bin.* | externals | externals.* | _diag) return 1 ;;
	esac
}

# Relative to the runner directory, with every link resolved (empty if that fails).
resolve() {
	local path=$1
	[[ $path == /* ]] || path=$RUNNER_REAL/$path
	realpath -m -- "$path" 2>/dev/null || true
}

# WORK_DIR: --work-dir (root's word); else .runner's workFolder or _work, if it resolves to the
# runner's own; else none. .runner is the runner user's, so its word alone never suffices.
find_work_dir() {
	if [[ -n $WORK_OPT ]]; then
		WORK_DIR=$WORK_OPT
		return
	fi
	local folder candidate
	folder=$(work_folder_setting)
	if [[ -n $folder ]]; then
		candidate=$(resolve "$folder")
		if runner_work_folder "$candidate"; then
			WORK_DIR=$candidate
			return
		fi
		warn "ignoring workFolder '$folder' in $RUNNER_DIR/.runner: it resolves to" \
			"'$candidate', not a work folder inside the runner directory; using _work instead"
	fi
	candidate=$(resolve _work)
	if runner_work_folder "$candidate"; then
		WORK_DIR=$candidate
		return
	fi
	warn "$RUNNER_DIR/_work resolves to '$candidate', not inside the runner directory: no job" \
		"workspace, _temp, _tool or _actions is touched (pass --work-dir to clean a work folder" \
		"kept elsewhere)"
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
# Asked again before each removal in the work folder: a job may start at any moment. Once one
# has been seen, the answer stays yes for the rest of the run.
job_running() {
	((JOB_RUNNING)) && return 0
	local pid cmdline program pids=""
	while read -r pid cmdline; do
		[[ -n $pid ]] || continue
		program=${cmdline%%Runner.Worker*}Runner.Worker
		program=${program##* }
		if [[ $program == */* && $program != "$RUNNER_DIR"/* && $program != "$RUNNER_REAL"/* ]]; then
			continue
		fi
		pids+="${pids:+, }$pid"
	done < <(worker_processes)
	[[ -n $pids ]] || return 1
	JOB_RUNNING=1
	echo "A job is running (Runner.Worker pid $pids): job workspaces, _temp, _tool and" \
		"_actions are left alone."
}

# Whether the work folder may be touched now; if not, say so ("<reason>: <what> kept").
work_allowed() {
	if [[ -z $WORK_DIR ]]; then
		echo "  no trusted work folder: $1 kept"
	elif job_running; then
		echo "  a job is running: $1 kept"
	else
		return 0
	fi
	return 1
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
	if [[ -n $WORK_DIR &&
		$(stat -c %d / 2>/dev/null) != $(stat -c %d "$(existing "$WORK_DIR")" 2>/dev/null) ]]; then
		total=$((total + $(free_bytes "$WORK_DIR")))
	fi
	echo "$total"
}

# "/ 12GiB, /opt/actions-runner/_work 3GiB": free space where this script frees it.
free_summary() {
	local line
	line="/ $(human "$(free_bytes /)")"
	[[ -z $WORK_DIR ]] || line+=", $WORK_DIR $(human "$(free_bytes "$WORK_DIR")")"
	echo "$line"
}

df_line() { echo "  free: $(free_summary)"; }

# Whether / and the work folder's filesystem both have at least the free space the thresholds
# ask (as the disk check measures it: available bytes, and their share of the size); one df
# cannot measure counts as short. SPACE says what was measured.
enough_space() {
	local path size avail short=0
	SPACE=""
	for path in / ${WORK_DIR:+"$WORK_DIR"}; do
		size="" avail=""
		read -r size avail < <(df -P -B1 "$(existing "$path")" </dev/null 2>/dev/null |
			awk 'NR == 2 { print $2, $4 }') || true
		if [[ ! $size =~ ^[0-9]+$ || ! $avail =~ ^[0-9]+$ ]] || ((size == 0)); then
			SPACE+=", $path: df cannot tell"
			short=1
			continue
		fi
		SPACE+=", $path $(human "$avail") ($((avail * 100 / size))%) free"
		if [[ -n $BELOW_PERCENT ]] && ((avail * 100 < BELOW_PERCENT * size)); then short=1; fi
		if [[ -n $BELOW_GIB ]] && ((avail < BELOW_GIB * 1024 * 1024 * 1024)); then short=1; fi
	done
	SPACE=${SPACE#, }
	((!short))
}

size_of() { du -sbx "$@" 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }

# Whether anything in the tree $1 changed in the last $RECENT_MINUTES minutes. The whole tree
# (on its filesystem, up to the first hit): a build writes deep down, and that never shows in
# the mtime of the folders above. A future date (a clock that ran ahead) doesn't count: it
# would keep the folder for ever.
changed_lately() {
	((RECENT_MINUTES)) || return 1
	local now=$EPOCHSECONDS
	[[ -n $(find "$1" -xdev -newermt "@$((now - RECENT_MINUTES * 60))" \
		! -newermt "@$((now + 60))" -print -quit </dev/null 2>/dev/null) ]]
}

# Remove entries (files or trees) named by absolute path. Each goes by name from inside its
# folder, entered without following links and checked to be still at that path: a folder
# swapped for a link meanwhile can't lead elsewhere, and rm itself follows no link and crosses
# into no other mount. In the work folder, an entry changed lately stays, and so does every
# entry once a job runs: asked last, right before the removal.
remove() {
	local path dir name bytes
	for path in "$@"; do
		dir=${path%/*}
		name=${path##*/}
		if [[ $path != /* || -z $dir || -z $name || $name == . || $name == .. ]]; then
			warn "refusing to remove '$path': not an absolute path to an entry"
			continue
		fi
		# pwd -P of coreutils asks the kernel; bash's own works from the path it was given.
		if ! cd -P -- "$dir" 2>/dev/null || [[ $(env pwd -P) != "$dir" ]]; then
			warn "$dir is not where it was (moved, or now a link): $path not removed"
			continue
		fi
		[[ -e ./$name || -L ./$name ]] || continue
		if in_work "$path" && changed_lately "./$name"; then
			echo "  kept $path: changed in the last $RECENT_MINUTES minutes"
			continue
		fi
		bytes=$(size_of "./$name")
		if in_work "$path" && job_running; then
			echo "  kept $path: a job is running"
		elif ((DRY_RUN)); then
			echo "  would remove $path ($(human "$bytes"))"
		elif rm -rf --one-file-system -- "./$name"; then
			echo "  removed $path ($(human "$bytes"))"
		else
			warn "could not remove $path"
		fi
	done
	cd /
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
	if job_running; then
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
		find "$RUNNER_REAL/_diag" -maxdepth 1 -type f -name "${kind}_*.log" -printf '%T@ %p\0' \
			</dev/null 2>/dev/null | sort -zrn | tail -zn +"$((DIAG_KEEP + 1))" | cut -zd' ' -f2-
	done
	# Step logs of finished jobs (pages/): older than a day.
	find "$RUNNER_REAL/_diag/pages" -maxdepth 1 -type f -mtime +0 -print0 </dev/null 2>/dev/null ||
		true
}

# NUL-separated names (find -print0) into the array named $1: any byte but NUL may be in a name.
read_paths() {
	local -n into=$1
	local path
	while IFS= read -r -d '' path; do
		into+=("$path")
	done
}

clean_runner_caches() {
	if [[ ! -d $RUNNER_REAL ]]; then
		echo "  $RUNNER_DIR does not exist: no runner caches"
		return
	fi
	local -a paths=()
	read_paths paths < <(old_diag_logs)
	# _update holds a self-update in progress for a while: only a stale one goes.
	if [[ -d $RUNNER_REAL/_update && ! -L $RUNNER_REAL/_update ]] &&
		[[ -z $(find "$RUNNER_REAL/_update" -type f -mmin -60 -print -quit </dev/null 2>/dev/null) ]]; then
		paths+=("$RUNNER_REAL/_update")
	fi
	if work_allowed "_temp, _tool and _actions"; then
		# A start point that is a link is not followed (find -P): it lists nothing.
		read_paths paths < <(find "$WORK_DIR/_temp" "$WORK_DIR/_tool" "$WORK_DIR/_actions" \
			-mindepth 1 -maxdepth 1 -print0 </dev/null 2>/dev/null)
	fi
	if ((${#paths[@]} == 0)); then
		echo "  no runner caches to remove"
		return
	fi
	remove "${paths[@]}"
}

# Job workspaces are _work/<repo>; _-prefixed folders are the runner's own.
clean_workspaces() {
	work_allowed "every job workspace" || return 0
	if [[ ! -d $WORK_DIR ]]; then
		echo "  $WORK_DIR does not exist: no job workspaces"
		return
	fi
	local -a paths=()
	read_paths paths < <(find "$WORK_DIR" -mindepth 1 -maxdepth 1 -type d ! -name '_*' \
		! -name lost+found -print0 </dev/null 2>/dev/null | sort -z)
	if ((${#paths[@]} == 0)); then
		echo "  no finished job workspaces"
		return
	fi
	remove "${paths[@]}"
}

main() {
	cd /  # nothing is ever removed relative to where the caller stood (root's home for cron)
	parse_args "$@"
	find_work_dir
	if [[ -n $BELOW_PERCENT$BELOW_GIB ]]; then
		local wanted=""
		[[ -z $BELOW_PERCENT ]] || wanted="$BELOW_PERCENT%"
		[[ -z $BELOW_GIB ]] || wanted+="${wanted:+ or }${BELOW_GIB}GiB"
		if enough_space; then
			echo "free_disk.sh: enough free space ($SPACE; cleaning starts below $wanted), nothing to do"
			return 0
		fi
		echo "free_disk.sh: short of space ($SPACE; cleaning starts below $wanted)"
	fi
	local start
	start=$(free_summary)
	echo "free_disk.sh: runner dir $RUNNER_DIR, work dir ${WORK_DIR:-none}$( ((DRY_RUN)) && echo ' (dry run: nothing is changed)')"
	echo "  free: $start"
	job_running || true
	step "Docker (stopped containers, dangling images, build cache)" clean_docker
	step "APT cache" clean_apt
	step "systemd journal (vacuum to $JOURNAL_MAX)" clean_journal
	step "runner caches (_diag, _update, _work/_temp, _tool, _actions)" clean_runner_caches
	step "finished job workspaces (${WORK_DIR:-<work folder>}/<repo>)" clean_workspaces
	echo
	echo "== done$( ((DRY_RUN)) && echo ' (dry run)')"
	echo "  before: $start"
	df_line
	if ((WARNINGS)); then
		echo "  $WARNINGS warning(s): see above"
	fi
	return 0
}

main "$@"
