#!/bin/bash
# Stand-in for actions/runner's run.sh + run-helper.sh (test infrastructure only): run the
# listener in the foreground; relaunch it after a retryable exit (2, after 5 s like
# run-helper.sh.template, or RUNNER_STANDIN_RELAUNCH_DELAY), stop on anything else with the
# real lines ("Runner listener exit with terminated error, stop the service, no retry needed.").

if [ "$(id -u)" -eq 0 ] && [ -z "$RUNNER_ALLOW_RUNASROOT" ]; then
    echo "Must not run interactively with sudo"
    exit 1
fi

SOURCE="${BASH_SOURCE[0]}"
while [ -h "$SOURCE" ]; do
    DIR="$(cd -P "$(dirname "$SOURCE")" && pwd)"
    SOURCE="$(readlink "$SOURCE")"
    [[ $SOURCE != /* ]] && SOURCE="$DIR/$SOURCE"
done
DIR="$(cd -P "$(dirname "$SOURCE")" && pwd)"
delay="${RUNNER_STANDIN_RELAUNCH_DELAY:-5}"

PID=""
trap '[ -n "$PID" ] && kill -INT "$PID" 2>/dev/null' INT TERM

while :; do
    "$DIR"/bin/Runner.Listener run "$@" &
    PID=$!
    wait "$PID"
    returnCode=$?
    # a trapped signal interrupts wait: wait again for the listener's own exit code
    while kill -0 "$PID" 2>/dev/null; do
        wait "$PID"
        returnCode=$?
    done
    case $returnCode in
        0) echo "Runner listener exit with 0 return code, stop the service, no retry needed." ;;
        1) echo "Runner listener exit with terminated error, stop the service, no retry needed." ;;
        2)
            echo "Runner listener exit with retryable error, re-launch runner in 5 seconds."
            sleep "$delay"
            echo "Restarting runner..."
            continue
            ;;
        5) echo "Runner listener exit with Session Conflict error, stop the service, no retry needed." ;;
        7) echo "Runner listener exit with deprecated version exit code: ${returnCode}." ;;
        *) echo "Exiting with unknown error code: ${returnCode}" ;;
    esac
    echo "Exiting runner..."
    exit 0
done
