# shellcheck shell=bash
# guards.sh: what provision/setup.sh and register_local.sh put around the runner so that the OS
# leaves its jobs alone (sourced by both; they define say and die). provision/cloud-init.yaml
# writes the same OS update files (keep them alike: tests compare them).
#
# - needrestart lists, never restarts, the runner's service (a restart kills the running job:
#   vm0-ai/vm0#10574 lost 22 jobs so), nor Docker's (it would take the job's containers).
# - unattended-upgrades never reboots by itself; the apt timers' work (apt-daily: update and
#   download, apt-daily-upgrade: unattended-upgrade) is skipped while a Runner.Worker runs, and
#   tried again every 3 hours (apt.systemd.daily still upgrades at most once a day).
# - the runner's unit: OOMScoreAdjust=-500 (a job's processes go first) and OOMPolicy=continue
#   (a job's OOM-killed process doesn't stop the unit), enabled at boot, and the job-completed
#   hook in its .env.

SYSTEMD_DIR=${SYSTEMD_DIR:-/etc/systemd/system}
NEEDRESTART_CONF_DIR=${NEEDRESTART_CONF_DIR:-/etc/needrestart/conf.d}
APT_CONF_DIR=${APT_CONF_DIR:-/etc/apt/apt.conf.d}
# The unit names svc.sh gives the runner (runner_health/runner.py's UNIT_NAME).
RUNNER_UNIT_RE='^actions\.runner\.[0-9A-Za-z._-]+\.[0-9A-Za-z._-]+\.service$'
HOOK_KEY=ACTIONS_RUNNER_HOOK_JOB_COMPLETED
CHANGED=0 # put_file sets it when it wrote

# Write $2 to $1, root-owned with mode $3, unless it already is exactly that; say which. The
# content goes to a new file of mktemp's (0600, created afresh, never through a link) that then
# replaces $1 in one rename: nobody ever sees it half-written or more open than $3.
put_file() {
	if [[ -f $1 && ! -L $1 && $(stat -c '%a %u %g' "$1") == "$3 0 0" ]] && [[ $(cat "$1") == "$2" ]]; then
		say "$1 unchanged"
		return
	fi
	local tmp
	tmp=$(mktemp "$1.XXXXXX")
	printf '%s\n' "$2" >"$tmp"
	chown 0:0 "$tmp"
	chmod "$3" "$tmp"
	mv -f "$tmp" "$1"
	CHANGED=1
	say "wrote $1"
}

has_systemd() { command -v systemctl >/dev/null && [[ -d /run/systemd/system || $SYSTEMD_DIR != /etc/systemd/system ]]; }

# apt's and needrestart's settings, and the apt timers' drop-ins.
os_update_guards() {
	CHANGED=0
	mkdir -p "$NEEDRESTART_CONF_DIR" "$APT_CONF_DIR"
	put_file "$NEEDRESTART_CONF_DIR/runner-health.conf" "# runner-health: list, never restart, the GitHub Actions runner's service (a restart kills
# the running job) and Docker's (the job's containers). Restart them when idle, or reboot.
\$nrconf{override_rc}{qr(^actions\\.runner\\..+\\.service\$)} = 0;
\$nrconf{override_rc}{qr(^(docker|containerd)\\.service\$)} = 0;" 644
	put_file "$APT_CONF_DIR/52runner-health" "// runner-health: unattended-upgrades never reboots the runner VM under a job.
// runner-health reports /var/run/reboot-required (opt-in: reboots when idle).
Unattended-Upgrade::Automatic-Reboot \"false\";" 644
	local unit
	for unit in apt-daily.service apt-daily-upgrade.service; do
		mkdir -p "$SYSTEMD_DIR/$unit.d"
		put_file "$SYSTEMD_DIR/$unit.d/runner-health.conf" "# runner-health: no apt work while a GitHub Actions job runs (skipped, not failed).
[Service]
ExecCondition=/bin/sh -c '! pgrep -x Runner.Worker >/dev/null'" 644
	done
	mkdir -p "$SYSTEMD_DIR/apt-daily-upgrade.timer.d"
	put_file "$SYSTEMD_DIR/apt-daily-upgrade.timer.d/runner-health.conf" "# runner-health: a run skipped for a job is tried again within 3 hours.
[Timer]
OnCalendar=*-*-* 0/3:30" 644
	if ((CHANGED)) && has_systemd; then
		systemctl daemon-reload
	fi
}

# The runner's unit, from $RUNNER_DIR/.service (the runner user's file: only a runner unit
# name that svc.sh installed counts); fails, saying why on stderr, otherwise.
runner_unit() {
	local file=$RUNNER_DIR/.service unit
	if [[ -L $file || ! -f $file ]]; then
		say "$file is not a regular file: the runner's service is not protected" >&2
		return 1
	fi
	unit=$(timeout 5 head -c 200 "$file" | tr -d '\n')
	if ! [[ $unit =~ $RUNNER_UNIT_RE && -f $SYSTEMD_DIR/$unit ]]; then
		say "$file does not name a runner unit in $SYSTEMD_DIR: the runner's service is not protected" >&2
		return 1
	fi
	printf '%s\n' "$unit"
}

# Run bash script $1 (with the further arguments, and stdin) as the runner user, in its
# directory: config.sh refuses root, and the runner's files are the runner user's.
as_runner_user() {
	local script=$1
	shift
	if [[ $(id -un) == "$RUNNER_USER" ]]; then
		(cd "$RUNNER_DIR" && bash -c "$script" guards "$@")
	else
		sudo -n -H -u "$RUNNER_USER" bash -c "cd \"\$1\" && shift && $script" guards "$RUNNER_DIR" "$@"
	fi
}

# The runner user (every job) can write .env and its folder: it is edited as the runner user,
# so nothing root does follows a link a job put there. Other lines stay as they are; a hook
# already set to something else stays too. Prints what it did, in one word.
# shellcheck disable=SC2016 # expanded by the runner user's bash
ENV_EDIT='
export LC_ALL=C
want=$1 key=${1%%=*}=
if [ -L .env ] || { [ -e .env ] && [ ! -f .env ]; }; then echo not-a-file; exit 0; fi
current=$(timeout 10 head -c 65537 .env 2>/dev/null) || current=
if [ "${#current}" -gt 65536 ]; then echo too-big; exit 0; fi
have=$(printf "%s\n" "$current" | grep -m 1 "^$key" || true)
if [ "$have" = "$want" ]; then echo unchanged; exit 0; fi
if [ -n "$have" ]; then echo other-hook; exit 0; fi
tmp=$(mktemp .env.XXXXXX) || exit 1
{ [ -z "$current" ] || printf "%s\n" "$current"; printf "%s\n" "$want"; } >"$tmp" &&
	chmod 644 "$tmp" && mv -f "$tmp" .env && echo changed
'

# ACTIONS_RUNNER_HOOK_JOB_COMPLETED in the runner's .env: the runner reads .env when the
# listener starts (actions/runner src/Runner.Listener/Program.cs LoadAndSetEnv) and the
# Worker runs the hook after each job (src/Runner.Worker/JobExtension.cs).
job_completed_hook() {
	local hook=$RUNNER_HEALTH_DIR/remediations/job_completed.sh answer
	if [[ ! -f $hook ]]; then
		say "no $hook: the runner gets no job-completed hook"
		return
	fi
	answer=$(as_runner_user "$ENV_EDIT" "$HOOK_KEY=$hook") || answer=failed
	case $answer in
	unchanged) say "$RUNNER_DIR/.env already has $HOOK_KEY=$hook" ;;
	changed)
		CHANGED=1
		say "added $HOOK_KEY=$hook to $RUNNER_DIR/.env"
		;;
	other-hook) say "$RUNNER_DIR/.env sets another $HOOK_KEY: kept (have it run $hook too)" ;;
	*) say "WARNING: $RUNNER_DIR/.env not edited (${answer//[^a-z-]/}): no job-completed hook" ;;
	esac
}

# The runner's unit protected, enabled at boot and with its hook; running units pick the
# changes up at a restart, done only while no job runs.
protect_runner_service() {
	local unit
	unit=$(runner_unit) || return 0
	CHANGED=0
	mkdir -p "$SYSTEMD_DIR/$unit.d"
	put_file "$SYSTEMD_DIR/$unit.d/runner-health.conf" "# runner-health: under memory pressure a job dies before the runner does. The runner sets its
# job's processes to oom_score_adj 500 itself (actions/runner ProcessInvoker.cs
# DecreaseProcessPriority), Runner.Worker and the listener keep this. OOMPolicy=continue: a
# job's process the kernel kills must not make systemd stop the whole unit (its default, stop,
# would take the listener down too). No Restart=: the runner's RunnerService.js relaunches the
# listener itself and stops on purpose (exit 0, 1, 5).
[Service]
OOMScoreAdjust=-500
OOMPolicy=continue" 644
	job_completed_hook
	if ((CHANGED)); then
		systemctl daemon-reload
	fi
	if ! systemctl is-enabled --quiet "$unit"; then
		systemctl enable "$unit"
		say "enabled $unit: it starts at boot"
	fi
	systemctl is-enabled --quiet "$unit" || die "$unit is not enabled: the runner would not start after a reboot"
	say "$unit is enabled at boot"
	if ((CHANGED)) && systemctl is-active --quiet "$unit"; then
		if pgrep -x Runner.Worker >/dev/null; then
			say "a job is running: $unit picks the changes up at its next start (sudo systemctl restart $unit when idle)"
		else
			systemctl restart "$unit"
			say "restarted $unit (idle) for the changes"
		fi
	fi
}
