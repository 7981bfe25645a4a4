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
                    [--if-free-below-gib G] [--if-inodes-below-percent P]
                    [--tmp-max-age-days D] [--dry-run] [--help]
       multipass exec assay-bpf-runner -- sudo bash -s [-- OPTIONS] < free_disk.sh

Frees disk space and inodes on the runner VM and prints what it freed (free space and free
inodes of / and the runner's work dir before and after each step):
  1. Docker (if installed): containers of finished jobs left running (those carrying the
     runner's label), stopped containers, unused anonymous volumes, dangling images, build cache
  2. APT package cache
  3. systemd journal, vacuumed to $JOURNAL_MAX (default 200M)
  4. files in /tmp neither modified nor changed (ctime) for --tmp-max-age-days (default 7):
     regular files only, on /tmp's own filesystem, none in systemd-private-* (services'
     private /tmp); links not followed
  5. runner caches: _diag logs beyond the newest $DIAG_KEEP (default 5) of each kind,
     unless a self-update is under way, its staging folder _work/_update and, only while
     no job runs, the bin.<version>/externals.<version> folders of versions lower than the
     one the bin/externals links point at (a newer one is an update waiting for the job);
     and, only while no job runs, what _work/_temp, _tool, _actions hold
  6. finished job workspaces (_work/<repo>): only while no job runs
When / or the work folder is still short afterwards (below the thresholds given, or 10% of
its space or inodes), it names the largest directories on it (du -x, at most 3 levels deep,
within 30 s): what a person may delete, and this script never will.

While a Runner.Worker process runs (a job is in progress), no job workspace, _temp, _tool,
_actions, bin.* or externals.* is touched, no running container is removed, no volume is
pruned, and Docker containers stopped within the last hour are kept. The check is made again
before each removal in the work folder or of a bin.*/externals.* copy, and an entry of the
work folder with anything in it changed in the last $RECENT_MINUTES minutes (default 5; 0: no
such rule) is kept: a job may just have begun.

The work folder is --work-dir if given. Otherwise it is the runner's "workFolder" (.runner),
which counts only if it resolves inside the runner directory (not in bin*, externals*, _diag):
the runner user, and so every job, can write that file. Else it is <runner>/_work, resolved the
same way; if that lies elsewhere, no work folder is cleaned. Links in it are never followed.

Options:
  --runner-dir DIR  the actions/runner directory (default: $RUNNER_DIR or /opt/actions-runner)
  --work-dir DIR    the runner's work folder, for one kept outside the runner directory:
                    taken as given (.runner is then not read); a path without links that
                    does not hold the runner directory
  --if-free-below-percent P, --if-free-below-gib G, --if-inodes-below-percent P
                    only clean when / or the work folder's filesystem has less than P% (of its
                    size) or G GiB free, or less than P% of its inodes free (whole numbers;
                    with either of the first two, inodes count below 10% unless given);
                    otherwise say so and touch nothing (the hourly cron passes them: tool
                    caches and workspaces stay while the disk has room)
  --tmp-max-age-days D
                    remove files in /tmp untouched for D days (whole days, 1 or more;
                    default 7)
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
BELOW_INODES=""  # --if-inodes-below-percent (10 once another threshold is given)
TMP_DAYS=7       # --tmp-max-age-days
TMP_DIR=${TMP_DIR:-/tmp}
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
		--if-free-below-percent | --if-free-below-gib | --if-inodes-below-percent | --tmp-max-age-days)
			(($# >= 2)) || die_usage "$1 needs a number"
			threshold "$1" "$2"
			shift 2
			;;
		--if-free-below-percent=* | --if-free-below-gib=* | --if-inodes-below-percent=* | --tmp-max-age-days=*)
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
	if [[ -n $BELOW_PERCENT$BELOW_GIB && -z $BELOW_INODES ]]; then BELOW_INODES=10; fi
	((TMP_DAYS >= 1)) || die_usage "--tmp-max-age-days must be 1 or more: 0 would take every file in /tmp"
	[[ $TMP_DIR == /?* ]] || die_usage "TMP_DIR must be an absolute path other than /, got '$TMP_DIR'"
}

# Number option $1 with value $2: a whole number (a percentage at most 100).
threshold() {
	[[ $2 =~ ^[0-9]{1,6}$ ]] || die_usage "$1 needs a whole number, got '$2'"
	local value=$((10#$2))
	case $1 in
	--if-free-below-gib) BELOW_GIB=$value ;;
	--tmp-max-age-days) TMP_DAYS=$value ;;
	*)
		((value <= 100)) || die_usage "$1 is a percentage (0 to 100), got '$2'"
		if [[ $1 == --if-free-below-percent ]]; then BELOW_PERCENT=$value; else BELOW_INODES=$value; fi
		;;
	esac
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

# Untrusted text (a name a job chose) for a line of this report: control characters as '?',
# at most 200 characters.
clean() {
	local text=${1//[[:cntrl:]]/?}
	printf '%s' "${text:0:200}"
}

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
	echo "A job is running (Runner.Worker pid $pids): job workspaces, _temp, _tool," \
		"_actions and old bin.*/externals.* are left alone."
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

# The nearest existing folder at or above $1.
existing() {
	local path=$1
	while [[ ! -e $path && $path != / ]]; do path=$(dirname "$path"); done
	echo "$path"
}

# "SIZE FREE" of the filesystem holding $2: in bytes with -B1, in inodes with -i (a filesystem
# without an inode table, btrfs say, has size 0); nothing when df cannot tell.
df_figures() {
	df -P "$1" -- "$(existing "$2")" </dev/null 2>/dev/null | awk 'NR == 2 { print $2, $4 }'
}

# Free bytes (-B1) or inodes (-i) on / plus on the work dir's filesystem when that is another
# one (a data disk).
free_total() {
	local total=0 path size free
	for path in / ${WORK_DIR:+"$WORK_DIR"}; do
		if [[ $path != / && $(stat -c %d / 2>/dev/null) == $(stat -c %d "$(existing "$path")" 2>/dev/null) ]]; then
			continue
		fi
		read -r size free < <(df_figures "$1" "$path") || true
		[[ $free =~ ^[0-9]+$ ]] && total=$((total + free))
	done
	echo "$total"
}

# Whether the filesystem holding $1 has less free than $2 % of its size, $3 GiB, or $4 % of
# its inodes (an empty limit does not apply); a df that cannot measure counts as short.
# FOUND says what was measured ("/ 3GiB (12%), 40% of inodes"); SHORT_INODES=1 when its
# inodes are short.
short_on() {
	local path=$1 size="" avail="" inodes="" ifree="" short=0
	FOUND="" SHORT_INODES=0
	read -r size avail < <(df_figures -B1 "$path") || true
	read -r inodes ifree < <(df_figures -i "$path") || true
	if [[ ! $size =~ ^[0-9]+$ || ! $avail =~ ^[0-9]+$ ]] || ((size == 0)); then
		FOUND="$path: df cannot tell"
		return 0
	fi
	FOUND="$path $(human "$avail") ($((avail * 100 / size))%)"
	if [[ -n $2 ]] && ((avail * 100 < $2 * size)); then short=1; fi
	if [[ -n $3 ]] && ((avail < $3 * 1024 * 1024 * 1024)); then short=1; fi
	if [[ $inodes =~ ^[0-9]+$ && $ifree =~ ^[0-9]+$ ]] && ((inodes > 0)); then
		FOUND+=", $((ifree * 100 / inodes))% of inodes"
		if [[ -n $4 ]] && ((ifree * 100 < $4 * inodes)); then SHORT_INODES=1 short=1; fi
	fi
	((short))
}

# "/ 12GiB (40%), 85% of inodes, /opt/actions-runner/_work ...": what is free where this
# script frees it.
free_summary() {
	local path line=""
	for path in / ${WORK_DIR:+"$WORK_DIR"}; do
		short_on "$path" "" "" "" || true
		line+=", $FOUND"
	done
	echo "${line#, }"
}

df_line() { echo "  free: $(free_summary)"; }

# Whether / and the work folder's filesystem both have at least the free space and inodes the
# thresholds ask (as the disk check measures them: available bytes and their share of the
# size, free inodes' share); one df that cannot measure counts as short. SPACE says what was
# measured.
enough_space() {
	local path short=0
	SPACE=""
	for path in / ${WORK_DIR:+"$WORK_DIR"}; do
		if short_on "$path" "$BELOW_PERCENT" "$BELOW_GIB" "$BELOW_INODES"; then short=1; fi
		SPACE+=", $FOUND"
	done
	SPACE=${SPACE#, }
	((!short))
}

# The 10 directories holding the most on the filesystem mounted at $1 (bytes, or inodes with
# --inodes), at most 3 levels below it: du -x, niced, within 30 s (else what it measured by
# then, said to be partial). Names are the VM users': shown through clean().
largest() {
	local mount=$1 unit=${2:--B1} what=bytes line size path shown=0 complete=0
	[[ $unit == -B1 ]] || what=inodes
	local -a du=(timeout 30 nice -n 19)
	if command -v ionice >/dev/null; then du+=(ionice -c 3); fi
	du+=(du -x -0 -d 3 "$unit" -- "$mount")
	echo "  the directories holding the most $what on $(clean "$mount") (du -x, 3 levels):"
	while IFS= read -r -d '' line; do
		size=${line%%$'\t'*} path=${line#*$'\t'}
		if [[ $path == "$mount" ]]; then
			complete=1
		elif ((shown < 10)); then
			[[ $unit == --inodes ]] || size=$(human "$size")
			printf '    %10s  %s\n' "$size" "$(clean "$path")"
			shown=$((shown + 1))
		fi
	done < <("${du[@]}" </dev/null 2>/dev/null | sort -zrn | head -zn 11)
	((complete)) || echo "    (partial: du did not finish within 30 s)"
}

# Each filesystem still short after the cleanup (below the thresholds given, else 10% of its
# space or inodes), and what fills it: this script deletes nothing it doesn't own, so a person
# must choose what goes.
name_what_fills() {
	local path mount device seen=" "
	for path in / ${WORK_DIR:+"$WORK_DIR"}; do
		short_on "$path" "${BELOW_PERCENT:-10}" "$BELOW_GIB" "${BELOW_INODES:-10}" || continue
		path=$(existing "$path")
		device=$(stat -c %d "$path" 2>/dev/null) || continue
		[[ $seen != *" $device "* ]] || continue
		seen+="$device "
		mount=$(df --output=target -- "$path" </dev/null 2>/dev/null | tail -n 1) || continue
		[[ $mount == /* && -d $mount ]] || continue
		echo
		echo "== still short: $FOUND"
		if ((SHORT_INODES)); then largest "$mount" --inodes; else largest "$mount"; fi
	done
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
# entry there or of a runner copy once a job runs: asked last, right before the removal.
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
		if { in_work "$path" || runner_copy "$path"; } && job_running; then
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
	local title=$1 before after inodes
	shift
	echo
	echo "== $title"
	before=$(free_total -B1)
	inodes=$(free_total -i)
	"$@"
	after=$(free_total -B1)
	df_line
	if ((!DRY_RUN && after > before)); then
		echo "  freed $(human $((after - before)))"
	fi
	after=$(free_total -i)
	if ((!DRY_RUN && after > inodes)); then
		echo "  freed $((after - inodes)) inodes"
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
		# The job may still docker cp / commit a container it just stopped, or be about to
		# mount a volume it just created.
		cmd docker container prune --force --filter until=1h
	else
		remove_finished_jobs_containers
		cmd docker container prune --force
		prune_volumes
	fi
	cmd docker image prune --force
	cmd docker builder prune --force
}

# The label the runner gives each job and service container it starts, and the job's network
# (actions/runner src/Runner.Worker/Container/DockerCommandManager.cs, DockerInstanceLabel):
# the first 6 hex digits of the SHA-256 of .runner as File.ReadAllText reads it (a UTF-8 BOM
# dropped), lowercased (src/Runner.Sdk/Util/IOUtil.cs, GetSha256Hash). ASCII lowercasing here:
# a .runner with other capitals gives another label, and so removes nothing.
runner_label() {
	local file=$RUNNER_REAL/.runner label
	[[ -f $file && ! -L $file ]] || return 1
	label=$(timeout 5 head -c 1048576 -- "$file" </dev/null | LC_ALL=C sed '1s/^\xEF\xBB\xBF//' |
		LC_ALL=C tr '[:upper:]' '[:lower:]' | sha256sum | cut -c1-6) || return 1
	[[ $label =~ ^[0-9a-f]{6}$ ]] && printf '%s' "$label"
}

# Containers of jobs that are over: those with the runner's label, running or not, when no job
# runs (the runner removes them itself at the next job that uses containers:
# src/Runner.Worker/ContainerOperationProvider.cs, "Clean up resources from previous jobs").
# A container a step started with `docker run` carries no label: nothing says whose it is,
# so a running one stays (a stopped one goes with the prune).
remove_finished_jobs_containers() {
	local label id name state
	if ! label=$(runner_label); then
		echo "  no readable $RUNNER_DIR/.runner, so no runner label: running containers left alone"
		return
	fi
	while IFS=$'\t' read -r id name state; do
		[[ $id =~ ^[0-9a-f]{64}$ ]] || continue
		if job_running; then
			echo "  kept container $(clean "$name"): a job is running"
			continue
		fi
		echo "  container $(clean "$name") ($(clean "$state")) carries the runner's label $label: its job is over"
		cmd docker rm --force "$id"
	done < <(timeout 60 docker ps --all --no-trunc --filter "label=$label" \
		--format '{{.ID}}	{{.Names}}	{{.State}}' </dev/null 2>/dev/null)
	cmd docker network prune --force --filter "label=$label"
}

# Volumes no container uses, anonymous ones only: what `volume prune` removes since API 1.42
# (Docker 23); before, it took named volumes too, which may be a person's data: skipped there.
prune_volumes() {
	local api
	api=$(timeout 30 docker version --format '{{.Server.APIVersion}}' </dev/null 2>/dev/null) || api=""
	if [[ $api =~ ^1\.([0-9]{1,4})$ ]] && ((10#${BASH_REMATCH[1]} >= 42)); then
		cmd docker volume prune --force
	else
		echo "  Docker API '$(clean "$api")' is not 1.42 or later: its volume prune may take named volumes, skipped"
	fi
}

# Files in /tmp not changed for $TMP_DAYS days: regular files only (never a socket, FIFO or
# link), on /tmp's own filesystem, none in a service's private /tmp (systemd-private-*). Both
# the status change and the modification must be that old: a job's tar sets old mtimes, never
# an old ctime. find -delete removes each from its folder and follows no link.
clean_tmp() {
	if [[ ! -d $TMP_DIR || -L $TMP_DIR ]]; then
		echo "  $TMP_DIR is not a folder: nothing to do"
		return
	fi
	local minutes=$((TMP_DAYS * 1440)) count=0 bytes=0
	local -a old=(find "$TMP_DIR" -xdev -type f ! -path "$TMP_DIR/systemd-private-*"
		-mmin +"$minutes" -cmin +"$minutes")
	read -r count bytes < <(timeout 120 "${old[@]}" -printf '%s\n' </dev/null 2>/dev/null |
		awk '{ n++; s += $1 } END { printf "%d %.0f\n", n, s }') || true
	if ((count == 0)); then
		echo "  no file in $TMP_DIR older than $TMP_DAYS days"
	elif ((DRY_RUN)); then
		echo "  would remove $count files in $TMP_DIR older than $TMP_DAYS days ($(human "$bytes"))"
	elif timeout 600 "${old[@]}" -delete </dev/null 2>/dev/null; then
		echo "  removed $count files in $TMP_DIR older than $TMP_DAYS days ($(human "$bytes"))"
	else
		warn "could not remove every file in $TMP_DIR older than $TMP_DAYS days"
	fi
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

# A self-update in progress: its script runs (<work>/_update.sh, SelfUpdater.cs
# GenerateUpdateScript) or its staging folder got files in the last hour (the download).
update_running() {
	pgrep -f '(^|/)_update[.]sh( |$)' >/dev/null 2>&1 && return 0
	[[ -n $WORK_DIR && -d $WORK_DIR/_update && ! -L $WORK_DIR/_update ]] &&
		[[ -n $(find "$WORK_DIR/_update" -mmin -60 -print -quit </dev/null 2>/dev/null) ]]
}

# A runner version as a bin.<version>/externals.<version> name carries it: three whole
# numbers without leading zeros (one value, one spelling). Any other name is kept.
VERSION_RE='(0|[1-9][0-9]{0,8})([.](0|[1-9][0-9]{0,8})){2}'

# Whether version $1 is lower than version $2 (both VERSION_RE).
lower_version() {
	[[ $1 != "$2" && $(printf '%s\n' "$1" "$2" | LC_ALL=C sort -V | head -n 1) == "$1" ]]
}

# A bin.*/externals.* entry of the runner directory: a runner copy, kept while a job runs
# (see old_versions).
runner_copy() { [[ ${1%/*} == "$RUNNER_REAL" && ${1##*/} =~ ^(bin|externals)[.] ]]; }

# <runner>/$1.<version> folders of versions lower than the live $1 link's, NUL-separated. A
# self-update moves bin/externals to bin.<version>/externals.<version> and makes bin and
# externals links to the new version's (update.sh.template). A higher version is one waiting
# to be installed: actions/runner src/Runner.Listener/SelfUpdater.cs, SelfUpdate, copies it to
# bin.<new>/externals.<new> (DownloadLatestRunner, CopyLatestRunnerToRoot) and only then waits
# for the running job to end (jobDispatcher.WaitAsync), bin still linked to the current one.
# Only when $1 is a link (read, never followed) to a $1.<version> folder of this runner
# directory: a plain folder, a dangling link or one pointing elsewhere says nothing about
# which copy is live.
old_versions() {
	local kind=$1 target live name
	[[ -L $RUNNER_REAL/$kind ]] || return 0
	target=$(readlink -- "$RUNNER_REAL/$kind") || return 0
	live=${target#"$RUNNER_REAL"/}
	live=${live#"$RUNNER_DIR"/}
	live=${live#./}
	[[ $live =~ ^${kind}[.]${VERSION_RE}$ ]] || return 0
	[[ -d $RUNNER_REAL/$live && ! -L $RUNNER_REAL/$live ]] || return 0
	while IFS= read -r -d '' name; do
		if [[ $name =~ ^${kind}[.]${VERSION_RE}$ ]] &&
			lower_version "${name#"$kind".}" "${live#"$kind".}"; then
			printf '%s\0' "$RUNNER_REAL/$name"
		fi
	done < <(find "$RUNNER_REAL" -mindepth 1 -maxdepth 1 -type d -name "$kind.*" -printf '%f\0' \
		</dev/null 2>/dev/null)
}

clean_runner_caches() {
	if [[ ! -d $RUNNER_REAL ]]; then
		echo "  $RUNNER_DIR does not exist: no runner caches"
		return
	fi
	local -a paths=()
	read_paths paths < <(old_diag_logs)
	if update_running; then
		echo "  a runner self-update is under way: _update and old bin.*/externals.* kept"
	else
		# The self-update stages the new version in <work>/_update and leaves it there
		# (actions/runner SelfUpdater.cs DownloadLatestRunner, HostContext.cs Update dir).
		[[ -z $WORK_DIR || ! -d $WORK_DIR/_update || -L $WORK_DIR/_update ]] ||
			paths+=("$WORK_DIR/_update")
		if job_running; then
			echo "  a job is running: old bin.*/externals.* kept"
		else
			read_paths paths < <(old_versions bin; old_versions externals)
		fi
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
		wanted+=" or ${BELOW_INODES}% of inodes"
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
	step "Docker (finished jobs' containers, stopped containers, unused volumes, dangling images, build cache)" clean_docker
	step "APT cache" clean_apt
	step "systemd journal (vacuum to $JOURNAL_MAX)" clean_journal
	step "files in $TMP_DIR older than $TMP_DAYS days" clean_tmp
	step "runner caches (_diag, _work/_update, old bin.*/externals.*, _work/_temp, _tool, _actions)" clean_runner_caches
	step "finished job workspaces (${WORK_DIR:-<work folder>}/<repo>)" clean_workspaces
	echo
	echo "== done$( ((DRY_RUN)) && echo ' (dry run)')"
	echo "  before: $start"
	df_line
	name_what_fills
	if ((WARNINGS)); then
		echo "  $WARNINGS warning(s): see above"
	fi
	return 0
}

main "$@"
