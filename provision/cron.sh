# shellcheck shell=bash
# provision/cron.sh: cron commands that run as written, for health_check.sh (--install-cron)
# and setup.sh (the hourly free_disk line). Sourced, never run; bash 3.2 too (macOS).
#
# cron does a pass of its own over a line's command field before the shell sees it: the
# command ends at the first unescaped % (the rest becomes its stdin, each % a newline), \% is a
# literal %, and a backslash before anything else is kept by some crons and eaten by others
# (Debian's folds \\ into \). A line ends at a newline.

# $1 as one shell word: bare when it is plainly safe, else single-quoted.
sh_word() {
	case $1 in
	"" | *[![:alnum:]_./:=+,@%-]*)
		local quote="'" escaped="'\"'\"'"
		printf "'%s'" "${1//$quote/$escaped}"
		;;
	*) printf '%s' "$1" ;;
	esac
}

# Shell command $1 as a cron command field: every % escaped.
cron_escape() {
	local percent=% escaped='\%'
	printf '%s' "${1//$percent/$escaped}"
}

# The command cron runs for crontab line $1, whose command follows $2 fields (5 in a user's
# crontab; 6 in /etc/cron.d, the user being the sixth). Fails where crons differ or would cut
# the command: a backslash not before a %, an unescaped %.
cron_command() {
	local rest=${1%%$'\n'*} fields=$2 out="" ch i=0
	while [ "$fields" -gt 0 ]; do
		rest=${rest#"${rest%%[![:space:]]*}"}
		rest=${rest#"${rest%%[[:space:]]*}"}
		fields=$((fields - 1))
	done
	rest=${rest#"${rest%%[![:space:]]*}"}
	while [ "$i" -lt "${#rest}" ]; do
		ch=${rest:i:1}
		i=$((i + 1))
		case $ch in
		\\)
			[ "${rest:i:1}" = % ] || return 1
			ch=%
			i=$((i + 1))
			;;
		%) return 1 ;;
		esac
		out=$out$ch
	done
	printf '%s' "$out"
}

# Whether crontab line $1 (command after $2 fields) makes cron run exactly shell command $3,
# and shell $4 (the SHELL cron uses) parses it. Parse only: nothing of it runs.
cron_runs() {
	local command
	command=$(cron_command "$1" "$2") && [ "$command" = "$3" ] && "$4" -n -c "$3" 2>/dev/null
}
