#!/usr/bin/env bash
# health_check.sh: the seed's interface, a thin wrapper over `pytest checks`.
# Runs on the runner VM (target local://, the timer/cron default) or on the Mac
# (target multipass://assay-bpf-runner). Written for bash 3.2 too: macOS ships it.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: health_check.sh [--status | --recover | --dry-run] [-- PYTEST-ARGS...]
       health_check.sh --reset [-- --config PATH]
       health_check.sh --install-cron | --install-timer | --install-launchd | --uninstall [--purge]
       health_check.sh --grow-disk SIZE [--force] [--dry-run] [-- --config PATH]
       health_check.sh --version | --help

  (no option)      check the runner and heal what fails (pytest checks)
  --status         read-only: report one line per check, change nothing (--no-remediate)
  --recover        force the full recovery: re-register and restart the runner (lifts every
                   hold: each fix may run again)
  --dry-run        print the remediation each failing check would run; change nothing
  --reset          lift every hold (a fix that ran remediation.max_attempts times within
                   remediation.window_minutes is held: not run again); prints what it cleared
  --install-cron   add a crontab line running this script every 5 minutes (idempotent), then
                   run that line once, as cron will, and say whether it works
  --install-timer  install runner-health.service + runner-health.timer (every 5 minutes;
                   the better choice where systemd runs) (idempotent)
  --install-launchd  macOS: install a LaunchAgent running this script every 5 minutes, and on
                   wake when a run was missed asleep (cron's are skipped); it replaces the cron
                   line, runs once as launchd will and says whether it works (idempotent)
  --grow-disk SIZE grow the Multipass VM's disk to SIZE (e.g. 40G; never automatic): stop,
                   multipass set local.NAME.disk=SIZE, start, grow the filesystem, verify. It
                   refuses while a job runs (--force: stop it all the same); --dry-run: the
                   steps, nothing changed
  --uninstall      remove what runner-health installed: the cron line, the LaunchAgent; as
                   root also the timer, the hourly free_disk cron, the job-completed hook in
                   the runner's .env (the runner restarted if idle, else the hook script kept
                   until it is) and /opt/runner-health (its reports kept); it
                   prints what it leaves (the runner, its registration, the reports)
  --purge          with --uninstall: the config, the token, the logs and the reports too
  --version        print runner-health's version
  -- ARGS          pass the rest to pytest (e.g. -- --config /etc/runner-health/config.toml);
                   paths under checks/ (or node ids) run only those checks

The .venv is built on first use with $PYTHON, else the first python3 >= 3.10 on PATH (or in
Homebrew's folders); one built by another Python, or left broken, is rebuilt.

The config comes from --config, $RUNNER_HEALTH_CONFIG, ./runner-health.toml or
/etc/runner-health/config.toml (see runner-health.example.toml).

Exit status (pytest's): 0 healthy, 1 unhealthy, 4 usage or config error (an unsafe lock file
too), 6 another run holds the lock, 7 something failed and was healed, 8 the lock is held longer
than a run can last (stale: no run can heal anything), 9 unknown (nothing failed, but a check
could not observe: the cause is on its line). --install-cron, --install-launchd: 1 when its
first run fails. --grow-disk: 0 grown, 1 a step failed (the VM is left started), 4 refused.

Environment: RUNNER_HEALTH_VENV (default: .venv next to this script, built and checked here),
PYTHON (the interpreter that builds it), RUNNER_HEALTH_LOG (cron log; default root's
/var/log/runner-health.log, a user's ~/Library/Logs/runner-health.log on macOS, else
${XDG_STATE_HOME:-~/.local/state}/runner-health/runner-health.log), SYSTEMD_DIR (default
/etc/systemd/system); what --uninstall removes: RUNNER_HEALTH_DIR (default /opt/runner-health),
RUNNER_HEALTH_CONFIG_DIR (default root's /etc/runner-health, a user's
${XDG_CONFIG_HOME:-~/.config}/runner-health), RUNNER_HEALTH_CRON_DIR (default /etc/cron.d),
RUNNER_HEALTH_STATE_DIR (default /var/lib/runner-health: the state, with --purge),
RUNNER_HEALTH_TEXTFILE_DIR (default /var/lib/prometheus/node-exporter: its runner_health.prom).
EOF
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
VENV=${RUNNER_HEALTH_VENV:-$HERE/.venv}
SYSTEMD_DIR=${SYSTEMD_DIR:-/etc/systemd/system}
INSTALL_DIR=${RUNNER_HEALTH_DIR:-/opt/runner-health}
CRON_DIR=${RUNNER_HEALTH_CRON_DIR:-/etc/cron.d}
STATE_DIR=${RUNNER_HEALTH_STATE_DIR:-/var/lib/runner-health}
TEXTFILE_DIR=${RUNNER_HEALTH_TEXTFILE_DIR:-/var/lib/prometheus/node-exporter}
UNIT=runner-health
LAUNCHD_LABEL=io.github.runner-health
CRON_MARK="# runner-health health_check"
USAGE_ERROR=4

die_usage() {
	echo "health_check.sh: $*" >&2
	echo "Try 'health_check.sh --help'." >&2
	exit "$USAGE_ERROR"
}

die() {
	echo "health_check.sh: $*" >&2
	exit 1
}

say() { echo "health_check.sh: $*"; }

is_root() { [ "$(id -u)" = 0 ]; }

# Where the cron line appends: $RUNNER_HEALTH_LOG, else root's /var/log, else the user's own
# log folder (a user cannot write /var/log: every cron run would fail before it starts).
cron_log() {
	if [ -n "${RUNNER_HEALTH_LOG:-}" ]; then
		echo "$RUNNER_HEALTH_LOG"
	elif is_root; then
		echo /var/log/runner-health.log
	elif [ "$(uname -s)" = Darwin ]; then
		echo "$HOME/Library/Logs/runner-health.log"
	else
		echo "${XDG_STATE_HOME:-$HOME/.local/state}/runner-health/runner-health.log"
	fi
}

# Where the config and the token live: root's /etc/runner-health, else the user's (config.py's
# default token path is in it).
config_dir() {
	if [ -n "${RUNNER_HEALTH_CONFIG_DIR:-}" ]; then
		echo "$RUNNER_HEALTH_CONFIG_DIR"
	elif is_root; then
		echo /etc/runner-health
	else
		echo "${XDG_CONFIG_HOME:-$HOME/.config}/runner-health"
	fi
}

# runner_health.__version__, read without the venv (it may not exist yet).
version() {
	local version
	version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$HERE/runner_health/__init__.py" 2>/dev/null)
	[ -n "$version" ] || die "no __version__ in $HERE/runner_health/__init__.py"
	echo "$version"
}

# cron and systemd start us with a bare PATH; multipass lives in /usr/local/bin or
# /opt/homebrew/bin on a Mac, /snap/bin on Linux.
extend_path() {
	local dir
	for dir in /usr/local/bin /opt/homebrew/bin /snap/bin /usr/sbin /sbin; do
		case ":$PATH:" in
		*":$dir:"*) ;;
		*) [ -d "$dir" ] && PATH="$PATH:$dir" ;;
		esac
	done
	export PATH
}

# Why our .venv cannot be used as it is (nothing: it can). A Python upgrade (Homebrew's, or
# the distribution's) leaves a venv whose python is gone, is another version, or finds no
# packages; an interrupted build leaves one without make's .installed mark.
venv_problem() {
	local built home now
	[ -f "$VENV/.installed" ] || {
		echo "its build never finished"
		return
	}
	built=$(sed -n 's/^version\(_info\)\{0,1\}[[:space:]]*=[[:space:]]*\([0-9]*\.[0-9]*\).*/\2/p' \
		"$VENV/pyvenv.cfg" 2>/dev/null | head -n 1)
	home=$(sed -n 's/^home[[:space:]]*=[[:space:]]*//p' "$VENV/pyvenv.cfg" 2>/dev/null | head -n 1)
	if [ -z "$built" ] || [ ! -d "$home" ]; then
		echo "the Python it was built with (${home:-unknown}) is gone"
	elif ! now=$("$VENV/bin/python" -c 'import sys, pytest; print("%d.%d" % sys.version_info[:2])' \
		</dev/null 2>/dev/null); then
		echo "its python no longer runs or cannot import pytest"
	elif [ "$now" != "$built" ]; then
		echo "it was built by Python $built, its python is now $now"
	fi
}

# Our .venv, built (or rebuilt) when it is missing or unusable; RUNNER_HEALTH_VENV is the
# caller's own and only checked.
ensure_venv() {
	if [ "$VENV" != "$HERE/.venv" ]; then
		[ -x "$VENV/bin/pytest" ] && return
		echo "health_check.sh: no pytest in RUNNER_HEALTH_VENV=$VENV" >&2
		exit "$USAGE_ERROR"
	fi
	local problem="" python
	if [ -e "$VENV" ]; then
		problem=$(venv_problem)
		[ -n "$problem" ] || return 0
	fi
	command -v make >/dev/null ||
		die_usage "make not found: install it (macOS: xcode-select --install; Debian/Ubuntu: apt install make)"
	python=$("$HERE/provision/find_python.sh") || exit "$USAGE_ERROR"
	if [ -n "$problem" ]; then
		say "rebuilding $VENV with $python: $problem" >&2
		rm -rf "$VENV"
	else
		say "creating $VENV with $python (first run, can take minutes)" >&2
	fi
	if ! make -C "$HERE" --no-print-directory .venv/.installed PYTHON="$python" >&2; then
		echo "health_check.sh: could not create $VENV with $python: make failed (see above)" >&2
		exit "$USAGE_ERROR"
	fi
}

# Whether the pytest arguments name checks themselves (a path or node id under checks/): then
# they replace `checks` instead of adding to it (which would run every check).
names_checks() {
	local arg
	for arg in "$@"; do
		case ${arg%%::*} in
		checks | checks/* | ./checks | ./checks/* | "$HERE/checks" | "$HERE"/checks/*) return 0 ;;
		esac
	done
	return 1
}

run_checks() {
	ensure_venv
	extend_path
	cd "$HERE"
	local -a where=(checks)
	if names_checks "$@"; then where=(); fi
	# exec: pytest's exit status is ours, and a signal reaches pytest itself.
	exec "$VENV/bin/pytest" ${where[@]+"${where[@]}"} "$@"
}

# The state store's --reset, with the venv and the folder a run uses (its state file is found
# the same way: the config's state_file, relative to this checkout).
reset_holds() {
	ensure_venv
	cd "$HERE"
	exec "$VENV/bin/python" -m runner_health.state --reset "$@"
}

# runner_health.grow_disk with the venv and the folder a run uses (the config is found the same
# way: --config after --, $RUNNER_HEALTH_CONFIG, ./runner-health.toml, /etc/runner-health).
grow_disk() {
	local size=$1 force=$2 mode=$3
	shift 3
	local -a args=("$size")
	if [ "$force" = 1 ]; then args+=(--force); fi
	if [ "$mode" = --dry-run ]; then args+=(--dry-run); fi
	ensure_venv
	extend_path
	cd "$HERE"
	exec "$VENV/bin/python" -m runner_health.grow_disk "${args[@]}" "$@"
}

# -- cron --------------------------------------------------------------------------------

current_crontab() {
	# `crontab -l` fails when there is no crontab yet: that is an empty one.
	crontab -l 2>/dev/null || true
}

without_our_lines() {
	grep -v -F "$CRON_MARK" || true
}

default_token_file() {
	if [ "$(id -u)" = 0 ]; then
		echo /etc/runner-health/token
	else
		echo "${XDG_CONFIG_HOME:-$HOME/.config}/runner-health/token"
	fi
}

token_note() {
	local config
	for config in "${RUNNER_HEALTH_CONFIG:-}" "$HERE/runner-health.toml" /etc/runner-health/config.toml; do
		if [ -z "$config" ] || [ ! -f "$config" ]; then continue; fi
		# No note when the config names a token file, holds no token by design, or setup wrote
		# the default one (config.default_token_file).
		if ! grep -Eq '^[[:space:]]*(token_file[[:space:]]*=|use_token[[:space:]]*=[[:space:]]*false)' "$config" &&
			[ ! -e "$(default_token_file)" ]; then
			say "note: $config sets no github.token_file and $(default_token_file) does not exist;" \
				"scheduled runs don't see your shell's GITHUB_TOKEN: write it there (mode 600)" \
				"or log in with gh"
		fi
		return
	done
	say "note: no config found yet: copy runner-health.example.toml to $HERE/runner-health.toml" \
		"or /etc/runner-health/config.toml"
}

install_cron() {
	command -v crontab >/dev/null || die_usage "crontab is not installed (try --install-timer)"
	# shellcheck source=provision/cron.sh
	. "$HERE/provision/cron.sh"
	local log command line current
	log=$(cron_log)
	command="cd $(sh_word "$HERE") && ./$(sh_word "$(basename "$SELF")") >> $(sh_word "$log") 2>&1 $CRON_MARK"
	line="*/5 * * * * $(cron_escape "$command")"
	# Checked before it is installed: cron would run exactly this command, and sh parses it.
	cron_runs "$line" 5 "$command" sh ||
		die_usage "no cron line runs $SELF as written (a newline or a backslash in its path or $log?)"
	mkdir -p "$(dirname "$log")" || die "cannot create the folder of the cron log $log"
	# Built now, not by the first scheduled run: that takes minutes, and cron starts the next.
	ensure_venv
	current=$(current_crontab)
	if printf '%s\n' "$current" | grep -qxF -- "$line"; then
		say "cron already installed, nothing changed: $line"
	else
		if [ -n "$current" ]; then
			current=$(printf '%s\n' "$current" | without_our_lines)
		fi
		{
			[ -z "$current" ] || printf '%s\n' "$current"
			printf '%s\n' "$line"
		} | crontab -
		current_crontab | grep -qxF -- "$line" || die "crontab -l does not show the line just installed: $line"
		say "cron installed for $(id -un): $line"
	fi
	is_root || say "note: not root; the checks use sudo -n on the VM for remediations"
	token_note
	first_run "$command" "$log" "the cron line" --install-cron
}

# Run the installed command once as cron runs it (sh, cron's bare environment: no
# GITHUB_TOKEN, no PATH of yours) and say whether it works: a failure would otherwise repeat
# every 5 minutes in a log nobody reads.
first_run() {
	local command=$1 log=$2 what=$3 option=$4 status=0 user
	user=$(id -un)
	say "running it once now, as cron will (can take minutes)"
	env -i HOME="${HOME:-/}" LOGNAME="$user" USER="$user" SHELL=/bin/sh PATH=/usr/bin:/bin \
		/bin/sh -c "$command" </dev/null || status=$?
	case $status in
	0) say "first run: healthy (its output is in $log)" ;;
	7) say "first run: healed (what it fixed is in $log)" ;;
	1 | 9) say "first run works (it found problems: see $log)" ;;
	6) say "first run works (another run held the lock: see $log)" ;;
	*)
		echo "health_check.sh: the scheduled command FAILS (exit $status); the last lines of $log:" >&2
		tail -n 20 "$log" 2>/dev/null | sed 's/^/  /' >&2
		echo "health_check.sh: $what stays installed: fix the cause and run $option" \
			"again (or --uninstall)" >&2
		exit 1
		;;
	esac
}

uninstall_cron() {
	command -v crontab >/dev/null || return 0
	local current
	current=$(current_crontab)
	if ! printf '%s\n' "$current" | grep -qF "$CRON_MARK"; then
		say "no runner-health cron line"
		return
	fi
	printf '%s\n' "$current" | without_our_lines | crontab -
	say "removed the cron line"
}

# -- systemd timer -----------------------------------------------------------------------

# $1 for a unit file setting that takes a path: % doubled (systemd reads %x as a specifier).
unit_path() {
	printf '%s' "$1" | sed 's/%/%%/g'
}

# $1 as one argument on an Exec*= line: double-quoted with \ and " escaped, % doubled, and $
# doubled (systemd substitutes $VAR and ${VAR}).
exec_arg() {
	printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g; s/%/%%/g; s/\$/$$/g')"
}

# The script is an argument, not the executable: systemd refuses an executable path that holds
# a quote or a backslash, and it runs from its own directory (no WorkingDirectory=).
service_unit() {
	cat <<EOF
# Installed by health_check.sh --install-timer
[Unit]
Description=runner-health: check and heal the self-hosted GitHub Actions runner
Wants=network-online.target
After=network-online.target
# Until a config exists (provisioned but not yet registered) a run would only fail: skip it.
ConditionPathExists=|/etc/runner-health/config.toml
ConditionPathExists=|$(unit_path "$HERE")/runner-health.toml

[Service]
Type=oneshot
ExecStart=/usr/bin/env bash $(exec_arg "$SELF")
# 6: another run holds the lock; 7: something failed and was healed. 1 (unhealthy) and 8 (a
# stale lock: no run can heal) stay failures, so systemctl --failed shows them.
SuccessExitStatus=6 7
TimeoutStartSec=20min
EOF
}

timer_unit() {
	cat <<'EOF'
# Installed by health_check.sh --install-timer
[Unit]
Description=runner-health every 5 minutes

[Timer]
OnCalendar=*:0/5
AccuracySec=30s
Persistent=true

[Install]
WantedBy=timers.target
EOF
}

# Write $2 to file $1 if it differs; say whether it changed (exit 0) or not (exit 1).
write_if_changed() {
	if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then
		return 1
	fi
	printf '%s\n' "$2" >"$1.tmp.$$"
	mv -f "$1.tmp.$$" "$1"
	return 0
}

install_timer() {
	command -v systemctl >/dev/null || die_usage "systemctl not found: no systemd here (try --install-cron)"
	[ -d "$SYSTEMD_DIR" ] || die_usage "$SYSTEMD_DIR does not exist"
	case $SELF in
	*[[:cntrl:]]*) die_usage "a unit file cannot name $SELF: its path holds a newline or control character" ;;
	esac
	local changed=0
	write_if_changed "$SYSTEMD_DIR/$UNIT.service" "$(service_unit)" && changed=1
	write_if_changed "$SYSTEMD_DIR/$UNIT.timer" "$(timer_unit)" && changed=1
	if [ "$changed" = 1 ]; then
		systemctl daemon-reload
	fi
	if [ "$changed" = 0 ] && systemctl is-enabled --quiet "$UNIT.timer" 2>/dev/null &&
		systemctl is-active --quiet "$UNIT.timer" 2>/dev/null; then
		say "timer already installed and enabled, nothing changed ($SYSTEMD_DIR/$UNIT.timer)"
		return
	fi
	systemctl enable --now "$UNIT.timer"
	say "timer installed: $UNIT.timer runs $SELF every 5 minutes" \
		"(journalctl -u $UNIT.service for its output)"
	token_note
}

uninstall_timer() {
	local had=0
	if [ -f "$SYSTEMD_DIR/$UNIT.timer" ] || [ -f "$SYSTEMD_DIR/$UNIT.service" ]; then
		had=1
		if command -v systemctl >/dev/null; then
			systemctl disable --now "$UNIT.timer" 2>/dev/null || true
		fi
		rm -f "$SYSTEMD_DIR/$UNIT.timer" "$SYSTEMD_DIR/$UNIT.service"
		if command -v systemctl >/dev/null; then
			systemctl daemon-reload || true
		fi
	fi
	if [ "$had" = 1 ]; then
		say "removed the timer"
	else
		say "no runner-health timer"
	fi
}

# -- launchd (macOS) ---------------------------------------------------------------------

launchd_plist_file() { echo "$HOME/Library/LaunchAgents/$LAUNCHD_LABEL.plist"; }

# $1 as XML character data: a path holding & or < must not end the string early.
xml_text() {
	printf '%s' "$1" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g'
}

# The LaunchAgent: what the cron line does (this script, from its folder, appending to the
# same log), every 5 minutes. StartCalendarInterval, not StartInterval: launchd.plist(5) says an
# interval that falls while the Mac sleeps is missed with StartInterval, while a missed
# calendar interval runs on wake (several coalesced into one), which cron never does.
launchd_plist() {
	local log=$1 minute
	cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Installed by runner-health (health_check.sh); see its install-launchd option -->
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>$LAUNCHD_LABEL</string>
	<key>ProgramArguments</key>
	<array>
		<string>$(xml_text "$SELF")</string>
	</array>
	<key>WorkingDirectory</key>
	<string>$(xml_text "$HERE")</string>
	<key>StandardOutPath</key>
	<string>$(xml_text "$log")</string>
	<key>StandardErrorPath</key>
	<string>$(xml_text "$log")</string>
EOF
	if [ -n "${RUNNER_HEALTH_CONFIG:-}" ]; then
		cat <<EOF
	<key>EnvironmentVariables</key>
	<dict>
		<key>RUNNER_HEALTH_CONFIG</key>
		<string>$(xml_text "$RUNNER_HEALTH_CONFIG")</string>
	</dict>
EOF
	fi
	printf '\t<key>StartCalendarInterval</key>\n\t<array>\n'
	for minute in 0 5 10 15 20 25 30 35 40 45 50 55; do
		printf '\t\t<dict><key>Minute</key><integer>%s</integer></dict>\n' "$minute"
	done
	printf '\t</array>\n</dict>\n</plist>\n'
}

launchd_loaded() {
	launchctl print "gui/$(id -u)/$LAUNCHD_LABEL" >/dev/null 2>&1
}

# The user's LaunchAgent (the Mac side runs as the user who owns Multipass, in their GUI
# session), loaded with launchctl bootstrap (launchctl(1): load/unload are legacy).
install_launchd() {
	[ "$(uname -s)" = Darwin ] ||
		die_usage "--install-launchd is for macOS (launchd); here use --install-timer or --install-cron"
	! is_root || die_usage "--install-launchd installs a LaunchAgent: run it as the user who owns Multipass, not root"
	command -v launchctl >/dev/null || die_usage "launchctl not found"
	# shellcheck source=provision/cron.sh
	. "$HERE/provision/cron.sh"
	local log plist content tmp domain command
	log=$(cron_log)
	plist=$(launchd_plist_file)
	case $SELF$log${RUNNER_HEALTH_CONFIG:-} in
	*[[:cntrl:]]*) die_usage "a LaunchAgent cannot name $SELF or $log: a newline or control character in it" ;;
	esac
	content=$(launchd_plist "$log")
	domain="gui/$(id -u)"
	mkdir -p "$(dirname "$plist")" "$(dirname "$log")" || die "cannot create $(dirname "$plist") or the folder of $log"
	ensure_venv
	if [ -f "$plist" ] && [ "$(cat "$plist")" = "$content" ] && launchd_loaded; then
		say "LaunchAgent already installed, unchanged ($plist)"
	else
		tmp="$plist.tmp.$$"
		printf '%s\n' "$content" >"$tmp"
		if command -v plutil >/dev/null && ! plutil -lint -s "$tmp" >&2; then
			rm -f "$tmp"
			die "plutil -lint rejects the LaunchAgent written for $SELF (nothing installed)"
		fi
		mv -f "$tmp" "$plist"
		if launchd_loaded; then launchctl bootout "$domain/$LAUNCHD_LABEL" || true; fi
		launchctl bootstrap "$domain" "$plist" || die "launchctl bootstrap $domain $plist failed"
		say "LaunchAgent installed for $(id -un): $plist runs $SELF every 5 minutes (and on wake" \
			"after a missed run); its output goes to $log"
	fi
	if command -v crontab >/dev/null && current_crontab | grep -qF "$CRON_MARK"; then
		uninstall_cron
		say "(launchd runs it now: the cron line would skip the runs while the Mac sleeps)"
	fi
	token_note
	command="cd $(sh_word "$HERE") && ./$(sh_word "$(basename "$SELF")") >> $(sh_word "$log") 2>&1"
	first_run "$command" "$log" "the LaunchAgent" --install-launchd
}

uninstall_launchd() {
	local plist
	plist=$(launchd_plist_file)
	if [ ! -e "$plist" ]; then
		[ "$(uname -s)" != Darwin ] || say "no runner-health LaunchAgent"
		return
	fi
	if command -v launchctl >/dev/null && launchd_loaded; then
		launchctl bootout "gui/$(id -u)/$LAUNCHD_LABEL" || true
	fi
	rm -f "$plist"
	say "removed the LaunchAgent ($plist)"
}

# -- uninstall ---------------------------------------------------------------------------

LEFT="" # what --uninstall leaves in place, one item a line

leave() {
	LEFT="$LEFT$*
"
}

# setup.sh's (and cloud-init's) hourly cleanup.
uninstall_free_disk_cron() {
	local file=$CRON_DIR/runner-health-free-disk
	if [ -e "$file" ] || [ -L "$file" ]; then
		rm -f "$file"
		say "removed the hourly free_disk cron ($file)"
	else
		say "no hourly free_disk cron ($file)"
	fi
}

# The cron log and, for root, the free_disk log setup.sh writes beside it.
logs() {
	local log
	log=$(cron_log)
	echo "$log"
	if is_root; then echo "$(dirname "$log")/runner-health-free-disk.log"; fi
}

uninstall_logs() {
	local purge=$1 log
	while IFS= read -r log; do
		[ -e "$log" ] || continue
		if [ "$purge" = 0 ]; then
			leave "the log $log (--purge removes it)"
			continue
		fi
		rm -f "$log"
		say "removed $log"
		# The user's own log folder, made by --install-cron.
		if [ "$(basename "$(dirname "$log")")" = runner-health ]; then
			rmdir "$(dirname "$log")" 2>/dev/null || true
		fi
	done < <(logs)
}

# The config folder with the token in it; a token_file set elsewhere is only named.
uninstall_config() {
	local dir token
	dir=$(config_dir)
	if [ ! -e "$dir" ] && [ ! -L "$dir" ]; then
		say "no config folder $dir"
		return
	fi
	token=$(sed -n 's/^[[:space:]]*token_file[[:space:]]*=[[:space:]]*"\(.*\)"[[:space:]]*$/\1/p' \
		"$dir/config.toml" 2>/dev/null | head -n 1) || true
	case $token in
	"" | "$dir"/*) ;;
	*) [ ! -e "$token" ] || leave "the token file $token (github.token_file, outside $dir)" ;;
	esac
	if [ -L "$dir" ] || [ ! -d "$dir" ]; then
		leave "$dir: not a folder"
	elif [ -n "$(ls -A "$dir")" ] && [ ! -e "$dir/config.toml" ] && [ ! -e "$dir/token" ]; then
		leave "$dir: it holds neither config.toml nor token"
	else
		rm -rf "$dir"
		say "removed the config and the token ($dir)"
	fi
}

# Root's memory (state.json, the metrics file next to it): only with --purge, and only a
# folder holding nothing but what runner-health writes there. The metrics file in
# node_exporter's folder goes on any uninstall: it would go on exporting the last run.
uninstall_state() {
	local purge=$1 dir=$STATE_DIR name
	if [ -f "$TEXTFILE_DIR/runner_health.prom" ] && [ ! -L "$TEXTFILE_DIR/runner_health.prom" ]; then
		rm -f "$TEXTFILE_DIR/runner_health.prom"
		say "removed the metrics file $TEXTFILE_DIR/runner_health.prom"
	fi
	if [ ! -e "$dir" ] && [ ! -L "$dir" ]; then
		return
	fi
	if [ "$purge" = 0 ]; then
		leave "the state in $dir (--purge removes it)"
		return
	fi
	if [ -L "$dir" ] || [ ! -d "$dir" ]; then
		leave "$dir: not a folder"
		return
	fi
	for name in "$dir"/* "$dir"/.[!.]*; do
		case ${name##*/} in
		"*" | ".[!.]*" | state.json | state.json.corrupt | runner_health.prom | .*.tmp) ;;
		*)
			leave "$dir: it holds ${name##*/}, which runner-health does not write"
			return
			;;
		esac
	done
	rm -rf "$dir"
	say "removed the state ($dir)"
}

# setup.sh's copy (/opt/runner-health), only if it is one; its reports stay unless --purge.
# This script may be in it: bash has read main whole and reads on from its open file, so the
# removal is safe as main's last step.
uninstall_install_dir() {
	local purge=$1 dir=$INSTALL_DIR
	if [ ! -e "$dir" ] && [ ! -L "$dir" ]; then
		say "no $dir"
		return
	fi
	if [ -L "$dir" ] || [ ! -f "$dir/health_check.sh" ] || [ ! -f "$dir/runner_health/__init__.py" ]; then
		leave "$dir: not a runner-health install (a link, or no health_check.sh and runner_health/)"
		return
	fi
	cd /
	local reports=0
	if [ "$purge" = 0 ] && [ -d "$dir/reports" ]; then reports=1; fi
	if [ "$reports" = 0 ] && [ "$KEEP_HOOK" = 0 ]; then
		rm -rf "$dir"
		say "removed $dir"
		return
	fi
	find "$dir" -mindepth 1 -maxdepth 1 ! -name reports ! -name remediations -exec rm -rf {} +
	if [ "$reports" = 1 ]; then
		say "removed $dir but its reports"
		leave "the reports in $dir/reports (--purge removes them)"
	else
		rm -rf "$dir/reports"
	fi
	if [ "$KEEP_HOOK" = 1 ]; then
		find "$dir/remediations" -mindepth 1 -maxdepth 1 ! -name job_completed.sh -exec rm -rf {} +
		say "removed $dir but remediations/job_completed.sh"
	else
		rm -rf "$dir/remediations"
	fi
}

# The paths of kind $1 ("remove": on uninstall; "purge": with --purge) in setup.sh's record
# of what it installed, wherever its settings put them. Only from a file of ours that nobody
# else can write: it names what root deletes.
manifest() {
	local file=$INSTALL_DIR/.installed-files kind path
	if [ ! -f "$file" ] || [ -L "$file" ] || [ ! -O "$file" ] ||
		[ -n "$(find "$file" -maxdepth 0 \( -perm -g+w -o -perm -o+w \))" ]; then
		return 0
	fi
	while read -r kind path; do
		if [ "$kind" = "$1" ] && [ "${path#/}" != "$path" ] && [ "$path" != / ]; then
			echo "$path"
		fi
	done <"$file"
}

# What setup.sh's record names beyond the defaults handled above (the install dir goes last).
uninstall_manifest() {
	local purge=$1 kind path reload=0
	for kind in remove purge; do
		while IFS= read -r path; do
			if [ "$path" = "$INSTALL_DIR" ] || { [ ! -e "$path" ] && [ ! -L "$path" ]; }; then
				continue
			fi
			if [ "$kind" = purge ] && [ "$purge" = 0 ]; then
				case $LEFT in
				*"$path"* | *"$(dirname "$path") "*) ;; # named already (the config folder, a log)
				*) leave "$path (--purge removes it)" ;;
				esac
			else
				rm -rf "$path"
				say "removed $path"
				case $path in "$SYSTEMD_DIR"/*) reload=1 ;; esac
			fi
		done < <(manifest "$kind")
	done
	# systemd keeps what it loaded (the runner unit's drop-in too) until told to reload.
	if [ "$reload" = 1 ] && command -v systemctl >/dev/null; then
		systemctl daemon-reload || true
	fi
}

# setup.sh's job-completed hook line, out of each .env its record names. The runner's
# listener read .env at its start and its Workers inherit the hook: its unit is restarted when
# idle; otherwise (a job runs, a listener outside its unit) the hook script stays (KEEP_HOOK)
# so that no job fails on a missing hook (actions/runner fails a job whose hook fails).
KEEP_HOOK=0
uninstall_hooks() {
	local env
	while IFS= read -r env; do
		if [ "${env##*/}" = .env ]; then unhook "$env"; fi
	done < <(manifest hook)
}

# The runner user (every job) can write .env and its folder: edited as that user, never through
# a link, a file above 64 KiB or not regular refused (guards.sh's ENV_EDIT, the other way).
# Prints what it did, in one word.
# shellcheck disable=SC2016 # expanded by the runner user's bash
ENV_UNHOOK='
export LC_ALL=C
if [ -L .env ] || { [ -e .env ] && [ ! -f .env ]; }; then echo not-a-file; exit 0; fi
current=$(timeout 10 head -c 65537 .env 2>/dev/null) || current=
if [ "${#current}" -gt 65536 ]; then echo too-big; exit 0; fi
if ! printf "%s\n" "$current" | grep -qxF -- "$1"; then echo absent; exit 0; fi
tmp=$(mktemp .env.XXXXXX) || exit 1
{ printf "%s\n" "$current" | grep -vxF -- "$1" || true; } >"$tmp" &&
	chmod --reference=.env "$tmp" && mv -f "$tmp" .env && echo removed
'

# Our hook line out of $1 (a runner's .env, edited as the owner of its folder), then the
# runner restarted when idle so that its jobs no longer run the hook.
unhook() {
	local env=$1 line answer unit
	local RUNNER_DIR=${env%/*} RUNNER_USER # as_runner_user's and runner_unit's
	# shellcheck source=provision/guards.sh
	. "$HERE/provision/guards.sh"
	line=$HOOK_KEY=$INSTALL_DIR/remediations/job_completed.sh
	if [ ! -e "$RUNNER_DIR" ] && [ ! -L "$RUNNER_DIR" ]; then
		say "no $RUNNER_DIR: no job-completed hook to remove"
		return
	elif [ -L "$RUNNER_DIR" ] || [ ! -d "$RUNNER_DIR" ]; then
		answer=not-a-folder
	elif ! RUNNER_USER=$(stat -c %U "$RUNNER_DIR") || ! answer=$(as_runner_user "$ENV_UNHOOK" "$line"); then
		answer=failed
	fi
	case $answer in
	removed) say "removed runner-health's job-completed hook from $env" ;;
	absent)
		say "$env has no job-completed hook of runner-health's"
		return
		;;
	*)
		KEEP_HOOK=1
		leave "$HOOK_KEY in $env: not edited (${answer//[^a-z-]/}); remove the line $line by hand, then restart the runner when idle (until then $INSTALL_DIR/remediations/job_completed.sh stays: a missing hook fails every job)"
		return
		;;
	esac
	if ! pgrep -x Runner.Listener >/dev/null; then
		say "the runner is not running: it starts without the hook"
	elif ! command -v systemctl >/dev/null || ! unit=$(runner_unit 2>/dev/null) ||
		! systemctl is-active --quiet "$unit"; then
		KEEP_HOOK=1
		leave "$INSTALL_DIR/remediations/job_completed.sh: a runner not started by its unit (${unit:-none}) runs and still runs it after each job (it read .env at its start); restart that runner when idle, then remove it"
	elif pgrep -x Runner.Worker >/dev/null; then
		KEEP_HOOK=1
		leave "$INSTALL_DIR/remediations/job_completed.sh: a job is running, $unit still runs it after each job; restart it when idle (sudo systemctl restart $unit), then remove it"
	elif systemctl restart "$unit"; then
		say "restarted $unit (idle): its jobs no longer run the hook"
	else
		KEEP_HOOK=1
		leave "$INSTALL_DIR/remediations/job_completed.sh: $unit did not restart and may still run it after each job; restart it when idle, then remove it"
	fi
}

# Everything runner-health installed (a user: only their own), then what is left and why.
uninstall() {
	local purge=$1 file
	uninstall_cron
	uninstall_launchd
	if is_root; then
		uninstall_timer
		uninstall_free_disk_cron
	else
		for file in "$SYSTEMD_DIR/$UNIT.timer" "$CRON_DIR/runner-health-free-disk" "$INSTALL_DIR"; do
			[ ! -e "$file" ] || leave "$file (root's: sudo $SELF --uninstall)"
		done
	fi
	uninstall_logs "$purge"
	if [ "$purge" = 1 ]; then
		uninstall_config
	elif [ -e "$(config_dir)" ]; then
		leave "the config and the token in $(config_dir) (--purge removes them)"
	fi
	if [ "$HERE" != "$INSTALL_DIR" ]; then
		[ ! -f "$HERE/runner-health.toml" ] || leave "the config $HERE/runner-health.toml (this checkout's)"
		[ ! -d "$HERE/reports" ] || leave "the reports in $HERE/reports (this checkout's)"
	fi
	leave "the runner: actions/runner, its service and its registration at GitHub (not runner-health's)"
	if is_root; then
		uninstall_state "$purge"
		uninstall_manifest "$purge"
		uninstall_hooks
		uninstall_install_dir "$purge"
	fi
	printf '%s' "$LEFT" | sed 's/^/health_check.sh: left: /'
}

# -- main --------------------------------------------------------------------------------

main() {
	local mode="" action="check" purge=0 force=0 size=""
	local -a pytest_args=(-q)
	while [ $# -gt 0 ]; do
		case $1 in
		--status | --recover | --dry-run)
			[ -z "$mode" ] || die_usage "$mode and $1 don't go together"
			mode=$1
			;;
		--install-cron | --install-timer | --install-launchd | --uninstall | --version | --reset | --grow-disk)
			[ "$action" = check ] ||
				die_usage "one of --install-cron, --install-timer, --install-launchd, --uninstall, --version, --reset, --grow-disk"
			action=${1#--}
			if [ "$action" = grow-disk ]; then
				[ $# -gt 1 ] || die_usage "--grow-disk needs a SIZE (e.g. 40G)"
				size=$2
				shift
			fi
			;;
		--purge) purge=1 ;;
		--force) force=1 ;;
		-h | --help)
			usage
			exit 0
			;;
		--)
			shift
			break
			;;
		*) die_usage "unknown argument '$1' (pytest options go after --)" ;;
		esac
		shift
	done
	if [ "$purge" = 1 ] && [ "$action" != uninstall ]; then die_usage "--purge goes with --uninstall"; fi
	if [ "$force" = 1 ] && [ "$action" != grow-disk ]; then die_usage "--force goes with --grow-disk"; fi
	if [ "$action" = reset ]; then
		[ -z "$mode" ] || die_usage "--reset and $mode don't go together"
		reset_holds "$@"
	fi
	if [ "$action" = grow-disk ]; then
		case $mode in "" | --dry-run) ;; *) die_usage "--grow-disk and $mode don't go together" ;; esac
		grow_disk "$size" "$force" "$mode" "$@"
	fi
	if [ "$action" != check ]; then
		if [ -n "$mode" ] || [ $# -gt 0 ]; then die_usage "--$action takes no other arguments"; fi
		case $action in
		install-cron) install_cron ;;
		install-timer) install_timer ;;
		install-launchd) install_launchd ;;
		uninstall) uninstall "$purge" ;;
		version) version ;;
		esac
		exit 0
	fi
	case $mode in
	--status) pytest_args+=(--no-remediate --tb=no -rN) ;;
	--recover) pytest_args+=(--recover --tb=short) ;;
	--dry-run) pytest_args+=(--dry-run --tb=short) ;;
	*) pytest_args+=(--tb=short) ;;
	esac
	run_checks "${pytest_args[@]}" "$@"
}

main "$@"
